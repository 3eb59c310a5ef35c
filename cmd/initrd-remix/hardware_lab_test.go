package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// hostOnlyImage is one image of scripts/hostonly.sh.
type hostOnlyImage struct{ name, family, path string }

// hostOnlyImages builds (or finds cached) the host-only images of
// scripts/hostonly.sh for the main lab's kernel: one per generator family,
// each holding the drivers of a virtio machine and none of the others.
func hostOnlyImages(t *testing.T, l *lab) ([]hostOnlyImage, map[string]string) {
	t.Helper()
	for _, p := range []string{"unshare", "chroot", "flock"} {
		testtool.Require(t, p)
	}
	dir, env := cachedStage(t, "hostonly.sh", l.dir, "hostonly.env")
	if env["HOSTONLY_KVER"] != l.env["LAB_KVER"] || env["HOSTONLY_ROOT_UUID"] != l.env["LAB_MARKER_UUID"] {
		t.Fatalf("hostonly.env: kernel %q, root %q; the lab's are %q, %q", env["HOSTONLY_KVER"], env["HOSTONLY_ROOT_UUID"],
			l.env["LAB_KVER"], l.env["LAB_MARKER_UUID"])
	}
	var out []hostOnlyImage
	for _, f := range strings.Fields(env["HOSTONLY_IMAGES"]) {
		name, family, _ := strings.Cut(f, ":")
		out = append(out, hostOnlyImage{name, family, filepath.Join(dir, name+".img")})
	}
	if len(out) != 3 {
		t.Fatalf("hostonly.env lists %d images, want one per family: %q", len(out), env["HOSTONLY_IMAGES"])
	}
	return out, env
}

// hostOnlyArgs name the root by its UUID, whatever bus its disk is on.
// rd.retry= shortens dracut's wait for a root that never comes, from 180 s
// to 20 s after udev settles, with and without systemd (rd.timeout= would
// count from the start of the boot, which under TCG can come before the
// disk's driver loads); initramfs-tools gives up after 30 s by itself.
// noresume skips the wait for the swap device the lab's root names.
func hostOnlyArgs(l *lab) string {
	return "root=UUID=" + l.env["LAB_MARKER_UUID"] + " rootfstype=ext4 ro noresume rd.retry=20"
}

// rootNotFound is what each family prints when the root never shows up:
// initramfs-tools "Gave up waiting for root file system device", dracut's
// initqueue (with or without systemd) "Could not boot.", and its emergency
// hook's "/dev/disk/by-uuid/... does not exist".
const rootNotFound = `Gave up waiting for root|Could not boot|does not exist`

// nvmeClass is the PCI class of an NVMe controller as the kernel logs it at
// enumeration: the device was there for a driver to take.
var nvmeClass = regexp.MustCompile(`pci [0-9a-f:.]+: \[[0-9a-f]{4}:[0-9a-f]{4}\] type 00 class 0x010802`)

// TestHostOnlyLab is issue 11 point 2: host-only images of every family
// (scripts/hostonly.sh: initramfs-tools MODULES=list, dracut with and
// without systemd given their drivers) hold the drivers of a virtio machine
// and none of the others, so they are real host-only images: with the
// root's disk on virtio-blk each mounts the root and reaches the marker
// (positive control), and the same image, arguments and disk behind an
// NVMe controller never find the root (negative control). Boots run two at
// a time.
func TestHostOnlyLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	images, env := hostOnlyImages(t, l)
	if slices.Contains(strings.Fields(env["HOSTONLY_BUILTIN"]), "nvme") {
		t.Fatalf("the lab kernel has nvme built in: no image can lack it")
	}
	for _, im := range images {
		mods, err := os.ReadFile(filepath.Join(filepath.Dir(im.path), im.name+".modules"))
		if err != nil {
			t.Fatal(err)
		}
		have := strings.Fields(string(mods))
		for _, m := range strings.Fields(env["HOSTONLY_ABSENT"]) {
			if slices.Contains(have, m) {
				t.Errorf("%s holds %s", im.name, m)
			}
		}
		if !slices.Contains(have, "virtio_blk") {
			t.Errorf("%s holds no virtio_blk", im.name)
		}
		for _, bus := range []string{"virtio", "nvme"} {
			t.Run(im.name+"/"+bus, func(t *testing.T) {
				t.Parallel()
				m := vm{initrd: im.path, args: hostOnlyArgs(l), disks: []vmDisk{{path: l.env["LAB_MARKER_DISK"], bus: bus}}}
				if bus == "virtio" {
					m.expect = l.env["LAB_MARKER"]
					bootVM(t, l, m)
					return
				}
				m.expect, m.fails = rootNotFound, []string{l.env["LAB_MARKER"]}
				log, _ := bootVM(t, l, m)
				if !nvmeClass.MatchString(log) {
					t.Error("the console shows no NVMe controller on the PCI bus")
				}
				t.Logf("%s", regexp.MustCompile(rootNotFound).FindString(log))
			})
		}
	}
}

