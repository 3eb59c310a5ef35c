package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay"
)

// recoveryLab builds (or finds cached) the source machine of
// scripts/recovery-lab.sh and returns its recovery.env.
func recoveryLab(t *testing.T, l *lab) map[string]string {
	t.Helper()
	testtool.Require(t, "mke2fs")
	testtool.Require(t, "debugfs")
	_, env := cachedStage(t, "recovery-lab.sh", l.dir, "recovery.env")
	for _, k := range []string{"RECOVERY_DIR", "RECOVERY_ROOT", "RECOVERY_KVER", "RECOVERY_KERNEL", "RECOVERY_INITRD",
		"RECOVERY_DISKS", "RECOVERY_DISK_SIZE", "RECOVERY_BACKUP", "RECOVERY_MARKER", "RECOVERY_ID", "RECOVERY_VG"} {
		if env[k] == "" {
			t.Fatalf("recovery.env: no %s", k)
		}
	}
	return env
}

// recoveryBoot boots one machine of the cycle with scripts/boot.sh: from
// its first disk through the firmware when kernel is "", and returns the
// console log. Disks marked rw are the files themselves (the cycle writes
// the NVMe disks and boots from them afterwards), the others snapshots.
func recoveryBoot(t *testing.T, name, kernel, initrd string, disks []recoveryDisk, expect string, fails []string, timeout int) string {
	t.Helper()
	logf := filepath.Join(t.TempDir(), name+".log")
	argv := []string{"--expect", expect, "--timeout", fmt.Sprint(timeout), "--log", logf}
	if kernel != "" {
		argv = append(argv, "--kernel", kernel, "--initrd", initrd)
	}
	for _, f := range fails {
		argv = append(argv, "--fail", f)
	}
	for _, d := range disks {
		bus, kind := "virtio", "--disk"
		if d.nvme {
			bus = "nvme"
		}
		if d.rw {
			kind = "--disk-rw"
		}
		argv = append(argv, "--bus", bus, kind, d.file)
	}
	return runBootScript(t, name, logf, argv)
}

// recoveryDisk is a disk of the cycle: on virtio-blk or NVMe, written in
// place or not.
type recoveryDisk struct {
	file     string
	nvme, rw bool
}

// zeroCheck is a writer that notes whether anything but zero bytes went
// through it.
type zeroCheck struct{ nonzero bool }

func (z *zeroCheck) Write(b []byte) (int, error) {
	for _, c := range b {
		if c != 0 {
			z.nonzero = true
			break
		}
	}
	return len(b), nil
}

// blank reports whether a disk file holds only zero bytes.
func blank(t *testing.T, file string) bool {
	t.Helper()
	var z zeroCheck
	streamFile(t, file, &z)
	return !z.nonzero
}

