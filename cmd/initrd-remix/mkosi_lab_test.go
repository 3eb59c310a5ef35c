package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/strip"
)

// mkosiImage builds (or finds cached) the mkosi-initrd image of
// scripts/mkosi-initrd.sh for the lab's trixie kernel and returns its
// mkosi.env.
func mkosiImage(t *testing.T, main *lab) map[string]string {
	t.Helper()
	for _, p := range []string{"unshare", "chroot", "flock"} {
		testtool.Require(t, p)
	}
	_, env := cachedStage(t, "mkosi-initrd.sh", main.dir, "mkosi.env")
	return env
}

// TestMkosiInitrdLab is issue 15 point 4: a generic systemd initrd that
// Debian 13's own mkosi-initrd built from Debian's packages for the lab's
// trixie kernel is recognised as systemd-initrd (with mkosi's files as
// evidence), its rescue image builds from the trixie root and verifies, the
// original boots to the marker root named by root=UUID= (the positive
// control: it does mount a root when asked), and the rescue image, booted on
// the storage testbed with every storage argument, brings the disks up,
// runs its payload and its recovery programs, and activates, mounts and
// changes nothing. Two boots at a time.
func TestMkosiInitrdLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	labs := labReleases(t)
	i := slices.IndexFunc(labs, func(l *lab) bool { return l.release == "trixie" })
	if i < 0 {
		testtool.Missing(t, "the lab has no trixie release (LAB_RELEASES)")
	}
	trixie := labs[i]
	testtool.Require(t, "qemu-system-x86_64")
	env := mkosiImage(t, labs[0])
	img := env["MKOSI_IMAGE"]
	if env["MKOSI_KVER"] != trixie.env["LAB_KVER"] || !strings.HasPrefix(env["MKOSI_VERSION"], "mkosi ") {
		t.Fatalf("mkosi.env: KVER %q (lab %q), version %q", env["MKOSI_KVER"], trixie.env["LAB_KVER"], env["MKOSI_VERSION"])
	}
	t.Logf("%s, systemd %s, kernel %s", env["MKOSI_VERSION"], env["MKOSI_SYSTEMD_VERSION"], env["MKOSI_KVER"])

	// (a) inspect names the generator, with mkosi's own files as evidence,
	// and the kernel the modules are for.
	code, out, errs := cli(t, "inspect", "--json", img)
	if code != exitOK {
		t.Fatalf("inspect: exit %d: %s", code, errs)
	}
	var ins struct {
		Generator      strip.Detection `json:"generator"`
		KernelVersions []string        `json:"kernel_versions"`
	}
	if err := json.Unmarshal([]byte(out), &ins); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	if ins.Generator.Generator != strip.SystemdInitrd || !slices.Contains(ins.Generator.Evidence, "usr/lib/systemd/system-preset/99-mkosi.preset present") {
		t.Fatalf("inspect: generator %s (%v), want %s with mkosi's preset as evidence", ins.Generator.Generator, ins.Generator.Evidence, strip.SystemdInitrd)
	}
	if !slices.Equal(ins.KernelVersions, []string{env["MKOSI_KVER"]}) {
		t.Errorf("inspect: kernel versions %v, want %s", ins.KernelVersions, env["MKOSI_KVER"])
	}

	// (b) the rescue image builds from the trixie root and verifies.
	work := t.TempDir()
	payload := filepath.Join(work, "census.sh")
	if err := os.WriteFile(payload, []byte(programsPayload+censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	rescue := filepath.Join(work, "rescue.img")
	if code, _, errs := cli(t, "build", "-q", "--root", trixie.env["LAB_ROOT"], "--input", img, "--output", rescue,
		"--kver", env["MKOSI_KVER"], "--run", payload); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, errs)
	}
	if code, out, errs := cli(t, "verify", rescue); code != exitOK {
		t.Fatalf("verify: exit %d: %s%s", code, out, errs)
	}

	tb := testbed(t, labs[0])
	t.Run("boots", func(t *testing.T) {
		// (c) The original mounts the root it is given and switches to it.
		t.Run("positive-control", func(t *testing.T) {
			t.Parallel()
			boot(t, trixie, img, "root=UUID="+trixie.env["LAB_MARKER_UUID"]+" ro")
		})
		// (d) The rescue image touches no storage whatever it is asked.
		t.Run("rescue", func(t *testing.T) {
			t.Parallel()
			args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
				trixie.env["LAB_LUKS_UUID"], trixie.env["LAB_MD_UUID"], trixie.env["LAB_SWAP_UUID"])
			log := rescueBoot(t, trixie, tb, rescue, args)
			checkPrograms(t, log)
			t.Logf("%s; %s", censusRe.FindString(log), programsRe.FindString(log))
		})
	})
}
