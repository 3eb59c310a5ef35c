package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay"
)

// TestRescuePresetProgramsStart is issue 4's boot test through the real
// pipeline: build (strip, default preset from the lab root, verify) makes
// the rescue image of the initramfs-tools image, whose busybox applets are
// hard links the preset's programs replace one by one; its payload runs every
// preset program with --version in QEMU and each must start: a program that
// cannot load exits 126/127 or prints "error while loading shared libraries";
// anything else, a usage message included, means its main() ran.
func TestRescuePresetProgramsStart(t *testing.T) {
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	im := l.image(t, "itools-zstd")
	work := t.TempDir()
	out := filepath.Join(work, "rescue.img")
	base := []string{"build", "--root", l.env["LAB_ROOT"], "--input", im.Path, "--output", out, "--kver", l.env["LAB_KVER"]}

	// The plan names the programs the preset adds.
	plan := buildPlan(t, base...)
	// The preset's programs, not the trees it copies whole (GRUB's
	// platform files are data for grub-install).
	trees, err := overlay.PresetTrees("rescue")
	if err != nil {
		t.Fatal(err)
	}
	var progs []string
	for _, a := range plan.Added {
		if strings.HasPrefix(a.Reason, "preset ") && !slices.Contains(trees, strings.TrimPrefix(a.Reason, "preset rescue: ")) {
			progs = append(progs, "/"+a.Path)
		}
	}
	sort.Strings(progs)
	if len(progs) < 50 {
		t.Fatalf("the rescue preset added only %d programs from the lab root: %v", len(progs), progs)
	}

	var b strings.Builder
	b.WriteString(`#!/bin/sh
ok=0 fail=0
try() {
	out=$("$@" </dev/null 2>&1)
	rc=$?
	case "$rc:$out" in
	126:*|127:*|*"error while loading shared libraries"*)
		fail=$((fail+1)); echo "START-FAIL $1 rc=$rc: $(echo "$out" | head -n 2)";;
	*)
		ok=$((ok+1));;
	esac
}
`)
	for _, p := range progs {
		fmt.Fprintf(&b, "try %s --version\n", p)
	}
	b.WriteString("echo \"PRESET-SELFTEST ok=$ok fail=$fail\"\n")
	payload := filepath.Join(work, "selftest.sh")
	if err := os.WriteFile(payload, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, append(base, "-q", "--run", payload)...); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, errs)
	}
	logf := filepath.Join(work, "console.log")
	cmd := exec.Command("../../scripts/boot.sh", "--kernel", l.env["LAB_KERNEL"], "--initrd", out,
		"--disk", l.env["LAB_MARKER_DISK"], "--append", "root=/dev/vda",
		"--expect", fmt.Sprintf("PRESET-SELFTEST ok=%d fail=0", len(progs)),
		"--fail", "START-FAIL", "--fail", "PRESET-SELFTEST ok=[0-9]+ fail=[1-9]", "--fail", l.env["LAB_MARKER"],
		"--timeout", "300", "--log", logf)
	res, err := cmd.CombinedOutput()
	if err != nil {
		console, _ := os.ReadFile(logf)
		var lines []string
		for _, line := range strings.Split(string(console), "\n") {
			if strings.Contains(line, "START-") || strings.Contains(line, "PRESET-SELFTEST") {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		all := strings.Split(string(console), "\n")
		t.Fatalf("boot: %v: %s\n%s\nlast console lines:\n%s", err, res, strings.Join(lines, "\n"),
			strings.Join(all[max(0, len(all)-30):], "\n"))
	}
	t.Logf("%d preset programs started: %s", len(progs), strings.TrimSpace(string(res)))
}
