package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/strip"
)

// censusPayload is the --run payload of the rescue boots. It reads /sys
// and /proc only, with shell builtins (every family's image has a shell,
// not every one has ls or readlink), and knows nothing of the lab: it waits
// until the set of block devices has stopped changing (USB storage comes
// late), then prints a RESCUE-DISK line for every disk the kernel brought
// up (name, size in 512-byte sectors, serial where the driver exposes one,
// and the drivers bound along its device path, nearest first: sd,ahci or
// sd,usb-storage,usb,usb,xhci_hcd), a RESCUE-NIC line for every network
// card with its driver, and the census: md arrays, device-mapper devices,
// mounted block devices and disks.
const censusPayload = `#!/bin/sh
blockdevs() { set -- /sys/block/*; echo "$*"; }
prev=$(blockdevs); same=0; waited=0
while [ "$same" -lt 3 ] && [ "$waited" -lt 30 ]; do
	sleep 1 2>/dev/null || break
	now=$(blockdevs); waited=$((waited+1))
	if [ "$now" = "$prev" ]; then same=$((same+1)); else same=0; prev=$now; fi
done
md=0; dm=0; disks=0
for d in /sys/block/*; do
	n=${d##*/}
	case $n in
	md*) md=$((md+1)); continue ;;
	dm-*) dm=$((dm+1)); continue ;;
	loop*|ram*|zram*|nbd*) continue ;;
	esac
	[ -e "$d/device" ] || continue
	size=; serial=; drivers=
	read -r size <"$d/size"
	[ -r "$d/serial" ] && read -r serial <"$d/serial"
	[ -r "$d/device/serial" ] && read -r serial <"$d/device/serial"
	p=$(cd -P "$d/device" && pwd)
	while [ -n "$p" ] && [ "$p" != /sys/devices ]; do
		if [ -e "$p/driver" ]; then
			drv=$(cd -P "$p/driver" && pwd)
			drivers="$drivers${drivers:+,}${drv##*/}"
		fi
		p=${p%/*}
	done
	echo "RESCUE-DISK name=$n sectors=$size serial=$serial drivers=$drivers"
	disks=$((disks+1))
done
for n in /sys/class/net/*; do
	[ -e "$n/device/driver" ] || continue
	drv=$(cd -P "$n/device/driver" && pwd)
	echo "RESCUE-NIC name=${n##*/} driver=${drv##*/}"
done
mounted=0
while read -r dev mnt rest; do
	case $dev in /dev/*) mounted=$((mounted+1)); echo "mounted: $dev on $mnt" ;; esac
done </proc/mounts
echo "RESCUE-CENSUS md=$md dm=$dm mounted=$mounted disks=$disks"
exit 7
`

// passphrasePrompt is what a LUKS unlock prints when it asks; a rescue boot
// must never show it.
const passphrasePrompt = `(Please enter passphrase|Enter passphrase|Please unlock disk|Passphrase for)`

var censusRe = regexp.MustCompile(`RESCUE-CENSUS md=(\d+) dm=(\d+) mounted=(\d+) disks=(\d+)`)

