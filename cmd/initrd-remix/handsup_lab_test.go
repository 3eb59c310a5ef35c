package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// handsUpPayload types the rescue banner's commands as an administrator
// would at the rescue shell (mdadm --assemble --scan, vgchange -ay,
// cryptsetup open, mount) on the testbed, then counts what they brought
// up with shell builtins only. %[1]s is the LUKS UUID without dashes (the
// dm UUID cryptsetup gives the mapping), %[2]s and %[3]s the two halves of
// the marker that the root LV's /sbin/init prints: the payload must never
// print the marker itself, which the boot watches for as a failure.
const handsUpPayload = `#!/bin/sh
md=0; dm=0
for d in /sys/block/*; do
	case ${d##*/} in md*) md=$((md+1)) ;; dm-*) dm=$((dm+1)) ;; esac
done
echo "HANDSUP-BEFORE md=$md dm=$dm"

echo "HANDSUP-STEP mdadm --assemble --scan"
mdadm --assemble --scan
rc=$?
echo "HANDSUP-STEP vgchange -ay"
vgchange -ay
rc=$rc,$?
echo "HANDSUP-STEP cryptsetup open /dev/vg0/crypt c"
printf testbed | cryptsetup open /dev/vg0/crypt c --key-file=-
rc=$rc,$?
# The testbed's LUKS volume holds no file system: read through it instead.
dd if=/dev/mapper/c of=/dev/null bs=4096 count=16 2>/dev/null
rc=$rc,$?
echo "HANDSUP-STEP mount -o ro /dev/vg0/root /mnt"
mount -o ro /dev/vg0/root /mnt
rc=$rc,$?
mkdir -p /run/gpt
mount -o ro /dev/vdc1 /run/gpt
rc=$rc,$?

md=0; dm=0
for d in /sys/block/*; do
	case ${d##*/} in md*) md=$((md+1)) ;; dm-*) dm=$((dm+1)) ;; esac
done
mdname=0
for f in /dev/md/*; do [ -b "$f" ] && mdname=$((mdname+1)); done
lv=0
for f in /dev/vg0/*; do [ -b "$f" ] && lv=$((lv+1)); done
luks=0
for u in /sys/block/dm-*/dm/uuid; do
	read -r id <"$u"
	case $id in CRYPT-LUKS2-%[1]s-c) [ -b /dev/mapper/c ] && luks=$((luks+1)) ;; esac
done
mounted=0; root=no; gpt=no
while read -r dev mnt rest; do
	case $dev in /dev/*) mounted=$((mounted+1)); echo "mounted: $dev on $mnt ${rest%%%% *}" ;; esac
	case $mnt in /mnt) root=yes ;; /run/gpt) [ -d /run/gpt/lost+found ] && gpt=ok ;; esac
done </proc/mounts
marker=no
if [ $root = yes ]; then
	while IFS= read -r line; do
		case $line in *%[2]s""%[3]s*) marker=ok ;; esac
	done </mnt/sbin/init
fi
echo "HANDSUP md=$md dm=$dm mdname=$mdname lv=$lv luks=$luks mounted=$mounted marker=$marker gpt=$gpt rc=$rc"
`

var handsUpRe = regexp.MustCompile(`HANDSUP md=(\d+) dm=(\d+) mdname=(\d+) lv=(\d+) luks=(\d+) mounted=(\d+) marker=(\w+) gpt=(\w+) rc=([0-9,]+)`)