// hwBus is one bus of the replacement hardware: the disk on it and the
// driver that must be bound along the disk's device path in the rescue
// boot.
type hwBus struct{ bus, driver, disk string }

// TestReplacementHardwareLab is issue 11 point 3: the rescue image of each
// host-only image, built by default (the driver classes of --root), booted
// with the testbed's disks, the marker root and a blank disk behind NVMe,
// AHCI (SATA), an LSI MegaRAID SAS, virtio-scsi and USB storage, and with an
// e1000e NIC instead of virtio-net: the rescue sees every disk on its bus
// with its size, and the NIC with its driver, and leaves storage untouched
// (no md array, dm device or mount; every disk's sha256 unchanged). The
// negative control: on the same hardware, a rescue image built with
// --drivers none sees no disk and no NIC, so the drivers came from the
// classes. Boots run two at a time.
func TestReplacementHardwareLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	images, _ := hostOnlyImages(t, l)
	tb := testbed(t, l)
	work := t.TempDir()
	payload := filepath.Join(work, "census.sh")
	if err := os.WriteFile(payload, []byte(censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	blank := func(name string, mib int64) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, mib<<20); err != nil {
			t.Fatal(err)
		}
		return p
	}
	buses := []hwBus{
		{"nvme", "nvme", filepath.Join(tb, "md-a.img")},
		{"ahci", "ahci", filepath.Join(tb, "md-b.img")},
		{"megasas", "megaraid_sas", filepath.Join(tb, "gpt.img")},
		{"virtio-scsi", "virtio_scsi", l.env["LAB_MARKER_DISK"]},
		{"usb", "usb-storage", blank("usb.img", 24)},
	}
	var disks []vmDisk
	for _, b := range buses {
		disks = append(disks, vmDisk{path: b.disk, bus: b.bus, rw: true})
	}
	args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
		l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])
	type boot struct {
		im      hostOnlyImage
		drivers string
	}
	boots := []boot{}
	for _, im := range images {
		boots = append(boots, boot{im, ""})
	}
	boots = append(boots, boot{images[0], "none"})
	for _, b := range boots {
		name := b.im.name
		if b.drivers != "" {
			name += "/drivers-" + b.drivers
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "rescue.img")
			argv := []string{"build", "-q", "--root", l.env["LAB_ROOT"], "--input", b.im.path, "--output", out,
				"--kver", l.env["LAB_KVER"], "--run", payload}
			if b.drivers != "" {
				argv = append(argv, "--drivers", b.drivers)
			}
			if code, _, errs := cli(t, argv...); code != exitOK {
				t.Fatalf("build: exit %d: %s", code, errs)
			}
			log, changed := bootVM(t, l, vm{initrd: out, args: args, expect: censusExpect, disks: disks, nics: []string{"e1000e"},
				fails: []string{passphrasePrompt, `RESCUE-CENSUS md=[1-9]`, l.env["LAB_MARKER"]}})
			for _, c := range changed {
				t.Errorf("%s changed during the boot", c)
			}
			if b.drivers == "none" {
				checkCensusDisks(t, log, 0)
				if nic := nicRe.FindString(log); nic != "" {
					t.Errorf("without drivers the rescue has a NIC: %s", nic)
				}
				return
			}
			checkCensusDisks(t, log, len(buses))
			checkHardware(t, log, buses)
		})
	}
}

var (
	diskRe = regexp.MustCompile(`RESCUE-DISK name=(\S+) sectors=(\d+) serial=(\S*) drivers=(\S*)`)
	nicRe  = regexp.MustCompile(`RESCUE-NIC name=(\S+) driver=(\S+)`)
)

// checkHardware checks the census of a boot on buses: each bus's disk is
// there, with its size and its controller's driver, and the e1000e NIC is
// there with its driver.
func checkHardware(t *testing.T, log string, buses []hwBus) {
	t.Helper()
	found := diskRe.FindAllStringSubmatch(log, -1)
	used := map[int]bool{}
	for _, b := range buses {
		fi, err := os.Stat(b.disk)
		if err != nil {
			t.Fatal(err)
		}
		sectors := fmt.Sprint(fi.Size() / 512)
		i := slices.IndexFunc(found, func(d []string) bool {
			return d[2] == sectors && slices.Contains(strings.Split(d[4], ","), b.driver)
		})
		if i < 0 || used[i] {
			t.Errorf("no disk of %s sectors behind %s (%s) among %q", sectors, b.driver, b.bus, found)
			continue
		}
		used[i] = true
		t.Logf("%s: %s", b.bus, found[i][0])
	}
	nics := nicRe.FindAllStringSubmatch(log, -1)
	i := slices.IndexFunc(nics, func(n []string) bool { return n[2] == "e1000e" })
	if i < 0 {
		t.Errorf("no NIC driven by e1000e among %q", nics)
		return
	}
	t.Logf("nic: %s", nics[i][0])
}