// buildPlan runs build ARGS --dry-run --json and returns what its overlay
// would add.
func buildPlan(t *testing.T, args ...string) overlay.Report {
	t.Helper()
	code, stdout, errs := cli(t, append(slices.Clone(args), "--dry-run", "--json")...)
	if code != exitOK {
		t.Fatalf("build --dry-run: exit %d: %s", code, errs)
	}
	var plan struct {
		Overlay overlay.Report `json:"overlay"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	return plan.Overlay
}

// recoverSteps are the steps scripts/recovery/restore.sh reports, in order.
var recoverSteps = []string{"find the backup", "pick the target disks", "partition", "md arrays",
	"LVM volume groups", "file systems", "restore the files", "regenerate the initramfs",
	"install the boot loader", "finish"}

// TestRecoveryCycleLab is issue 11 point 4, the whole recovery cycle: the
// source machine of scripts/recovery-lab.sh (GPT, md RAID1, LVM, ext4,
// GRUB for BIOS on both virtio disks, a host-only initramfs) boots from its
// disks to its marker (the positive control); its backup (layout and tar)
// sits on a disk of its own. A replacement machine with two blank NVMe
// disks boots the rescue image built from the source's host-only initrd,
// whose --run payload is the worked example scripts/recovery/restore.sh: it
// recreates the partitions, the array, the volume group and the file system
// with their UUIDs, restores the tar, regenerates the initramfs in a chroot
// and installs GRUB with the rescue image's own grub-install. Then the
// machine boots from the NVMe disks alone (SeaBIOS, GRUB, the restored
// kernel and initramfs assembling the array on the NVMe partitions) and
// reaches the source's marker, with its identity.
func TestRecoveryCycleLab(t *testing.T) {
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	env := recoveryLab(t, l)
	dir, id, vg := env["RECOVERY_DIR"], env["RECOVERY_ID"], env["RECOVERY_VG"]
	rootDev := "/dev/mapper/" + vg + "-root"
	// boot.sh takes extended regexes (grep -E).
	marker := func(members string) string {
		return regexp.QuoteMeta(fmt.Sprintf("%s id=%s root=%s md=%s", env["RECOVERY_MARKER"], id, rootDev, members))
	}
	anyMarker := regexp.QuoteMeta(env["RECOVERY_MARKER"])

	// The positive control: the source machine boots from its disks.
	var src []recoveryDisk
	for _, d := range strings.Fields(env["RECOVERY_DISKS"]) {
		src = append(src, recoveryDisk{file: filepath.Join(dir, d)})
	}
	log := recoveryBoot(t, "source", "", "", src, marker("vda1,vdb1"), []string{anyMarker}, 300)
	if !strings.Contains(log, "GRUB") && !strings.Contains(log, "Booting") {
		t.Log("the source's console shows no GRUB line (serial terminal)")
	}

	// The replacement machine: two blank NVMe disks of the same size.
	work := t.TempDir()
	var nvme []string
	for i := range 2 {
		p := filepath.Join(work, fmt.Sprintf("nvme%d.img", i))
		if out, err := exec.Command("truncate", "-s", env["RECOVERY_DISK_SIZE"], p).CombinedOutput(); err != nil {
			t.Fatalf("truncate: %v: %s", err, out)
		}
		if !blank(t, p) {
			t.Fatalf("%s is not blank before the recovery", p)
		}
		nvme = append(nvme, p)
	}

	// The rescue image, from the source's host-only initrd, with the
	// recovery script as its payload. The NVMe driver is not in a
	// virtio-only initrd: build's default driver classes add it from the
	// root.
	rescue := filepath.Join(work, "rescue.img")
	base := []string{"build", "--root", env["RECOVERY_ROOT"], "--input", env["RECOVERY_INITRD"], "--output", rescue,
		"--kver", env["RECOVERY_KVER"], "--run", "../../scripts/recovery/restore.sh"}
	plan := buildPlan(t, base...)
	need := map[string]bool{"usr/sbin/grub-install": false, "usr/lib/grub/i386-pc/boot.img": false,
		"usr/lib/grub/i386-pc/mdraid1x.mod": false, "usr/lib/grub/i386-pc/lvm.mod": false, "usr/sbin/chroot": false,
		"usr/sbin/sfdisk": false, "usr/sbin/mdadm": false, "usr/sbin/lvm": false, "usr/bin/tar": false}
	nvmeMod := "usr/lib/modules/" + env["RECOVERY_KVER"] + "/kernel/drivers/nvme/host/nvme.ko"
	need[nvmeMod] = false
	for _, a := range plan.Added {
		if _, ok := need[a.Path]; ok {
			need[a.Path] = true
		}
	}
	for p, ok := range need {
		if !ok {
			t.Errorf("the rescue image would not hold %s", p)
		}
	}
	if code, _, errs := cli(t, append(base, "-q")...); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, errs)
	}

	// The recovery: the backup disk read-only, the NVMe disks writable.
	disks := []recoveryDisk{{file: env["RECOVERY_BACKUP"]}}
	for _, p := range nvme {
		disks = append(disks, recoveryDisk{file: p, nvme: true, rw: true})
	}
	log = recoveryBoot(t, "recovery", env["RECOVERY_KERNEL"], rescue, disks, "RECOVER-DONE", []string{"RECOVER-FAILED", anyMarker}, 1200)
	at := 0
	for _, s := range recoverSteps {
		i := strings.Index(log[at:], "RECOVER: "+s+" ok")
		if i < 0 {
			t.Errorf("the recovery's console has no %q after the previous step", "RECOVER: "+s+" ok")
			continue
		}
		at += i
		line, _, _ := strings.Cut(log[at:], "\n")
		t.Log(strings.TrimSpace(line))
	}
	// The rescue's smartctl read each new disk's health before writing.
	if n := strings.Count(log, "(SMART PASSED)"); n != len(nvme) {
		t.Errorf("the recovery reports SMART health PASSED for %d disks, want %d", n, len(nvme))
	}
	for _, p := range nvme {
		if blank(t, p) {
			t.Errorf("%s is still blank after the recovery", p)
		}
	}

	// The replacement boots from its NVMe disks alone, to the source's
	// marker, its root on the LV of the array of the NVMe partitions.
	var boot []recoveryDisk
	for _, p := range nvme {
		boot = append(boot, recoveryDisk{file: p, nvme: true, rw: true})
	}
	log = recoveryBoot(t, "restored", "", "", boot, marker("nvme0n1p1,nvme1n1p1"), []string{anyMarker}, 300)
	if m := regexp.MustCompile(`md/raid1:md\d+: active with 2 out of 2 mirrors`).FindString(log); m == "" {
		t.Error("the restored system's console shows no RAID1 assembled from both disks")
	}
}
