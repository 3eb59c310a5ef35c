package strip

import (
	"path"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
	"github.com/initrd-remix/initrd-remix/strip/audit"
)

// sdTree is a dracut image with systemd as /init, its units as Debian
// ships them (trimmed), and extra entries on top.
func sdTree(t *testing.T, extra ...string) *remix.Tree {
	base := append(append([]string{}, usrMerged...),
		"init=-> usr/lib/systemd/systemd", "usr/lib/systemd/", "usr/lib/systemd/systemd=elf",
		"usr/lib/dracut/", "usr/lib/dracut/modules.txt=base\n", "usr/lib/dracut-lib.sh=x\n",
		"usr/lib/systemd/system/",
		"usr/lib/systemd/system/initrd.target=[Unit]\nRequires=basic.target\nOnFailure=emergency.target\n",
		"usr/lib/systemd/system/basic.target=[Unit]\nRequires=sysinit.target\n",
		"usr/lib/systemd/system/sysinit.target=[Unit]\nWants=local-fs.target swap.target\n",
		"usr/lib/systemd/system/systemd-udevd.service=[Service]\nExecStart=/lib/systemd/systemd-udevd\nExecReload=udevadm control --reload --timeout 0\n",
		"usr/lib/systemd/system/systemd-udev-trigger.service=[Unit]\nWants=systemd-udevd.service\n[Service]\nExecStart=-udevadm trigger --type=all --action=add\n",
		"usr/lib/systemd/system/systemd-udevd-kernel.socket=[Socket]\nListenNetlink=kobject-uevent 1\nService=systemd-udevd.service\n",
		"usr/lib/systemd/system/systemd-random-seed.service=[Service]\nExecStart=/lib/systemd/systemd-random-seed load\n",
		"usr/lib/systemd/system/sys-kernel-config.mount=[Mount]\nWhat=configfs\nWhere=/sys/kernel/config\nType=configfs\n",
		"usr/lib/systemd/system/sysinit.target.wants/",
		"usr/lib/systemd/system/sysinit.target.wants/systemd-udevd.service=-> ../systemd-udevd.service",
		"usr/lib/systemd/system/sysinit.target.wants/systemd-udev-trigger.service=-> ../systemd-udev-trigger.service",
		"usr/lib/systemd/system/initrd.target.wants/",
		"usr/lib/systemd/system/initrd-switch-root.service=[Service]\nExecStart=systemctl --no-block switch-root /sysroot\n",
		"usr/lib/systemd/system-generators/", "usr/lib/systemd/system-generators/systemd-fstab-generator=elf",
		"usr/lib/systemd/system-generators/systemd-debug-generator=elf",
		"etc/systemd/", "etc/systemd/system/", "etc/systemd/system/default.target=-> /lib/systemd/system/initrd.target",
		"usr/lib/udev/", "usr/lib/udev/rules.d/", "usr/lib/udev/rules.d/80-drivers.rules=RUN{builtin}+=\"kmod load $env{MODALIAS}\"\n",
		"usr/lib/udev/rules.d/60-persistent-storage.rules=KERNEL==\"sd*\", IMPORT{program}=\"ata_id --export $devnode\"\n",
		"usr/lib/dracut/hooks/", "usr/lib/dracut/hooks/cmdline/", "usr/lib/dracut/hooks/cmdline/01-parse-kernel.sh=x\n",
		"usr/lib/dracut/hooks/pre-trigger/", "usr/lib/dracut/hooks/pre-udev/")
	return layout(t, append(base, extra...)...)
}

