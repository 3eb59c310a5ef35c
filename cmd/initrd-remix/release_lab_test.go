package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// programsPayload runs, before the census, every recovery program of a
// short list that the image holds, and counts those that start. ld.so exits
// 127 when it cannot load a program's libraries or their versions; any
// other status means the program ran (an unknown --version is fine).
const programsPayload = `#!/bin/sh
ran=0; broken=""
for p in lsblk blkid mdadm lvm cryptsetup sfdisk mkfs.ext4 e2fsck; do
	command -v "$p" >/dev/null 2>&1 || continue
	"$p" --version >/dev/null 2>&1
	if [ $? -eq 127 ]; then broken="$broken $p"; else ran=$((ran+1)); fi
done
echo "RESCUE-PROGRAMS ran=$ran broken=[$broken]"
`

// TestReleaseRescueLab is TestRescueLab for the other Debian releases of the
// lab (scripts/lab.sh: trixie, sid, and bullseye with a root without usr-merge),
// each booted with its own kernel on the same md RAID1 -> LVM (ext4 + LUKS2)
// + GPT testbed. The positive control shows that the release's original
// dracut image, from its baked arguments alone, assembles the array and
// mounts the LVM root; then the rescue image of the systemd family, built
// with the main lab's root as --root (a root of another release), must run
// its payload and its recovery programs, find no md array, no dm device and
// nothing mounted, ask for no passphrase, and leave every disk as it was.
// The rescue image of every family built with the release's own root is
// booted the same way by TestCanaryLab (its image carries canaries besides).
// Boots run two at a time.
func TestReleaseRescueLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	labs, tb := releaseTestbed(t)
	payload := filepath.Join(t.TempDir(), "census.sh")
	if err := os.WriteFile(payload, []byte(programsPayload+censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range labs[1:] {
		t.Run(l.release, func(t *testing.T) {
			t.Run("positive-control", func(t *testing.T) {
				t.Parallel()
				controls := l.rel.ImagesOf("dracut-shell")
				if len(controls) == 0 || controls[0].Baked != "yes" {
					t.Fatalf("the %s lab has no dracut image without systemd with baked arguments", l.release)
				}
				// rd.luks=0: the baked crypttab would ask for the LUKS
				// volume's passphrase and stop the boot.
				log := bootTestbed(t, l, tb, controls[0].Path, "root=/dev/mapper/vg0-root rd.luks=0 ro", l.env["LAB_MARKER"], false)
				if !regexp.MustCompile(`md/raid1:md\d+: active with 2 out of 2 mirrors`).MatchString(log) {
					t.Error("the marker was reached but the console shows no md RAID1 assembly")
				}
			})
			args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
				l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])
			// The systemd image with the main lab's (Debian 12) root: a
			// --root of another release than the image (a rescue or
			// live system's /). The image's own libraries must stay
			// (its /init starts), and what the root adds must run on
			// them, or be left out.
			for _, im := range l.rel.ImagesOf("dracut-systemd") {
				t.Run(im.Name+"/root-"+labs[0].release, func(t *testing.T) {
					t.Parallel()
					out := filepath.Join(t.TempDir(), "rescue.img")
					if code, _, errs := cli(t, "build", "-q", "--root", labs[0].env["LAB_ROOT"], "--input", im.Path, "--output", out,
						"--kver", l.env["LAB_KVER"], "--run", payload); code != exitOK {
						t.Fatalf("build: exit %d: %s", code, errs)
					}
					checkPrograms(t, rescueBoot(t, l, tb, out, args))
				})
			}
		})
	}
}

// programsRe matches the line of programsPayload.
var programsRe = regexp.MustCompile(`RESCUE-PROGRAMS ran=(\d+) broken=\[([^]]*)\]`)

// checkPrograms checks the programsPayload line of a boot's console log:
// some recovery programs start, none fails to load its libraries.
func checkPrograms(t *testing.T, log string) {
	t.Helper()
	p := programsRe.FindStringSubmatch(log)
	if p == nil || p[1] == "0" || strings.TrimSpace(p[2]) != "" {
		t.Errorf("recovery programs: %v; want some that start and none that cannot load", p)
	}
}

// releaseTestbed returns the lab's releases (the main one first), which
// must be more than one, and the storage testbed every release boots on.
func releaseTestbed(t *testing.T) ([]*lab, string) {
	t.Helper()
	labs := labReleases(t)
	if len(labs) < 2 {
		testtool.Missing(t, "the lab has no other release (LAB_RELEASES)")
	}
	testtool.Require(t, "qemu-system-x86_64")
	return labs, testbed(t, labs[0])
}
