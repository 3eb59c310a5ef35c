package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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

// firmwareDisk is a raw disk file of a vm: on virtio-blk or an NVMe controller,
// read-only (QEMU's snapshot mode) or writable, the BIOS's first boot
// device or not.
type firmwareDisk struct {
	file     string
	nvme, rw bool
	boot     bool
}

// firmwareVM is one QEMU run with the conventions of scripts/boot.sh (TCG, the
// serial console in a log file, a timeout, QEMU's process group killed at
// the end), which also boots from the disks (no -kernel) and attaches NVMe
// disks.
type firmwareVM struct {
	kernel, initrd, append string
	disks                  []firmwareDisk
	expect                 *regexp.Regexp
	fails                  []*regexp.Regexp
	timeout                time.Duration
}

// run boots v and returns the console log; it fails the test unless expect
// appears before a fail pattern, QEMU's exit or the timeout.
func (v firmwareVM) run(t *testing.T, name string) string {
	t.Helper()
	logf := filepath.Join(t.TempDir(), name+".log")
	args := []string{"-accel", "tcg", "-machine", "pc", "-cpu", "max", "-smp", "1", "-m", "1024",
		"-nographic", "-no-reboot", "-nodefaults", "-monitor", "none", "-serial", "file:" + logf, "-nic", "none"}
	if v.kernel != "" {
		args = append(args, "-kernel", v.kernel, "-initrd", v.initrd, "-append", "console=ttyS0 panic=-1 "+v.append)
	}
	for i, d := range v.disks {
		id := fmt.Sprintf("disk%d", i)
		drive := "file=" + strings.ReplaceAll(d.file, ",", ",,") + ",if=none,format=raw,id=" + id
		if !d.rw {
			drive += ",snapshot=on"
		}
		dev := "virtio-blk-pci,drive=" + id
		if d.nvme {
			dev = fmt.Sprintf("nvme,drive=%s,serial=recovery%d", id, i)
		}
		if d.boot {
			dev += fmt.Sprintf(",bootindex=%d", i)
		}
		args = append(args, "-drive", drive, "-device", dev)
	}
	fails := append([]*regexp.Regexp{regexp.MustCompile(`Kernel panic|junk in compressed archive|Initramfs unpacking failed`)}, v.fails...)
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var qerr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qerr, &qerr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	result := "timeout"
	var data []byte
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		exited := false
		select {
		case <-done:
			exited = true
		case <-tick.C:
		}
		data, _ = os.ReadFile(logf)
		switch {
		case v.expect.Match(data):
			result = "ok"
		case matchAny(fails, data):
			result = "fail"
		case exited:
			result = "exited"
		case time.Since(start) > v.timeout:
			result = "timeout"
		default:
			continue
		}
		if !exited {
			stop()
		}
		break loop
	}
	data, _ = os.ReadFile(logf)
	if result != "ok" {
		lines := strings.Split(string(data), "\n")
		t.Fatalf("%s: %s after %s (want %q); qemu: %s\nlast console lines:\n%s", name, result,
			time.Since(start).Round(time.Second), v.expect, qerr.String(), strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
	t.Logf("%s: ok after %s", name, time.Since(start).Round(time.Second))
	return string(data)
}

func matchAny(res []*regexp.Regexp, data []byte) bool {
	for _, re := range res {
		if re.Match(data) {
			return true
		}
	}
	return false
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
	marker := func(members string) *regexp.Regexp {
		return regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("%s id=%s root=%s md=%s", env["RECOVERY_MARKER"], id, rootDev, members)))
	}
	anyMarker := regexp.MustCompile(regexp.QuoteMeta(env["RECOVERY_MARKER"]))

	// The positive control: the source machine boots from its disks.
	var src []firmwareDisk
	for i, d := range strings.Fields(env["RECOVERY_DISKS"]) {
		src = append(src, firmwareDisk{file: filepath.Join(dir, d), boot: i == 0})
	}
	log := firmwareVM{disks: src, expect: marker("vda1,vdb1"), fails: []*regexp.Regexp{anyMarker}, timeout: 300 * time.Second}.run(t, "source")
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
	disks := []firmwareDisk{{file: env["RECOVERY_BACKUP"]}}
	for _, p := range nvme {
		disks = append(disks, firmwareDisk{file: p, nvme: true, rw: true})
	}
	log = firmwareVM{kernel: env["RECOVERY_KERNEL"], initrd: rescue, disks: disks,
		expect:  regexp.MustCompile(`RECOVER-DONE`),
		fails:   []*regexp.Regexp{regexp.MustCompile(`RECOVER-FAILED`), anyMarker},
		timeout: 1200 * time.Second}.run(t, "recovery")
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
	var boot []firmwareDisk
	for i, p := range nvme {
		boot = append(boot, firmwareDisk{file: p, nvme: true, rw: true, boot: i == 0})
	}
	log = firmwareVM{disks: boot, expect: marker("nvme0n1p1,nvme1n1p1"), fails: []*regexp.Regexp{anyMarker}, timeout: 300 * time.Second}.run(t, "restored")
	if m := regexp.MustCompile(`md/raid1:md\d+: active with 2 out of 2 mirrors`).FindString(log); m == "" {
		t.Error("the restored system's console shows no RAID1 assembled from both disks")
	}
}