// add writes entries (as layout reads them) into a tree that has been
// stripped already, creating parents.
func add(t *testing.T, tr *remix.Tree, lines ...string) {
	t.Helper()
	for _, l := range lines {
		e := treetest.Entry(l)
		if remix.FileMode(e.Mode).IsDir() {
			if _, err := tr.MkdirAll(e.Name, 0o755, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := tr.Install(e); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
	}
}

// TestFailClosed is issue 15 point 1: storage actions under names strip
// has never heard of are disabled (the plan names the path given), the
// result passes the independent audit, and the audit — which never looks
// at strip's edits — reports each of them when it is put back on top of a
// stripped image (the finding names the path given).
func TestFailClosed(t *testing.T) {
	sd, it := sdTree, itoolsTree
	const unit = "usr/lib/systemd/system/"
	tests := []struct {
		name   string
		base   func(*testing.T, ...string) *remix.Tree
		extra  []string
		edited string // a plan item's path contains this
		found  string // an audit finding's path or problem contains this
	}{
		{"unit in vendor initrd.target.wants", sd, []string{unit + "stratisd-min.service=[Service]\nExecStart=/usr/libexec/stratisd-min\n",
			unit + "initrd.target.wants/stratisd-min.service=-> ../stratisd-min.service"}, "stratisd-min.service", "stratisd-min.service"},
		{"vdo in sysinit.target.wants", sd, []string{unit + "vdo.service=[Service]\nExecStart=/usr/bin/vdo start --all\n",
			unit + "sysinit.target.wants/vdo.service=-> ../vdo.service"}, "vdo.service", "vdo.service"},
		{"harmless name runs vgchange", sd, []string{unit + "hw-tune.service=[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/usr/sbin/vgchange -ay\n",
			unit + "sysinit.target.wants/hw-tune.service=-> ../hw-tune.service"}, "hw-tune.service", "hw-tune.service"},
		{"enabled by its [Install] section only", sd, []string{unit + "nvmefc-boot-connections.service=[Service]\nExecStart=/usr/sbin/nvme connect-all\n[Install]\nWantedBy=sysinit.target\n"},
			"nvmefc-boot-connections.service", "nvmefc-boot-connections.service"},
		{"allow-listed name runs a shell", sd, []string{unit + "systemd-udev-settle.service=[Service]\nExecStart=/bin/sh -c 'vgchange -ay'\n",
			unit + "sysinit.target.wants/systemd-udev-settle.service=-> ../systemd-udev-settle.service"}, "systemd-udev-settle.service", "systemd-udev-settle.service"},
		{"drop-in adds a program to udevd", sd, []string{unit + "systemd-udevd.service.d/", unit + "systemd-udevd.service.d/50-hw.conf=[Service]\nExecStartPost=/usr/sbin/vgchange -ay\n"},
			"systemd-udevd.service.d/50-hw.conf", "systemd-udevd.service"},
		{"allowed name is an alias of another unit", sd, []string{unit + "storage-up.service=[Service]\nExecStart=/sbin/lvm vgchange -ay\n",
			"etc/systemd/system/systemd-random-seed.service=-> /usr/lib/systemd/system/storage-up.service", unit + "sysinit.target.wants/systemd-random-seed.service=-> ../systemd-random-seed.service"},
			"systemd-random-seed.service", "systemd-random-seed.service"},
		{"mount unit of a disk", sd, []string{unit + "mnt-data.mount=[Mount]\nWhat=LABEL=gptdata\nWhere=/mnt/data\nType=ext4\n",
			unit + "local-fs.target.wants/", unit + "local-fs.target.wants/mnt-data.mount=-> ../mnt-data.mount"}, "mnt-data.mount", "mnt-data.mount"},
		{"udev asks systemd for a unit", sd, []string{unit + "hw-activate@.service=[Service]\nExecStart=/usr/sbin/lvm pvscan --cache %i\n",
			"usr/lib/udev/rules.d/69-hw.rules=SUBSYSTEM==\"block\", TAG+=\"systemd\", ENV{SYSTEMD_WANTS}+=\"hw-activate@$major:$minor.service\"\n"},
			"hw-activate@.service", "hw-activate@"},
		{"unit in etc/systemd/system.control", sd, []string{"etc/systemd/system.control/", "etc/systemd/system.control/hw-ctl.service=[Service]\nExecStart=/usr/sbin/vgchange -ay\n",
			unit + "sysinit.target.wants/hw-ctl.service=-> ../hw-ctl.service"}, "etc/systemd/system.control/hw-ctl.service", "hw-ctl.service"},
		{"initrd.target in etc/systemd/system.control", sd, []string{"etc/systemd/system.control/", "etc/systemd/system.control/initrd.target=[Unit]\nWants=hw-tune.service\n",
			unit + "hw-tune.service=[Service]\nExecStart=/usr/sbin/vgchange -ay\n"}, "etc/systemd/system.control/initrd.target", "hw-tune.service"},
		{"generator", sd, []string{"usr/lib/systemd/system-generators/hw-layout-generator=#!/bin/sh\necho x\n"}, "hw-layout-generator", "hw-layout-generator"},
		{"environment generator", sd, []string{"usr/lib/systemd/system-environment-generators/", "usr/lib/systemd/system-environment-generators/90-hw=#!/bin/sh\nvgchange -ay\n"}, "90-hw", "90-hw"},
		{"shutdown program", sd, []string{"usr/lib/systemd/system-shutdown/", "usr/lib/systemd/system-shutdown/hw.shutdown=#!/bin/sh\nmdadm --wait-clean --scan\n"}, "hw.shutdown", "hw.shutdown"},
		{"udev rule runs a wrapper", sd, []string{"usr/lib/udev/rules.d/61-hwdb-extra.rules=ACTION==\"add\", SUBSYSTEM==\"block\", RUN+=\"/usr/libexec/hwprobe/probe $devnode\"\n"},
			"61-hwdb-extra.rules", "61-hwdb-extra.rules"},
		{"udev rule runs vgscan", it, []string{"lib/udev/rules.d/70-x.rules=ACTION==\"add\", RUN+=\"/sbin/vgscan --mknodes\"\n"}, "70-x.rules", "70-x.rules"},
		{"udev rule runs dmsetup create", it, []string{"lib/udev/rules.d/70-y.rules=ACTION==\"add\", \\\n  RUN+=\"/sbin/dmsetup create x --table '0 8 linear $devnode 0'\"\n"}, "70-y.rules", "70-y.rules"},
		{"udev rule runs wipefs", it, []string{"lib/udev/rules.d/70-z.rules=ACTION==\"add\", PROGRAM=\"/sbin/wipefs -a $devnode\"\n"}, "70-z.rules", "70-z.rules"},
		{"udev rule runs blockdev --setrw", it, []string{"lib/udev/rules.d/70-w.rules=ACTION==\"add\", RUN+=\"blockdev --setrw $devnode\"\n"}, "70-w.rules", "70-w.rules"},
		{"dracut cmdline hook parse-nbdroot", sd, []string{"usr/lib/dracut/hooks/cmdline/90-parse-nbdroot.sh=netroot=nbd\n"}, "90-parse-nbdroot.sh", "90-parse-nbdroot.sh"},
		{"dracut cmdline hook parse-iscsiroot", sd, []string{"usr/lib/dracut/hooks/cmdline/90-parse-iscsiroot.sh=iscsistart -b\n"}, "90-parse-iscsiroot.sh", "90-parse-iscsiroot.sh"},
		{"dracut cmdline hook parse-cifsroot", sd, []string{"usr/lib/dracut/hooks/cmdline/90-parse-cifsroot.sh=netroot=cifs\n"}, "90-parse-cifsroot.sh", "90-parse-cifsroot.sh"},
		{"dracut pre-trigger hook", sd, []string{"usr/lib/dracut/hooks/pre-trigger/40-hw-settle.sh=udevadm settle; lvm vgchange -ay\n"}, "40-hw-settle.sh", "40-hw-settle.sh"},
		{"allow-listed dracut hook assembles", sd, []string{"usr/lib/dracut/hooks/cmdline/01-parse-kernel.sh=mdadm --assemble --scan\n"}, "01-parse-kernel.sh", "01-parse-kernel.sh"},
		{"dracut configuration runs a command", sd, []string{"etc/conf.d/", "etc/conf.d/hw.conf=X=1\n$(vgchange -ay)\n"}, "etc/conf.d/hw.conf", "etc/conf.d/hw.conf"},
		{"init-premount script with a neutral name", it, []string{"scripts/init-premount/hwclock-sync=#!/bin/sh\nlvm vgchange -ay\n",
			"scripts/init-premount/ORDER=/scripts/init-premount/hwclock-sync \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n"}, "scripts/init-premount/hwclock-sync", "hwclock-sync"},
		{"ORDER runs a command itself", it, []string{"scripts/init-top/ORDER=/scripts/init-top/udev \"$@\"\n/sbin/vgchange -ay\n"}, "scripts/init-top/ORDER", "scripts/init-top/ORDER"},
		{"allow-listed script assembles", it, []string{"scripts/init-top/udev=#!/bin/sh\nudevd --daemon; mdadm --assemble --scan\n"}, "scripts/init-top/udev", "scripts/init-top/udev"},
		{"panic script", it, []string{"scripts/panic/", "scripts/panic/hw=#!/bin/sh\nlvm vgchange -ay\n"}, "scripts/panic/hw", ""},
		{"tmpfiles.d writes to a disk", sd, []string{"usr/lib/tmpfiles.d/", "usr/lib/tmpfiles.d/hw.conf=d /run/hw 0755 - - -\nw /dev/vda - - - - CANARY\n"}, "etc/tmpfiles.d/hw.conf", "usr/lib/tmpfiles.d/hw.conf"},
		{"modprobe.d install command assembles", it, []string{"lib/modprobe.d/", "lib/modprobe.d/hw.conf=softdep a pre: b\ninstall raid1 /sbin/modprobe --ignore-install raid1; /sbin/mdadm --assemble --scan\n"}, "etc/modprobe.d/hw.conf", "lib/modprobe.d/hw.conf"},
		{"conf.d runs a command", it, []string{"conf/conf.d/hw=BOOT=local\nvgchange -ay\n"}, "conf/conf.d/hw", "conf/conf.d/hw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.base(t, tc.extra...)
			plan, err := Apply(tr, Options{})
			if err != nil {
				t.Fatal(err)
			}
			edited := false
			for _, it := range plan.Items {
				if strings.Contains(it.Path, tc.edited) {
					edited = true
				}
			}
			for _, k := range plan.Kept {
				if strings.Contains(k.Path, tc.edited) && !strings.Contains(tc.edited, ".d/") {
					t.Errorf("the allow-list kept %s: %s", k.Path, k.Why)
				}
			}
			if !edited {
				t.Errorf("no edit of %s in the plan", tc.edited)
			}
			if f := audit.Check(tr); len(f) != 0 {
				t.Errorf("the audit of the stripped image finds: %v", f)
			}
			if f := Assert(tr); len(f) != 0 {
				t.Errorf("Assert: %v", f)
			}
			if tc.found == "" {
				return
			}
			// Put back on top of a stripped image, the audit finds it.
			tr = tc.base(t)
			if _, err := Apply(tr, Options{}); err != nil {
				t.Fatal(err)
			}
			add(t, tr, tc.extra...)
			found := false
			f := audit.Check(tr)
			for _, x := range f {
				if strings.Contains(x.Path+" "+x.Problem, tc.found) {
					found = true
				}
			}
			if !found {
				t.Errorf("the audit misses %s when it is put back: %v", tc.found, f)
			}
		})
	}
}

// TestAuditKeepsHardware: what the allow-list keeps is what a rescue boot
// needs, and the audit agrees with strip on it.
func TestAuditKeepsHardware(t *testing.T) {
	tr := sdTree(t)
	plan, err := Apply(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, k := range plan.Kept {
		kept[path.Base(k.Path)] = true
	}
	for _, want := range []string{"systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udevd-kernel.socket", "sys-kernel-config.mount",
		"basic.target", "sysinit.target", "systemd-debug-generator", "01-parse-kernel.sh", "systemd-random-seed.service"} {
		if !kept[want] {
			t.Errorf("%s was not kept", want)
		}
	}
	for _, gone := range []string{"initrd-switch-root.service", "systemd-fstab-generator"} {
		if kept[gone] {
			t.Errorf("%s was kept", gone)
		}
	}
	if f := audit.Check(tr); len(f) != 0 {
		t.Errorf("audit: %v", f)
	}
	if k := audit.Kind(tr); k != audit.Systemd {
		t.Errorf("Kind = %s", k)
	}
	if f := audit.Check(sdTree(t)); len(f) == 0 {
		t.Error("the audit finds nothing in the original image, which switches root")
	}
}
