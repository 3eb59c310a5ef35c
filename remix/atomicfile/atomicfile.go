// Package atomicfile writes files so that readers (a boot loader, a kernel
// hook running concurrently, a crash half-way) only ever see the old file or
// the complete new one: the data goes to a temporary file in the target's
// directory, is synced, and is renamed over the target; the directory is
// synced so the rename survives a power cut.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a pending replacement of a target path. Write to it, then Commit;
// Abort (safe to defer, a no-op after Commit) removes the temporary file.
//
// Every writebackEvery bytes written, File asks the kernel to start writing
// the file back to disk (without waiting), so that Commit's fsync finds
// little left to do: an initrd of tens of MiB otherwise waits for all of its
// data at the end.
type File struct {
	*os.File
	target  string
	done    bool
	pending int64 // bytes written since the last writeback request
}

// writebackEvery is how much File lets accumulate before it starts a
// writeback.
const writebackEvery = 8 << 20

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.wrote(int64(n))
	return n, err
}

// ReadFrom copies r into the temporary file (with copy_file_range or
// splice where the kernel can).
func (f *File) ReadFrom(r io.Reader) (int64, error) {
	n, err := f.File.ReadFrom(r)
	f.wrote(n)
	return n, err
}

// WriteString writes s to the temporary file.
func (f *File) WriteString(s string) (int, error) {
	n, err := f.File.WriteString(s)
	f.wrote(int64(n))
	return n, err
}

func (f *File) wrote(n int64) {
	f.pending += n
	if f.pending >= writebackEvery {
		f.pending = 0
		startWriteback(f.File)
	}
}

// Create starts writing a replacement for target with the given permission
// bits. Nothing is visible at target until Commit.
func Create(target string, mode os.FileMode) (*File, error) {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file beside %s: %w", target, err)
	}
	// The final mode now, not at Commit: a change of metadata after the
	// caller's last Sync would cost Commit another journal commit.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create temporary file beside %s: %w", target, err)
	}
	return &File{File: f, target: target}, nil
}

// Commit syncs the data, renames it over the target and syncs the directory.
// A caller may Sync before (while it does other work); Commit's own sync
// then has only what was written since.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.target)
	}
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.target)
	}
	if err != nil {
		os.Remove(f.Name())
		f.done = true
		return fmt.Errorf("write %s: %w", f.target, err)
	}
	f.done = true
	if d, derr := os.Open(filepath.Dir(f.target)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards the temporary file; the target is left as it was.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}
