package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// bodyBomb writes an image holding one file of size zero bytes, a few
// hundred KiB on disk.
func bodyBomb(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bomb.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	zw, err := codec.NewWriter(codec.Zstd, bw, codec.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := newc.NewWriter(zw)
	w.WriteHeader(&newc.Header{Name: ".", Mode: newc.TypeDir | 0o755, Nlink: 2})
	if err := w.WriteHeader(&newc.Header{Name: "big", Mode: newc.TypeReg | 0o644, Nlink: 1, Size: size}); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zero)) {
		if _, err := w.Write(zero[:min(int64(len(zero)), size-n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSpoolLeavesTheOutputDirectory: file bodies past what is kept in
// memory spilled into the output's directory (an unlinked file in /boot),
// so a small bomb filled a small /boot. They go to --spool-dir, else
// $TMPDIR, else /var/tmp; the output's directory only when named.
func TestSpoolLeavesTheOutputDirectory(t *testing.T) {
	img := bodyBomb(t, 300<<20) // past the 256 MiB kept in memory
	outDir := t.TempDir()
	out := filepath.Join(outDir, "out.img")
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	t.Setenv("TMPDIR", missing)
	// The default is $TMPDIR: here a missing directory, so the spool fails
	// and names it (before, the spool went beside the output and this
	// succeeded).
	code, _, errs := cli(t, "repack", "-q", "--mode", "append", img, out)
	if code != exitFailed || !strings.Contains(errs, missing) || !strings.Contains(errs, "spool") {
		t.Fatalf("spool with TMPDIR=%s: exit %d, stderr %q", missing, code, errs)
	}
	if code, _, errs := cli(t, "repack", "-q", "--mode", "append", "--spool-dir", missing+"-too", img, out); code != exitFailed || !strings.Contains(errs, missing+"-too") {
		t.Fatalf("--spool-dir: exit %d, stderr %q", code, errs)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("left in the output directory: %v", entries)
	}
	// The spool holds at most --max-size bytes on any file system.
	if code, _, errs := cli(t, "repack", "-q", "--mode", "append", "--spool-dir", outDir, "--max-size", "280M", img, out); code != exitFailed || !strings.Contains(errs, "--max-size") {
		t.Fatalf("--max-size 280M: exit %d, stderr %q", code, errs)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Fatalf("left in the output directory: %v", entries)
	}
	// Named, the output's directory is used.
	if code, _, errs := cli(t, "repack", "-q", "--mode", "append", "--spool-dir", outDir, img, out); code != exitOK {
		t.Fatalf("--spool-dir %s: exit %d, stderr %q", outDir, code, errs)
	}
}
