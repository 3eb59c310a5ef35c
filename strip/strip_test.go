package strip

import (
	"errors"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

// layout builds a synthetic image (see treetest.Tree).
func layout(t *testing.T, lines ...string) *remix.Tree {
	t.Helper()
	return treetest.Tree(t, lines...)
}

// usrMerged is the start of every synthetic image: bin, sbin, lib as links.
var usrMerged = []string{"usr/", "usr/bin/", "usr/sbin/", "usr/lib/", "bin=-> usr/bin", "sbin=-> usr/sbin", "lib=-> usr/lib", "etc/"}

func itoolsTree(t *testing.T, extra ...string) *remix.Tree {
	base := append(append([]string{}, usrMerged...),
		"init=#!/bin/sh\n", "conf/", "conf/initramfs.conf=MODULES=most\n", "conf/conf.d/", "conf/conf.d/resume=RESUME=UUID=x\n",
		"scripts/", "scripts/functions=f\n", "scripts/local=l\n", "scripts/nfs=n\n",
		"scripts/local-top/", "scripts/local-top/ORDER=/scripts/local-top/cryptroot \"$@\"\n", "scripts/local-top/cryptroot=c\n",
		"scripts/init-premount/", "scripts/init-premount/ORDER=/scripts/init-premount/mdadm \"$@\"\n/scripts/init-premount/hw \"$@\"\n",
		"scripts/init-premount/mdadm=m\n", "scripts/init-premount/hw=h\n",
		"scripts/init-top/", "scripts/init-top/ORDER=/scripts/init-top/udev \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n", "scripts/init-top/udev=u\n",
		"lib/udev/", "lib/udev/rules.d/", "lib/udev/rules.d/64-md-raid-assembly.rules=RUN+=\"/sbin/mdadm -I $env{DEVNAME}\"\n",
		"lib/udev/rules.d/80-drivers.rules=RUN{builtin}+=\"kmod load $env{MODALIAS}\"\n",
		"lib/udev/rules.d/90-custom.rules=ACTION==\"add\", RUN+=\"/sbin/lvm pvscan --cache\"\n",
		"etc/mdadm/", "etc/mdadm/mdadm.conf=ARRAY /dev/md0 UUID=x\n")
	return layout(t, append(base, extra...)...)
}

func TestApplySynthetic(t *testing.T) {
	tests := []struct {
		name    string
		tree    func(t *testing.T) *remix.Tree
		gen     Generator
		touched []string // paths the plan must edit
		kept    []string // paths it must leave alone
		check   func(t *testing.T, tr *remix.Tree)
	}{
		{
			name: "initramfs-tools usr-merged",
			tree: func(t *testing.T) *remix.Tree { return itoolsTree(t) },
			gen:  InitramfsTools,
			touched: []string{"scripts/local", "scripts/nfs", "scripts/local-top/cryptroot", "scripts/local-top/ORDER",
				"scripts/init-premount/mdadm", "scripts/init-premount/hw", "scripts/init-premount/ORDER", "conf/conf.d/resume", "etc/mdadm/mdadm.conf",
				"etc/udev/rules.d/64-md-raid-assembly.rules", "etc/udev/rules.d/90-custom.rules", Entry, Marker, MountPoint},
			kept: []string{"scripts/init-top/udev", "scripts/init-top/ORDER", "etc/udev/rules.d/80-drivers.rules"},
			check: func(t *testing.T, tr *remix.Tree) {
				// Fail closed: hw is no known hardware step, whatever its name.
				order := string(readAll(tr.Lookup("scripts/init-premount/ORDER")))
				if strings.Contains(order, "mdadm") || strings.Contains(order, "/scripts/init-premount/hw") || !strings.HasSuffix(order, itoolsExec+"\n") {
					t.Errorf("init-premount ORDER:\n%s", order)
				}
				if top := string(readAll(tr.Lookup("scripts/init-top/ORDER"))); !strings.Contains(top, "/scripts/init-top/udev \"$@\"") {
					t.Errorf("init-top ORDER lost udev:\n%s", top)
				}
				// The entry point went through the lib -> usr/lib link.
				if n := tr.Get("usr/lib/initrd-remix/rescue"); n == nil || n.Inode.Mode&0o111 == 0 {
					t.Error("entry point not at usr/lib/initrd-remix/rescue or not executable")
				}
				if n := tr.Get("lib"); n == nil || !n.IsSymlink() {
					t.Error("the lib -> usr/lib link was replaced")
				}
				if n := tr.Get(MountPoint); n == nil || !n.IsDir() {
					t.Errorf("no %s directory for the banner's mount", MountPoint)
				}
			},
		},
		{
			name: "an image's own mnt stays",
			tree: func(t *testing.T) *remix.Tree { return itoolsTree(t, "media/", "mnt=-> media") },
			gen:  InitramfsTools,
			kept: []string{MountPoint},
			check: func(t *testing.T, tr *remix.Tree) {
				if n := tr.Get(MountPoint); n == nil || !n.IsSymlink() {
					t.Error("the image's mnt link was replaced")
				}
			},
		},
		{
			name: "etc/udev is a symlink: writes follow it",
			tree: func(t *testing.T) *remix.Tree {
				return itoolsTree(t, "usr/lib/udev/etc/", "etc/udev=-> ../usr/lib/udev/etc")
			},
			gen:     InitramfsTools,
			touched: []string{"usr/lib/udev/etc/rules.d/64-md-raid-assembly.rules"},
			check: func(t *testing.T, tr *remix.Tree) {
				if n := tr.Get("etc/udev"); n == nil || !n.IsSymlink() {
					t.Error("etc/udev link replaced by a directory")
				}
			},
		},
		{
			name: "dracut with systemd",
			tree: func(t *testing.T) *remix.Tree {
				return layout(t, append(append([]string{}, usrMerged...),
					"init=-> usr/lib/systemd/systemd", "usr/lib/systemd/", "usr/lib/systemd/systemd=elf",
					"usr/lib/dracut/", "usr/lib/dracut/modules.txt=base\n", "usr/lib/dracut-lib.sh=x\n",
					"usr/lib/systemd/system/", "usr/lib/systemd/system/initrd.target=[Unit]\n",
					"usr/lib/systemd/system/initrd-switch-root.service=[Unit]\n", "usr/lib/systemd/system/mdmon@.service=[Unit]\n",
					"usr/lib/systemd/system/systemd-udevd.service=[Unit]\n",
					"usr/lib/systemd/system-generators/", "usr/lib/systemd/system-generators/systemd-fstab-generator=elf",
					"usr/lib/systemd/system-generators/systemd-debug-generator=elf",
					"etc/systemd/", "etc/systemd/system/", "etc/systemd/system/default.target=-> /lib/systemd/system/initrd.target",
					"etc/cmdline.d/", "etc/cmdline.d/01-default.conf=rd.lvm.lv=vg0/root root=/dev/vg0/root\n",
					"etc/crypttab=cryptdata UUID=x none luks\n",
					"usr/lib/dracut/hooks/", "usr/lib/dracut/hooks/cmdline/", "usr/lib/dracut/hooks/cmdline/30-parse-lvm.sh=x\n",
					"usr/lib/dracut/hooks/cmdline/01-parse-kernel.sh=x\n", "usr/lib/dracut/hooks/pre-pivot/", "usr/lib/dracut/hooks/pre-pivot/10-x.sh=x\n")...)
			},
			gen: DracutSystemd,
			touched: []string{"etc/systemd/system/initrd-switch-root.service", "etc/systemd/system/mdmon@.service", "etc/systemd/system/sysroot.mount",
				"etc/systemd/system-generators/systemd-fstab-generator", "etc/systemd/system/initrd.target", "etc/systemd/system/default.target",
				"etc/cmdline.d/01-default.conf", "etc/crypttab", "usr/lib/dracut/hooks/cmdline/30-parse-lvm.sh",
				"usr/lib/dracut/hooks/pre-pivot/10-x.sh", "etc/systemd/system/initrd-remix-rescue.service"},
			kept: []string{"etc/systemd/system/systemd-udevd.service", "etc/systemd/system-generators/systemd-debug-generator",
				"usr/lib/dracut/hooks/cmdline/01-parse-kernel.sh"},
			check: func(t *testing.T, tr *remix.Tree) {
				if n := tr.Lookup("etc/systemd/system/default.target"); n == nil || n.Inode.Target != "initrd.target" {
					t.Errorf("default.target: %+v", n)
				}
				if !masked(tr.Lookup("etc/systemd/system/sysroot.mount")) {
					t.Error("sysroot.mount not masked")
				}
			},
		},
		{
			name: "dracut without systemd",
			tree: func(t *testing.T) *remix.Tree {
				return layout(t, append(append([]string{}, usrMerged...),
					"init=#!/bin/bash\n", "usr/lib/dracut/", "usr/lib/dracut/modules.txt=base\n",
					"usr/lib/dracut/hooks/", "usr/lib/dracut/hooks/mount/", "usr/lib/dracut/hooks/mount/99-mount-root.sh=x\n",
					"usr/lib/dracut/hooks/cmdline/", "usr/lib/dracut/hooks/cmdline/95-parse-block.sh=x\n")...)
			},
			gen: DracutShell,
			touched: []string{"usr/lib/dracut/hooks/mount/99-mount-root.sh", "usr/lib/dracut/hooks/cmdline/95-parse-block.sh",
				"usr/lib/dracut/hooks/pre-mount/00-initrd-remix-rescue.sh", "usr/lib/dracut/hooks/cmdline/99zz-initrd-remix.sh",
				"etc/cmdline.d/99-initrd-remix.conf"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.tree(t)
			tr.SetGeneration(100)
			plan, err := Apply(tr, Options{Payload: remix.BytesContent("#!/bin/sh\n")})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Generator != tc.gen {
				t.Fatalf("generator %s, want %s", plan.Generator, tc.gen)
			}
			got := map[string]bool{}
			for _, it := range plan.Items {
				got[it.Path] = true
				if it.Why == "" || it.Kind == "" {
					t.Errorf("item without kind or reason: %+v", it)
				}
				if n := tr.Get(it.Path); n == nil || n.Gen() != 100 {
					t.Errorf("%s: not written in the edit generation", it.Path)
				}
			}
			for _, p := range tc.touched {
				if !got[p] {
					t.Errorf("plan does not edit %s", p)
				}
			}
			for _, p := range tc.kept {
				if got[p] {
					t.Errorf("plan edits %s", p)
				}
			}
			if tc.check != nil {
				tc.check(t, tr)
			}
			if f := Assert(tr); len(f) != 0 {
				t.Errorf("Assert after Apply: %v", f)
			}
		})
	}
}

// TestAssertFindsWhatComesBack: files merged on top of a rescue image (as an
// overlay could) that re-enable storage are reported.
func TestAssertFindsWhatComesBack(t *testing.T) {
	tests := []struct {
		name  string
		undo  remix.Entry
		where string
	}{
		{"udev rule restored", remix.File("etc/udev/rules.d/64-md-raid-assembly.rules", 0o644, remix.BytesContent("RUN+=\"/sbin/mdadm -I $env{DEVNAME}\"\n")), "64-md-raid-assembly.rules"},
		{"new udev rule running lvm", remix.File("usr/lib/udev/rules.d/70-mine.rules", 0o644, remix.BytesContent("RUN+=\"/sbin/vgchange -ay\"\n")), "70-mine.rules"},
		{"boot script restored", remix.File("scripts/local", 0o644, remix.BytesContent("mountroot() { mount $ROOT /root; }\n")), "scripts/local"},
		{"local-top script added", remix.File("scripts/local-top/lvm2", 0o755, remix.BytesContent("#!/bin/sh\nlvm vgchange -ay\n")), "scripts/local-top/lvm2"},
		{"entry point removed", remix.File(Entry, 0o644, remix.BytesContent("")), Entry},
		{"naming rule that activates", remix.File("usr/lib/udev/rules.d/95-dm-notify.rules", 0o644, remix.BytesContent("RUN+=\"/sbin/dmsetup udevcomplete $env{DM_COOKIE}\"\nRUN+=\"/sbin/lvm vgchange -ay\"\n")), "95-dm-notify.rules"},
		{"mdadm.conf with arrays", remix.File("etc/mdadm/mdadm.conf", 0o644, remix.BytesContent("ARRAY /dev/md0\n")), "mdadm.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := itoolsTree(t)
			if _, err := Apply(tr, Options{}); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.MkdirAll(strings.TrimSuffix(tc.undo.Name, "/"+lastElem(tc.undo.Name)), 0o755, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Put(tc.undo); err != nil {
				t.Fatal(err)
			}
			f := Assert(tr)
			found := false
			for _, x := range f {
				if strings.Contains(x.Path, tc.where) {
					found = true
				}
			}
			if !found {
				t.Errorf("Assert did not report %s: %v", tc.where, f)
			}
		})
	}
}

func lastElem(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func TestRefusals(t *testing.T) {
	arch := layout(t, "init=#!/usr/bin/ash\n", "init_functions=x\n", "hooks/", "config=HOOKS=\n")
	_, err := Apply(arch, Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "mkinitcpio") || !strings.Contains(err.Error(), "initramfs-tools, dracut-systemd, dracut-shell") {
		t.Errorf("mkinitcpio: %v", err)
	}
	unknown := layout(t, "init=#!/bin/sh\n")
	if _, err := Apply(unknown, Options{}); !errors.As(err, &ue) || !strings.Contains(err.Error(), `"unknown"`) {
		t.Errorf("unknown: %v", err)
	}
	if f := Assert(unknown); len(f) != 1 || f[0].Path != Marker {
		t.Errorf("Assert without marker: %v", f)
	}
	tr := itoolsTree(t)
	if _, err := Apply(tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(tr, Options{}); !errors.Is(err, ErrAlreadyRescue) {
		t.Errorf("second Apply: %v", err)
	}
	// A directory where a file must go is refused, not replaced.
	d := itoolsTree(t, "etc/udev/", "etc/udev/rules.d/", "etc/udev/rules.d/64-md-raid-assembly.rules/")
	if _, err := Apply(d, Options{}); !errors.Is(err, remix.ErrIsDir) {
		t.Errorf("directory in the way: %v", err)
	}
}

func TestTokens(t *testing.T) {
	for in, want := range map[string]string{
		"64-md-raid-assembly.rules":    "md raid assembly",
		"30-parse-lvm.sh":              "parse lvm",
		"mdadm-last-resort@.timer":     "mdadm last resort",
		"systemd-cryptsetup-generator": "systemd cryptsetup generator",
		"10-btrfs_timeout.sh":          "btrfs timeout",
		"ORDER":                        "order",
		"99zz-initrd-remix.sh":         "99zz initrd remix",
		"kmod-static-nodes.service":    "kmod static nodes",
	} {
		if got := strings.Join(tokens(in), " "); got != want {
			t.Errorf("tokens(%q) = %q, want %q", in, got, want)
		}
	}
	for name, want := range map[string]bool{"cryptroot": true, "cryptopensc": true, "mdadm": true, "udev": false, "keymap": false,
		"kmod-static-nodes.service": false, "systemd-udevd.service": false, "lvm2-pvscan@.service": true, "01-parse-kernel.sh": false} {
		if storageName(name) != want {
			t.Errorf("storageName(%q) = %v", name, !want)
		}
	}
}

// TestUdevPassive: the device-mapper and md rules that only name existing
// devices and complete libdevmapper's udev handshake stay, so that the
// banner's vgchange and cryptsetup do not wait forever for udev; any rule
// that assembles, activates or runs something else is masked, whatever its
// name. Bodies are the programs of Debian 12's and dracut 059's files.
func TestUdevPassive(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		keep       bool
	}{
		{"55-dm.rules", `ENV{DM_COOKIE}=="?*", IMPORT{program}="/sbin/dmsetup udevflags $env{DM_COOKIE}"
TEST!="dm", IMPORT{program}="/sbin/dmsetup info -j %M -m %m -c --nameprefixes --noheadings --rows -o name,uuid,suspended"
`, true},
		{"56-lvm.rules", `IMPORT{program}="/sbin/dmsetup splitname --nameprefixes --noheadings --rows $env{DM_NAME}"` + "\n", true},
		{"60-persistent-storage-dm.rules", `IMPORT{builtin}="blkid"` + "\n", true},
		{"63-md-raid-arrays.rules", `IMPORT{program}="/sbin/mdadm --detail --no-devices --export $devnode"
ENV{MD_LEVEL}=="raid[1-9]*", ENV{MD_CONTAINER}=="?*", PROGRAM="/bin/readlink $env{MD_CONTAINER}", ENV{MD_MON_THIS}="%c"
ENV{MD_MON_THIS}=="?*", PROGRAM="/usr/bin/basename $env{MD_MON_THIS}", ENV{SYSTEMD_WANTS}+="mdmon@%c.service"
`, true},
		{"95-dm-notify.rules", `ENV{DM_COOKIE}=="?*", RUN+="/sbin/dmsetup udevcomplete $env{DM_COOKIE}"` + "\n", true},
		{"11-dm.rules", `KERNEL!="dm-[0-9]*", GOTO="dm_end"` + "\n" + `OPTIONS+="db_persist"` + "\n", true},
		{"59-persistent-storage-md.rules", `IMPORT{program}="/sbin/mdadm --detail --export $tempnode"` + "\n", true},
		// Activation, assembly and anything unknown in a passive name.
		{"69-lvm.rules", `RUN+="/sbin/lvm pvscan --cache --listvg --checkcomplete --vgonline --autoactivation event $env{DEVNAME}"` + "\n", false},
		{"64-lvm.rules", `RUN+="/sbin/initqueue --settled --onetime --unique /sbin/lvm_scan"` + "\n", false},
		{"64-md-raid-assembly.rules", `IMPORT{program}="/sbin/mdadm --incremental --export $devnode --offroot $env{DEVLINKS}"` + "\n", false},
		{"63-md-raid-arrays.rules", `IMPORT{program}="/sbin/mdadm --incremental --export $devnode"` + "\n", false},
		{"95-dm-notify.rules", `RUN+="/bin/sh -c 'dmsetup udevcomplete $env{DM_COOKIE}; vgchange -ay'"` + "\n", false},
		{"56-lvm.rules", `RUN{program}+="/sbin/lvm vgchange -ay"` + "\n", false},
		{"55-dm.rules", `IMPORT{program}="/sbin/dmsetup udevflagsx"` + "\n", false},
		{"56-lvm.rules", `RUN += "/sbin/lvm vgchange -ay"` + "\n", false},
		{"56-lvm.rules", "RUN+=\\\n  \"/sbin/lvm vgchange -ay\"\n", false},
		{"59-persistent-storage-md.rules", `PROGRAM=="/bin/sh -c 'mdadm -I $devnode'"` + "\n", false},
		{"95-dm-notify.rules", "# RUN+=\"/sbin/lvm vgchange -ay\" in a comment runs nothing\n" + `RUN{builtin}+="blkid"` + "\n", true},
		{"64-btrfs-dm.rules", `ENV{DM_NAME}=="?*", RUN{builtin}+="btrfs ready /dev/mapper/$env{DM_NAME}"` + "\n", false},
	} {
		_, _, why := udevEdit(tc.name, []byte(tc.body))
		if (why == "") != tc.keep {
			t.Errorf("%s %q: masked=%v (%q), want kept=%v", tc.name, tc.body, why != "", why, tc.keep)
		}
	}
}

// TestUdevStorageToolsUnderAnyName: a rules file whose name says nothing
// about storage is masked when it runs a storage tool, however the key is
// written (spaces around the operator, an option, a line continuation), and
// kept when the tool is only in a comment, a builtin or another key.
func TestUdevStorageToolsUnderAnyName(t *testing.T) {
	for _, tc := range []struct {
		body string
		mask bool
	}{
		{`RUN+="/sbin/vgchange -ay"`, true},
		{`ACTION=="add", RUN += "/sbin/lvm pvscan --cache"`, true},
		{`RUN{program}+="/usr/sbin/mdadm -I $devnode"`, true},
		{"SUBSYSTEM==\"block\", \\\n  RUN+=\"/sbin/cryptsetup open $devnode x\"", true},
		{`PROGRAM=="/usr/sbin/multipath -u %k"`, true},
		{`IMPORT{program}="/sbin/zpool import -a"`, true},
		{`ENV{ID_FS_TYPE}=="linux_raid_member", RUN+="/bin/sh -c 'mdadm --incremental $devnode'"`, true},
		{"# RUN+=\"/sbin/vgchange -ay\"\n" + `IMPORT{program}="/lib/udev/ata_id --export $devnode"`, false},
		{`RUN+="/usr/libexec/hwprobe/probe $devnode"`, true}, // an unknown program, whatever it does
		{`RUN{builtin}+="kmod load $env{MODALIAS}"`, false},
		{`ENV{ID_LVM}="lvm"` + "\n" + `SYMLINK+="disk/by-label/$env{ID_FS_LABEL_ENC}"`, false},
	} {
		_, _, why := udevEdit("70-local.rules", []byte(tc.body+"\n"))
		if (why != "") != tc.mask {
			t.Errorf("%q: masked=%v (%q), want %v", tc.body, why != "", why, tc.mask)
		}
	}
}