// TestBootScriptBuses checks the QEMU command line scripts/boot.sh makes of
// --bus and --nic and for a boot from the first disk (no --kernel), and its
// usage errors, with BOOT_QEMU set to a script
// that records its arguments (the boots of TestReplacementHardwareLab show
// that QEMU and the kernel take them).
func TestBootScriptBuses(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "qemu")
	if err := os.WriteFile(rec, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >\"$0.args\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k, i, d := f("vmlinuz"), f("initrd"), f("d,1.img")
	base := []string{"--kernel", k, "--initrd", i, "--timeout", "5", "--log", filepath.Join(dir, "log")}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // consecutive arguments QEMU must get
	}{
		{"default virtio-blk, no NIC", []string{"--disk", d}, 3,
			[]string{"-nic", "none"}},
		{"default drive", []string{"--disk", d}, 3,
			[]string{"-drive", "file=" + strings.ReplaceAll(d, ",", ",,") + ",format=raw,snapshot=on,if=virtio"}},
		{"nvme", []string{"--bus", "nvme", "--disk-rw", d}, 3,
			[]string{"-drive", "file=" + strings.ReplaceAll(d, ",", ",,") + ",format=raw,if=none,id=disk0", "-device", "nvme,drive=disk0,serial=boot0"}},
		{"ahci ports", []string{"--bus", "ahci", "--disk", d, "--disk", d}, 3,
			[]string{"-device", "ide-hd,drive=disk1,bus=ahci0.1,serial=boot1"}},
		{"megasas after virtio", []string{"--disk", d, "--bus", "megasas", "--disk", d}, 3,
			[]string{"-device", "megasas,id=megasas0", "-drive"}},
		{"virtio-scsi target", []string{"--bus", "virtio-scsi", "--disk", d, "--disk", d}, 3,
			[]string{"-device", "scsi-hd,drive=disk1,bus=virtioscsi0.0,scsi-id=1,serial=boot1"}},
		{"usb", []string{"--bus", "usb", "--disk", d}, 3,
			[]string{"-device", "qemu-xhci,id=usb0"}},
		{"e1000e", []string{"--nic", "e1000e"}, 3,
			[]string{"-netdev", "user,id=net0,restrict=on", "-device", "e1000e,netdev=net0"}},
		{"hostfwd on the first NIC", []string{"--nic", "virtio-net-pci", "--hostfwd", "2222:22", "--hostfwd", "8080:80"}, 3,
			[]string{"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80"}},
		{"hostfwd without a NIC", []string{"--hostfwd", "2222:22"}, 64, nil},
		{"hostfwd malformed", []string{"--nic", "e1000e", "--hostfwd", "22"}, 64, nil},
		{"firmware boot from the first disk", []string{"--bus", "nvme", "--disk-rw", d, "--disk", d}, 3,
			[]string{"-device", "nvme,drive=disk0,serial=boot0,bootindex=0", "-drive"}},
		{"firmware boot from virtio-blk", []string{"--disk", d}, 3,
			[]string{"-device", "virtio-blk-pci,drive=disk0,bootindex=0"}},
		{"firmware boot without a disk", nil, 64, nil},
		{"unknown bus", []string{"--bus", "ide", "--disk", d}, 64, nil},
		{"unknown nic", []string{"--nic", "pcnet"}, 64, nil},
		{"seven ahci disks", append([]string{"--bus", "ahci"}, slices.Repeat([]string{"--disk", d}, 7)...), 64, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(rec + ".args")
			argv := slices.Clone(base)
			if strings.HasPrefix(tc.name, "firmware boot") {
				argv = argv[4:] // no --kernel, no --initrd
			}
			cmd := exec.Command("../../scripts/boot.sh", append(argv, tc.args...)...)
			cmd.Env = append(os.Environ(), "BOOT_QEMU="+rec)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, out)
			}
			if tc.want == nil {
				return
			}
			data, err := os.ReadFile(rec + ".args")
			if err != nil {
				t.Fatalf("QEMU did not run: %v (%s)", err, out)
			}
			got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			for j := range got {
				if j+len(tc.want) <= len(got) && slices.Equal(got[j:j+len(tc.want)], tc.want) {
					return
				}
			}
			t.Errorf("QEMU arguments %q lack %q", got, tc.want)
		})
	}
}
