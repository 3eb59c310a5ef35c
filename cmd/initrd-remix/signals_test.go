package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// TestSecondSignalExitsAtOnce: the first signal cancels the context (the
// command cleans up and exits 130); a second ends the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	ctx, stop := notifyContext(context.Background(), &stderr, func(code int) { exited <- code })
	defer stop()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) on the first signal", code)
	case <-time.After(200 * time.Millisecond):
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-exited:
		if code != exitInterrupt || !strings.Contains(stderr.String(), "again") {
			t.Fatalf("exit(%d), stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not end the process")
	}
}

// TestNonRegularPathsRefused: a FIFO at the output made build hang forever
// (it opened the FIFO to see whether it was a rescue image); FIFOs and
// directories are refused at once, as inputs and as outputs, and nothing
// is left beside them.
func TestNonRegularPathsRefused(t *testing.T) {
	img := smallImage(t)
	dir := t.TempDir()
	fifo, sub := testtool.Special(t, dir)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"build to a FIFO", []string{"build", "--input", img, "--output", fifo, "--preset", "none"}, "is a FIFO"},
		{"build --force to a FIFO", []string{"build", "--input", img, "--output", fifo, "--preset", "none", "--force"}, "is a FIFO"},
		{"build to a directory", []string{"build", "--input", img, "--output", sub, "--preset", "none", "--force"}, "is a directory"},
		{"repack to a FIFO", []string{"repack", img, fifo}, "is a FIFO"},
		{"repack to a directory", []string{"repack", img, sub}, "is a directory"},
		{"inspect a FIFO", []string{"inspect", fifo}, "not a regular file"},
		{"verify a FIFO", []string{"verify", fifo}, "not a regular file"},
		{"repack a FIFO", []string{"repack", fifo, filepath.Join(dir, "out.img")}, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				code int
				errs string
			}
			done := make(chan result, 1)
			go func() {
				code, _, errs := cli(t, tc.args...)
				done <- result{code, errs}
			}()
			select {
			case r := <-done:
				if r.code != exitFailed || !strings.Contains(r.errs, tc.want) {
					t.Fatalf("exit %d, stderr %q; want exit %d naming %q", r.code, r.errs, exitFailed, tc.want)
				}
			case <-time.After(20 * time.Second):
				// Unblock the open that hangs, so the test can end.
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				t.Fatal("hangs")
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left: %v", entries)
	}
}

// TestStaleTemporaryFilesRemovedAtStart: a build killed by SIGKILL or a
// power cut leaves its hidden temporary file in /boot; the next command
// writing there removes it, but not one a concurrent build still writes.
func TestStaleTemporaryFilesRemovedAtStart(t *testing.T) {
	img := smallImage(t)
	dir := t.TempDir()
	stale := filepath.Join(dir, ".initrd-remix-rescue-6.1.0-8-amd64.img.initrd-remix-4711")
	busy := filepath.Join(dir, ".initrd-remix-rescue-6.1.0-7-amd64.img.initrd-remix-4712")
	os.WriteFile(stale, []byte("half an image"), 0o600)
	testtool.HoldLock(t, busy)
	if code, _, errs := cli(t, "repack", "-q", img, filepath.Join(dir, "out.img")); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Lstat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	if _, err := os.Lstat(busy); err != nil {
		t.Errorf("the temporary file of a running build was removed: %v", err)
	}
}
