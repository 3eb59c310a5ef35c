package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

func TestCommitReplacesAndAbortLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.img")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		commit bool
		want   string
		mode   os.FileMode
	}{
		{"abort keeps the old file", false, "old", 0o600},
		{"commit replaces it", true, "new", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Create(target, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("new"); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(target); string(got) != "old" && !tc.commit {
				t.Fatalf("target changed before commit: %q", got)
			}
			if tc.commit {
				if err := f.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			f.Abort()
			got, err := os.ReadFile(target)
			if err != nil || string(got) != tc.want {
				t.Fatalf("target = %q, %v; want %q", got, err, tc.want)
			}
			st, _ := os.Stat(target)
			if st.Mode().Perm() != tc.mode {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), tc.mode)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("temporary files left behind: %v", entries)
			}
		})
	}
}

func TestCreateInMissingDirectoryFails(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "nope", "x"), 0o644); err == nil {
		t.Fatal("expected an error")
	}
}

// TestLargeWritesThroughEveryMethod: Write, WriteString and ReadFrom (used
// by io.Copy) all land in the file, past several writeback requests.
func TestLargeWritesThroughEveryMethod(t *testing.T) {
	target := filepath.Join(t.TempDir(), "big")
	f, err := Create(target, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	chunk := bytes.Repeat([]byte("initrd-remix "), 1<<20) // 13 MiB
	var want bytes.Buffer
	if _, err := f.Write(chunk); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk)
	if _, err := f.WriteString(string(chunk[:5<<20])); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk[:5<<20])
	if _, err := io.Copy(f, bytes.NewReader(chunk)); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the file holds %d bytes, %d were written (%v)", len(got), want.Len(), err)
	}
}

// TestCreateRefusesNonRegularTargets: a FIFO at the target made builds
// hang forever; a directory failed only at the rename, after all the work.
// Each is refused before anything is opened or created.
func TestCreateRefusesNonRegularTargets(t *testing.T) {
	dir := t.TempDir()
	fifo, sub := testtool.Special(t, dir)
	link := filepath.Join(dir, "link")
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	os.Symlink("file", link)
	tests := []struct{ target, kind string }{{fifo, "a FIFO"}, {sub, "a directory"}, {link, "a symbolic link"}, {"/dev/null", "a character device"}}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				f, err := Create(tc.target, 0o600)
				if err == nil {
					f.Abort()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.kind) {
					t.Fatalf("Create(%s) = %v, want a refusal naming %s", tc.target, err, tc.kind)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Create(%s) hangs", tc.target)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("files created: %v", entries)
	}
}

// TestCommitRefusesTargetReplacedMeanwhile: a directory that appears at the
// target while the file is written is not replaced.
func TestCommitRefusesTargetReplacedMeanwhile(t *testing.T) {
	target := filepath.Join(t.TempDir(), "out")
	f, err := Create(target, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if err := syscall.Mkfifo(target, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil || !strings.Contains(err.Error(), "a FIFO") {
		t.Fatalf("Commit over a FIFO: %v", err)
	}
}

// TestCreateRemovesStaleTempFiles: a SIGKILL or a power cut leaves a
// temporary file that no process holds; the next Create in the directory
// removes it, and only it: not one another process is writing (it holds
// the lock), not other names, not what is not a regular file.
func TestCreateRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".initrd-remix-rescue-6.1.img.initrd-remix-123456")
	otherTarget := filepath.Join(dir, ".initrd.img-6.1.initrd-remix-42")
	busy := filepath.Join(dir, ".initrd-remix-rescue-6.2.img.initrd-remix-777")
	for _, p := range []string{stale, otherTarget} {
		if err := os.WriteFile(p, []byte("half an image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testtool.HoldLock(t, busy) // another process writing it
	keep := []string{busy,
		filepath.Join(dir, ".out.img.tmp-123"),          // not our pattern
		filepath.Join(dir, ".out.img.initrd-remix-12x"), // not only digits
		filepath.Join(dir, "out.img.initrd-remix-12"),   // not hidden
		filepath.Join(dir, ".fifo.initrd-remix-99"),     // ours by name, a FIFO
		filepath.Join(dir, ".dir.initrd-remix-98")}      // ours by name, a directory
	for _, p := range keep[1:4] {
		os.WriteFile(p, nil, 0o600)
	}
	syscall.Mkfifo(keep[4], 0o600)
	os.Mkdir(keep[5], 0o700)

	f, err := Create(filepath.Join(dir, "out.img"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// A concurrent Create (or RemoveStale) leaves this live file alone.
	if removed := RemoveStale(dir); len(removed) != 0 {
		t.Errorf("a live temporary file was removed: %v", removed)
	}
	if _, err := f.WriteString("new"); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, otherTarget} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("stale %s left", filepath.Base(p))
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}
