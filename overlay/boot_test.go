package overlay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
)

// selftestScript runs every program once in the booted image and prints
// whether it started: a program that cannot be loaded exits 126/127 with
// "error while loading shared libraries" (or the shell cannot exec it);
// anything else, a usage message included, means main() ran.
func selftestScript(progs []string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# initrd-remix overlay self-test, run as rdinit: does every program start?
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ok=0 fail=0
try() {
	out=$("$@" </dev/null 2>&1)
	rc=$?
	case "$rc:$out" in
	126:*|127:*|*"error while loading shared libraries"*)
		fail=$((fail+1)); echo "START-FAIL $1 rc=$rc: $(echo "$out" | head -n 2)";;
	*)
		ok=$((ok+1)); echo "START-OK $1 rc=$rc";;
	esac
}
`)
	for _, p := range progs {
		fmt.Fprintf(&b, "try %s --version\n", p)
	}
	b.WriteString(`echo "SELFTEST-DONE ok=$ok fail=$fail"
exec tail -f /dev/null
`)
	return b.String()
}

// TestPresetBootLab adds the rescue preset and the ReaR #3064 program to
// the lab's initramfs-tools image and boots it in QEMU with a self-test as
// rdinit: every program must start in the real kernel with the image's own
// loader and libraries. (Once build exists, the same runs on its output.)
func TestPresetBootLab(t *testing.T) {
	testtool.Require(t, "qemu-system-x86_64")
	root := labEnv(t, "LAB_ROOT")
	img := openLabImage(t, "itools-zstd")
	progs, res := presetPrograms(t, root)
	// ReaR #3064: a link to a program whose library the image lacks.
	const link = "/usr/sbin/cpgr"
	rep, err := Apply(context.Background(), img.Tree, Options{Root: root, Include: []string{link}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries added", len(rep.Added))
	var run []string
	for _, p := range progs {
		if _, _, _, err := res.Walk(p); err != nil {
			continue
		}
		run = append(run, p)
	}
	run = append(run, link)
	sort.Strings(run)
	if _, err := img.Tree.Put(remix.File("overlay-selftest", 0o755, remix.BytesContent(selftestScript(run)))); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rescue.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteTo(context.Background(), f, remix.WriteOptions{Mode: remix.Append, Compression: "zstd", Verify: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(t.TempDir(), "console.log")
	cmd := exec.Command("../scripts/boot.sh", "--kernel", labEnv(t, "LAB_KERNEL"), "--initrd", out,
		"--append", "rdinit=/overlay-selftest", "--expect", fmt.Sprintf("SELFTEST-DONE ok=%d fail=0", len(run)),
		"--fail", "START-FAIL", "--fail", "SELFTEST-DONE ok=[0-9]+ fail=[1-9]", "--timeout", "300", "--log", logf)
	b, err := cmd.CombinedOutput()
	console, _ := os.ReadFile(logf)
	var fails []string
	for _, l := range strings.Split(string(console), "\n") {
		if strings.Contains(l, "START-FAIL") || strings.Contains(l, "SELFTEST-DONE") {
			fails = append(fails, strings.TrimSpace(l))
		}
	}
	if err != nil {
		lines := strings.Split(string(console), "\n")
		t.Fatalf("boot: %v\n%s\n%s\nlast console lines:\n%s", err, b, strings.Join(fails, "\n"),
			strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
	t.Logf("%d programs started: %s", len(run), strings.TrimSpace(string(b)))
}