// cachedStage runs one of the scripts that build a cached stage from the lab
// (scripts/testbed.sh, mkosi-initrd.sh, hostonly.sh: they print their
// directory last) and returns that directory and its env file, read like
// lab.env.
func cachedStage(t *testing.T, script, labDir, envFile string) (string, map[string]string) {
	t.Helper()
	cmd := exec.Command("../../scripts/"+script, labDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/%s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	data, err := os.ReadFile(filepath.Join(dir, envFile))
	if err != nil {
		t.Fatalf("%s printed %q: %v", script, dir, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	t.Logf("%s", strings.SplitN(string(data), "\n", 2)[0])
	return dir, env
}

// testbed builds (or finds cached) the storage testbed of scripts/testbed.sh.
func testbed(t *testing.T, l *lab) string {
	t.Helper()
	testtool.Require(t, "mke2fs")
	dir, _ := cachedStage(t, "testbed.sh", l.dir, "testbed.env")
	return dir
}

var testbedDisks = []string{"md-a.img", "md-b.img", "gpt.img"}

// streamFile copies the file at p into w.
func streamFile(t *testing.T, p string, w io.Writer) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		t.Fatal(err)
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	h := sha256.New()
	streamFile(t, p, h)
	return fmt.Sprintf("%x", h.Sum(nil))
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// bootTestbed boots initrd on the testbed disks and returns the console log.
// rw attaches fresh copies writable (their checksums are then compared with
// the testbed's); otherwise QEMU's snapshot mode protects the testbed.
func bootTestbed(t *testing.T, l *lab, tb, initrd, args, expect string, rw bool, fails ...string) string {
	t.Helper()
	log, changed := bootTestbedChanges(t, l, tb, initrd, args, expect, rw, fails...)
	for _, c := range changed {
		t.Errorf("%s changed during the boot", c)
	}
	return log
}

// bootTestbedChanges is bootTestbed for a boot that may write: it returns
// the console log and the names of the writable copies whose sha256 changed
// (with rw; without, none can).
func bootTestbedChanges(t *testing.T, l *lab, tb, initrd, args, expect string, rw bool, fails ...string) (string, []string) {
	t.Helper()
	var disks []vmDisk
	for _, d := range testbedDisks {
		disks = append(disks, vmDisk{path: filepath.Join(tb, d), rw: rw})
	}
	return bootVM(t, l, vm{initrd: initrd, args: args, expect: expect, fails: fails, disks: disks})
}

// vmDisk is a disk of a boot: a file, the bus it sits on (scripts/boot.sh
// --bus; "" is virtio-blk) and whether a writable copy is attached, whose
// sha256 the boot must not change, or the file itself in QEMU's snapshot
// mode.
type vmDisk struct {
	path, bus string
	rw        bool
}

// vm is one boot of scripts/boot.sh with the lab's kernel.
type vm struct {
	initrd, args, expect string
	fails                []string
	disks                []vmDisk
	nics                 []string // QEMU models, scripts/boot.sh --nic
	timeout              int      // seconds; 0 is 300
	// esp, when set, boots OVMF from an ESP of this directory's files
	// instead of the lab's kernel and initrd (scripts/boot.sh --esp);
	// secureBoot turns Secure Boot on (--secure-boot).
	esp        string
	secureBoot bool
}

// bootVM boots a vm and returns the console log and the names of the
// writable copies whose sha256 changed. A boot that ends otherwise than by
// its expect line fails the test.
func bootVM(t *testing.T, l *lab, m vm) (string, []string) {
	t.Helper()
	logf := filepath.Join(t.TempDir(), "console.log")
	timeout := m.timeout
	if timeout == 0 {
		timeout = 300
	}
	argv := []string{"--kernel", l.env["LAB_KERNEL"], "--initrd", m.initrd, "--append", m.args}
	what := filepath.Base(m.initrd)
	if m.esp != "" {
		argv, what = []string{"--esp", m.esp}, "ESP "+filepath.Base(m.esp)
		if m.secureBoot {
			argv = append(argv, "--secure-boot")
		}
	}
	argv = append(argv, "--expect", m.expect, "--timeout", fmt.Sprint(timeout), "--log", logf)
	for _, f := range m.fails {
		argv = append(argv, "--fail", f)
	}
	for _, n := range m.nics {
		argv = append(argv, "--nic", n)
	}
	want := map[string]string{}
	for _, d := range m.disks {
		bus := d.bus
		if bus == "" {
			bus = "virtio"
		}
		p := d.path
		if d.rw {
			p = filepath.Join(t.TempDir(), filepath.Base(d.path))
			copyFile(t, d.path, p)
			want[p] = sha256File(t, d.path)
			argv = append(argv, "--bus", bus, "--disk-rw", p)
		} else {
			argv = append(argv, "--bus", bus, "--disk", p)
		}
	}
	data := runBootScript(t, what, logf, argv)
	var changed []string
	for c, sum := range want {
		if got := sha256File(t, c); got != sum {
			changed = append(changed, fmt.Sprintf("%s (sha256 %s, was %s)", filepath.Base(c), got, sum))
		}
	}
	sort.Strings(changed)
	return data, changed
}

// runBootScript runs scripts/boot.sh with argv (which must hold --log
// logf) and returns the console log; a run that does not end "ok" fails
// the test with the console's last lines.
func runBootScript(t *testing.T, what, logf string, argv []string) string {
	t.Helper()
	out, err := exec.Command("../../scripts/boot.sh", argv...).CombinedOutput()
	data, _ := os.ReadFile(logf)
	if err != nil {
		lines := strings.Split(string(data), "\n")
		t.Fatalf("boot of %s: %v\n%s\nlast console lines:\n%s", what, err, out,
			strings.Join(lines[max(0, len(lines)-50):], "\n"))
	}
	t.Logf("%s: %s", what, strings.TrimSpace(string(out)))
	return string(data)
}

// TestRescueLab is issue 3 points 6 and 7: on the md RAID1 -> LVM (ext4 +
// LUKS2) + GPT (ext4 + swap) testbed, the positive control shows an
// original image does assemble the array and mount the LVM root; then every
// family's rescue image, in both write modes and with baked storage
// configuration among them (all lab images carry early microcode), is
// booted with root=, rd.auto=1, rd.lvm.lv=, rd.luks.uuid= and resume= on the
// command line: the payload must run and find no md array, no dm device and
// nothing mounted, no passphrase may be asked for, and no disk may change.
// Boots run two at a time.
func TestRescueLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	tb := testbed(t, l)
	work := t.TempDir()
	payload := filepath.Join(work, "census.sh")
	if err := os.WriteFile(payload, []byte(censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("positive-control", func(t *testing.T) {
		t.Parallel()
		// dracut without baked arguments: dracut 059 assembles the md
		// array named by rd.md.uuid= and activates the LV named by
		// rd.lvm.lv=; rd.luks=0 keeps it from asking for the LUKS
		// volume's passphrase, which would stop the boot. The marker is
		// printed by the /sbin/init of the ext4 on vg0/root.
		im := l.image(t, "dracut-nosd-gzip")
		log := bootTestbed(t, l, tb, im.Path, "root=/dev/mapper/vg0-root rd.md.uuid="+l.env["LAB_MD_UUID"]+" rd.lvm.lv=vg0/root rd.luks=0 ro",
			l.env["LAB_MARKER"], false)
		if !regexp.MustCompile(`md/raid1:md\d+: active with 2 out of 2 mirrors`).MatchString(log) {
			t.Error("the marker was reached but the console shows no md RAID1 assembly")
		}
	})

	args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
		l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])
	// The images TestCanaryLab rescues in the default (append) mode,
	// itools-zstd among them, are not booted again here.
	matrix := []struct{ image, mode string }{
		{"itools-gzip", "rewrite"},
		{"dracut-sd-baked-xz", "append"},
		{"dracut-sd-zstd", "rewrite"},
		{"dracut-nosd-baked-lz4", "append"},
		{"dracut-nosd-gzip", "rewrite"},
	}
	for _, m := range matrix {
		t.Run(m.image+"/"+m.mode, func(t *testing.T) {
			t.Parallel()
			im := l.image(t, m.image)
			out := filepath.Join(work, m.image+"."+m.mode+".img")
			if code, _, errs := cli(t, "build", "-q", "--root", l.env["LAB_ROOT"], "--input", im.Path, "--output", out, "--kver", l.env["LAB_KVER"],
				"--mode", m.mode, "--run", payload); code != exitOK {
				t.Fatalf("build: exit %d: %s", code, errs)
			}
			defer os.Remove(out)
			rescueBoot(t, l, tb, out, args)
		})
	}
}

// rescueBoot boots a rescue image built with the census payload on copies of
// the testbed with args and checks the census: the payload ran, the three
// disks are there, and no md array, dm device or mount exists; no
// passphrase was asked for, no marker reached, no disk changed. It returns
// the console log.
func rescueBoot(t *testing.T, l *lab, tb, image, args string) string {
	t.Helper()
	log := bootTestbed(t, l, tb, image, args, censusExpect, true, passphrasePrompt, `RESCUE-CENSUS md=[1-9]`, l.env["LAB_MARKER"])
	checkCensus(t, log)
	return log
}

// censusExpect ends a rescue boot at the census line.
const censusExpect = `RESCUE-CENSUS .*disks=[0-9]+`

// checkCensus checks the census of a rescue boot's console log: the payload
// ran, the three disks are there, no md array, dm device or mount exists.
func checkCensus(t *testing.T, log string) {
	t.Helper()
	checkCensusDisks(t, log, len(testbedDisks))
}

// checkCensusDisks is checkCensus for a boot with disks disks.
func checkCensusDisks(t *testing.T, log string, disks int) {
	t.Helper()
	c := censusRe.FindStringSubmatch(log)
	if c == nil {
		t.Fatal("no census line in the console log")
	}
	if c[1] != "0" || c[2] != "0" || c[3] != "0" {
		t.Errorf("storage was touched: md=%s dm=%s mounted=%s", c[1], c[2], c[3])
	}
	if c[4] != fmt.Sprint(disks) {
		t.Errorf("the payload saw %s disks, want %d: the hardware was not brought up", c[4], disks)
	}
	if !strings.Contains(log, "initrd-remix: running payload") {
		t.Error("the rescue entry point did not announce the payload")
	}
}

// TestRescueEntryPoint is issue 3 point 4 beyond the payload run: poweroff
// and reboot work from the rescue environment, both where a shell is PID 1
// (initramfs-tools; dracut without systemd takes the same path) and under
// systemd, and the kernel argument skips the payload. Booted on the lab's
// marker disk, which a rescue image must not mount either.
func TestRescueEntryPoint(t *testing.T) {
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	work := t.TempDir()
	off := filepath.Join(work, "poweroff.sh")
	os.WriteFile(off, []byte("#!/bin/sh\necho PAYLOAD-POWEROFF\n. /usr/lib/initrd-remix/shrc\npoweroff\nsleep 120\n"), 0o755)
	reboot := filepath.Join(work, "reboot.sh")
	os.WriteFile(reboot, []byte("#!/bin/sh\necho PAYLOAD-REBOOT\n. /usr/lib/initrd-remix/shrc\nreboot\nsleep 120\n"), 0o755)
	for _, tc := range []struct {
		name, image, payload, args, expect string
	}{
		{"poweroff/shell-pid1", "itools-zstd", off, "root=/dev/vda", `reboot: Power down`},
		{"poweroff/systemd", "dracut-sd-zstd", off, "root=/dev/vda", `reboot: Power down`},
		// QEMU runs with -no-reboot: the reset ends it after the kernel's
		// line. A shell as PID 1 resets through sysrq (nothing is mounted
		// to unmount), systemd through reboot(2).
		{"reboot/shell-pid1", "itools-zstd", reboot, "root=/dev/vda", `sysrq: Resetting|reboot: Restarting system`},
		{"reboot/systemd", "dracut-sd-zstd", reboot, "root=/dev/vda", `reboot: Restarting system`},
		{"skip-payload", "dracut-nosd-gzip", off, "root=/dev/vda " + strip.SkipPayloadArg, `payload skipped \(initrd_remix\.payload=0\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			im := l.image(t, tc.image)
			out := filepath.Join(work, tc.image+"."+filepath.Base(tc.payload)+".img")
			if code, _, errs := cli(t, "build", "-q", "--force", "--root", l.env["LAB_ROOT"], "--input", im.Path, "--output", out, "--run", tc.payload); code != exitOK {
				t.Fatalf("build: exit %d: %s", code, errs)
			}
			logf := filepath.Join(t.TempDir(), "console.log")
			cmd := exec.Command("../../scripts/boot.sh", "--kernel", l.env["LAB_KERNEL"], "--initrd", out, "--disk", l.env["LAB_MARKER_DISK"],
				"--append", tc.args, "--expect", tc.expect, "--fail", l.env["LAB_MARKER"], "--timeout", "300", "--log", logf)
			res, err := cmd.CombinedOutput()
			data, _ := os.ReadFile(logf)
			if err != nil {
				lines := strings.Split(string(data), "\n")
				t.Fatalf("%v: %s\nlast console lines:\n%s", err, res, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
			if strings.HasPrefix(tc.name, "skip") && strings.Contains(string(data), "PAYLOAD-POWEROFF") {
				t.Error("the payload ran despite " + strip.SkipPayloadArg)
			}
			t.Logf("%s", strings.TrimSpace(string(res)))
		})
	}
}
