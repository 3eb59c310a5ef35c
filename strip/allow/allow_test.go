package allow

import (
	"testing"

	"github.com/initrd-remix/initrd-remix/strip/unitfile"
)

func TestUdevProgram(t *testing.T) {
	for cmd, want := range map[string]bool{
		"ata_id --export $devnode":            true,
		"/usr/lib/udev/scsi_id --export -d x": true,
		"/sbin/dmsetup info -c --noheadings":  true,
		"/sbin/dmsetup create x":              false,
		"/sbin/mdadm --detail --export $dev":  true,
		"/sbin/mdadm -I $devnode":             false,
		"/sbin/mdadm --incremental $devnode":  false,
		"/sbin/lvm pvscan --cache":            false,
		"/usr/bin/systemd-run /sbin/lvm":      false,
		"/bin/sh -c 'echo x'":                 false,
		"$env{REMOVE_CMD}":                    false,
		"socket:@/org/x":                      false,
		"/sbin/blockdev --setrw $devnode":     false,
		"/sbin/wipefs -a $devnode":            false,
		"/sbin/initqueue --onetime x":         false,
		"/usr/bin/udevadm trigger -s block":   true,
		"/usr/libexec/hwprobe/probe $devnode": false,
		"/usr/libexec/hw/ata_id --export x":   false, // an allowed name in another directory
		"../../tmp/scsi_id":                   false,
	} {
		if got := UdevProgram(cmd); got != want {
			t.Errorf("UdevProgram(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	parse := func(s string) *unitfile.File {
		f, err := unitfile.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name, body string
		want       bool
	}{
		{"systemd-udevd.service", "[Service]\nExecStart=/lib/systemd/systemd-udevd\nExecReload=udevadm control --reload\n", true},
		{"systemd-udevd.service", "[Service]\nExecStart=/lib/systemd/systemd-udevd\nExecStartPost=/sbin/vgchange -ay\n", false},
		{"modprobe@drm.service", "[Service]\nExecStart=-/sbin/modprobe -abq %i\n", true},
		{"systemd-poweroff.service", "[Service]\nExecStart=systemctl --force poweroff\n", true},
		{"systemd-poweroff.service", "[Service]\nExecStart=systemctl start lvm2-activation.service\n", false},
		{"vdo.service", "[Service]\nExecStart=/usr/bin/vdo start\n", false},
		{"systemd-udevd.service", "[Service]\nExecStart=/usr/libexec/hw/systemd-udevd\n", false},
		{"systemd-journald.socket", "[Socket]\nListenStream=/run/systemd/journal/stdout\n", true}, // activates systemd-journald.service by its name
		{"systemd-journald-dev-log.socket", "[Socket]\nService=systemd-journald.service\n", true},
		{"syslog.socket", "[Socket]\nListenDatagram=/run/systemd/journal/syslog\n", false},
		{"sys-kernel-config.mount", "[Mount]\nWhat=configfs\nType=configfs\n", true},
		{"sysroot.mount", "[Mount]\nWhat=/dev/vda\nType=ext4\n", false},
		{"machine.slice", "[Slice]\n", true},
		{"hw.timer", "[Timer]\nOnBootSec=1\n", false},
	} {
		if got, why := Check(tc.name, parse(tc.body)); got != tc.want {
			t.Errorf("Check(%s, %q) = %v (%s), want %v", tc.name, tc.body, got, why, tc.want)
		}
	}
}

func TestStorageCommand(t *testing.T) {
	for body, want := range map[string]string{
		"#!/bin/sh\n# mdadm in a comment\nudevadm settle\n":                                                             "",
		"if [ -d /sys/firmware/efi/efivars ]; then\n\tmount -t efivarfs -o rw efivarfs /sys/firmware/efi/efivars\nfi\n": "",
		"mount /dev/vda1 /mnt\n":                "mount",
		"mount -t ext4 /dev/vda1 /mnt\n":        "mount",
		"lvm vgchange -ay\n":                    "lvm",
		"x=1; /sbin/cryptsetup open /dev/x y\n": "cryptsetup",
		"echo ok > /dev/kmsg\n":                 "",
		"dd if=/dev/zero of=/dev/vdc count=1\n": "dd",
	} {
		if got := StorageCommand([]byte(body)); got != want {
			t.Errorf("StorageCommand(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestPlainConfigLine(t *testing.T) {
	for line, want := range map[string]bool{
		"MODULES=most": true, `COMPRESS="zstd"`: true, "RESUME=UUID=1-2": true, "export X='a b'": true, "# x": true, "": true,
		"X=$(vgchange -ay)": false, "vgchange -ay": false, "X=`id`": false, "X=1; lvm x": false, `X="$Y"`: false,
	} {
		if got := PlainConfigLine(line); got != want {
			t.Errorf("PlainConfigLine(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestTmpfilesLine(t *testing.T) {
	for line, want := range map[string]bool{
		"d /run/x 0755 root root -":                   true,
		"w /proc/sys/kernel/printk - - - - 4":         true,
		"w- /sys/module/x/parameters/y - - - - 1":     true,
		"w /dev/vda - - - - CANARY":                   false,
		"w+ /sys/block/md0/md/sync_action - - - - go": false,
		"F /dev/sdb - - - - x":                        false,
		"f+ /dev/disk/by-label/x - - - - x":           false,
		"w /run/%m - - - - x":                         false,
		"c /dev/fuse 0666 - - - 10:229":               true,
		"# w /dev/vda":                                true,
	} {
		if got := TmpfilesLine(line); got != want {
			t.Errorf("TmpfilesLine(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestModprobeLine(t *testing.T) {
	for line, want := range map[string]bool{
		"softdep ohci-hcd pre: ehci-hcd": true,
		"options raid1 x=1":              true,
		"install bluetooth /bin/true":    true,
		"install nouveau /sbin/modprobe --ignore-install nouveau $CMDLINE_OPTS":              true,
		"install raid1 /sbin/modprobe --ignore-install raid1; /sbin/mdadm --assemble --scan": false,
		"remove dm_mod /sbin/dmsetup remove_all && /sbin/modprobe -r --ignore-remove dm_mod": false,
		"install virtio_blk /usr/libexec/hw/prep":                                            false,
		"install x /bin/true $(vgchange -ay)":                                                false,
	} {
		if got := ModprobeLine(line); got != want {
			t.Errorf("ModprobeLine(%q) = %v, want %v", line, got, want)
		}
	}
}