// TestHandsUpLab is issue 3's promise to the administrator: the commands the
// rescue banner prints work in the rescue image. For each family, the
// rescue image boots on copies of the testbed disks with TestRescueLab's
// command line (so strip is under the same pressure: nothing may come up
// on its own) and its payload runs the banner's commands literally: the md
// RAID1 is assembled, both LVs of vg0 activated with their /dev/vg0 links,
// the LUKS2 volume opened with the passphrase on stdin, the root LV and the
// GPT ext4 partition mounted read-only, and the root LV's /sbin/init read.
// Every count is asserted, so a command that does nothing fails the test.
// The copies change (assembly bumps event counts); the cache never does.
// Last, an image without cryptsetup must not offer it in its banner.
func TestHandsUpLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	tb := testbed(t, l)
	work := t.TempDir()
	marker := l.env["LAB_MARKER"]
	payload := handsUpPayloadFile(t, l)
	args := handsUpArgs(l)
	for _, image := range []string{"itools-zstd", "dracut-sd-baked-xz", "dracut-nosd-baked-lz4"} {
		t.Run(image, func(t *testing.T) {
			t.Parallel()
			handsUpBoot(t, l, tb, l.image(t, image).Path, payload, args)
		})
	}

	// dracut with systemd unlocks LUKS with systemd-cryptsetup and ships no
	// cryptsetup: built without the preset, the banner must not offer it.
	t.Run("dracut-sd-zstd/preset-none-banner", func(t *testing.T) {
		t.Parallel()
		im := l.image(t, "dracut-sd-zstd")
		out := filepath.Join(work, "none.img")
		if code, _, errs := cli(t, "build", "-q", "--preset", "none", "--root", l.env["LAB_ROOT"], "--input", im.Path, "--output", out,
			"--kver", l.env["LAB_KVER"]); code != exitOK {
			t.Fatalf("build: exit %d: %s", code, errs)
		}
		defer os.Remove(out)
		logf := filepath.Join(t.TempDir(), "console.log")
		res, err := exec.Command("../../scripts/boot.sh", "--kernel", l.env["LAB_KERNEL"], "--initrd", out, "--disk", l.env["LAB_MARKER_DISK"],
			"--append", "root=/dev/vda", "--expect", "Leaving the shell starts a new one", "--fail", marker,
			"--timeout", "300", "--log", logf).CombinedOutput()
		data, _ := os.ReadFile(logf)
		log := string(data)
		if err != nil {
			lines := strings.Split(log, "\n")
			t.Fatalf("boot: %v\n%s\nlast console lines:\n%s", err, res, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		t.Logf("%s", strings.TrimSpace(string(res)))
		if strings.Contains(log, "   cryptsetup open") {
			t.Error("the banner offers cryptsetup, which this image does not have")
		}
		if !strings.Contains(log, "Not in this image: cryptsetup") {
			t.Error("the banner does not say that cryptsetup is missing")
		}
		for _, line := range []string{"mdadm --assemble --scan", "vgchange -ay"} {
			if !strings.Contains(log, "   "+line) {
				t.Errorf("the banner does not show %q, which dracut's own image has", line)
			}
		}
	})
}

// handsUpBoot builds the rescue image of input with the lab's root and the
// hands-up payload, boots it on copies of the testbed with args and checks
// every count of the payload's census.
func handsUpBoot(t *testing.T, l *lab, tb, input, payload, args string) {
	t.Helper()
	marker := l.env["LAB_MARKER"]
	out := filepath.Join(t.TempDir(), filepath.Base(input))
	if code, _, errs := cli(t, "build", "-q", "--root", l.env["LAB_ROOT"], "--input", input, "--output", out, "--kver", l.env["LAB_KVER"],
		"--mode", "append", "--run", payload); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, errs)
	}
	defer os.Remove(out)
	dir := t.TempDir()
	logf := filepath.Join(dir, "console.log")
	// The banner's last line comes after the payload's census.
	argv := []string{"--kernel", l.env["LAB_KERNEL"], "--initrd", out, "--append", args,
		"--expect", "Leaving the shell starts a new one", "--fail", passphrasePrompt, "--fail", marker,
		"--timeout", "300", "--log", logf}
	for _, d := range testbedDisks {
		c := filepath.Join(dir, d)
		copyFile(t, filepath.Join(tb, d), c)
		argv = append(argv, "--disk-rw", c)
	}
	res, err := exec.Command("../../scripts/boot.sh", argv...).CombinedOutput()
	data, _ := os.ReadFile(logf)
	log := string(data)
	if err != nil {
		lines := strings.Split(log, "\n")
		t.Fatalf("boot: %v\n%s\nlast console lines:\n%s", err, res, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
	t.Logf("%s", strings.TrimSpace(string(res)))
	if !strings.Contains(log, "HANDSUP-BEFORE md=0 dm=0") {
		t.Error("storage was up before the banner's commands ran (want HANDSUP-BEFORE md=0 dm=0)")
	}
	c := handsUpRe.FindStringSubmatch(log)
	if c == nil {
		t.Fatal("no HANDSUP census line in the console log")
	}
	t.Logf("%s", c[0])
	for _, w := range []struct{ what, got, want string }{
		{"md arrays (mdadm --assemble --scan)", c[1], "1"},
		{"dm devices (2 LVs + the LUKS mapping)", c[2], "3"},
		{"/dev/md/NAME links", c[3], "1"},
		{"/dev/vg0 LVs (vgchange -ay)", c[4], "2"},
		{"LUKS2 mappings of the testbed volume (cryptsetup open)", c[5], "1"},
		{"mounted block devices", c[6], "2"},
		{"marker in the root LV's /sbin/init", c[7], "ok"},
		{"GPT ext4 partition mounted", c[8], "ok"},
		{"exit statuses (mdadm, vgchange, cryptsetup, dd, mount, mount)", c[9], "0,0,0,0,0,0"},
	} {
		if w.got != w.want {
			t.Errorf("%s: %s, want %s", w.what, w.got, w.want)
		}
	}
	// mdadm waits for udev's /dev/md/NAME and says so when the
	// naming rules are missing.
	if strings.Contains(log, "timeout waiting for") {
		t.Error("a command timed out waiting for udev")
	}
	for _, line := range []string{"mdadm --assemble --scan", "vgchange -ay", "cryptsetup open DEVICE NAME", "mount -o ro DEVICE /mnt"} {
		if !strings.Contains(log, "   "+line) {
			t.Errorf("the banner does not show %q", line)
		}
	}
	if strings.Contains(log, "Not in this image:") {
		t.Error("the banner says a storage tool is missing; the default preset adds mdadm, lvm and cryptsetup")
	}
}

// handsUpPayloadFile writes the hands-up payload for lab l.
func handsUpPayloadFile(t *testing.T, l *lab) string {
	t.Helper()
	marker := l.env["LAB_MARKER"]
	if len(marker) < 2 {
		t.Fatalf("lab.env has no usable LAB_MARKER (%q)", marker)
	}
	payload := filepath.Join(t.TempDir(), "handsup.sh")
	body := fmt.Sprintf(handsUpPayload, strings.ReplaceAll(l.env["LAB_LUKS_UUID"], "-", ""), marker[:len(marker)/2], marker[len(marker)/2:])
	if err := os.WriteFile(payload, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return payload
}

// handsUpArgs is TestRescueLab's command line: every storage switch on.
func handsUpArgs(l *lab) string {
	return fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
		l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])
}

// TestReleaseHandsUpLab is TestHandsUpLab for the other Debian releases of
// the lab (issue 15 point 3): the rescue image of each family, built with
// the release's own root, boots with the release's kernel on the testbed,
// and the banner's commands bring the storage up by hand. Boots run two at
// a time.
func TestReleaseHandsUpLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	labs, tb := releaseTestbed(t)
	for _, l := range labs[1:] {
		t.Run(l.release, func(t *testing.T) {
			payload := handsUpPayloadFile(t, l)
			for _, im := range l.images {
				t.Run(im.Name, func(t *testing.T) {
					t.Parallel()
					handsUpBoot(t, l, tb, im.Path, payload, handsUpArgs(l))
				})
			}
		})
	}
}
