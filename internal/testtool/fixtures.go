package testtool

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Special makes, in dir, a FIFO and a directory (where outputs and inputs
// must be regular files) and returns their paths.
func Special(t testing.TB, dir string) (fifo, subdir string) {
	t.Helper()
	fifo, subdir = filepath.Join(dir, "fifo.img"), filepath.Join(dir, "dir.img")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	return fifo, subdir
}

// HoldLock writes path and holds the flock that marks a temporary file in
// use, as a concurrent process writing it would, until the test ends.
func HoldLock(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("half an image"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := syscall.Flock(int(h.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}
