// Package atomicfile writes files so that readers (a boot loader, a kernel
// hook running concurrently, a crash half-way) only ever see the old file or
// the complete new one: the data goes to a temporary file in the target's
// directory, is synced, and is renamed over the target; the directory is
// synced so the rename survives a power cut.
//
// A target must be a regular file or absent. Temporary files are named
// ".TARGET.initrd-remix-DIGITS" and each is flock(2)ed by the process
// writing it for as long as it lives. One that a SIGKILL or a power cut left
// behind has no lock any more, and Create removes it (from any target in
// the directory); one that another process is still writing, a concurrent
// build into the same /boot, holds its lock and is left alone. A lock is
// exact where an age or a pid is a guess: a slow build is not stale, and a
// pid is reused or belongs to another PID namespace.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
// bits. Nothing is visible at target until Commit. A target that
// exists and is not a regular file (a directory, a FIFO, a device, a
// socket, a symbolic link) is refused before anything is opened. Stale
// temporary files of the directory are removed first (see the package
// documentation).
func Create(target string, mode os.FileMode) (*File, error) {
	if err := CheckTarget(target); err != nil {
		return nil, err
	}
	dir := filepath.Dir(target)
	RemoveStale(dir)
	for {
		f, err := os.CreateTemp(dir, "."+filepath.Base(target)+tempMark+"*")
		if err != nil {
			return nil, fmt.Errorf("create temporary file beside %s: %w", target, err)
		}
		if err := lockOwn(f); err != nil {
			f.Close()
			if errors.Is(err, errGone) {
				continue // a concurrent RemoveStale took it before the lock
			}
			os.Remove(f.Name())
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
}

// tempMark is what the names of this package's temporary files carry after
// ".TARGET", followed by the digits os.CreateTemp puts in.
const tempMark = ".initrd-remix-"

// isTempName reports whether name is one of this package's temporary files.
func isTempName(name string) bool {
	i := strings.LastIndex(name, tempMark)
	if !strings.HasPrefix(name, ".") || i < 2 {
		return false
	}
	digits := name[i+len(tempMark):]
	return digits != "" && strings.Trim(digits, "0123456789") == ""
}

var errGone = errors.New("temporary file removed before it was locked")

// lockOwn takes the lock that marks f as in use, and checks that its name
// still leads to it: a RemoveStale that listed it before the lock was
// taken may have removed it.
func lockOwn(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if cur, err := os.Lstat(f.Name()); err != nil || !os.SameFile(st, cur) {
		return errGone
	}
	return nil
}

// RemoveStale removes the temporary files of this package in dir that no
// process holds any more: regular files of the exact name pattern whose
// lock can be taken. It reports what it removed; errors are ignored (a
// read-only directory has nothing to clean, and the write fails there
// anyway, with a clearer message).
func RemoveStale(dir string) []string {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var removed []string
	for _, name := range names {
		if !isTempName(name) {
			continue
		}
		p := filepath.Join(dir, name)
		if removeIfStale(p) {
			removed = append(removed, p)
		}
	}
	return removed
}

func removeIfStale(p string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // in use
	}
	// Unlink only what was locked: the name may lead elsewhere by now.
	if cur, err := os.Lstat(p); err != nil || !os.SameFile(st, cur) {
		return false
	}
	return os.Remove(p) == nil
}

// CheckTarget accepts a target that is absent or a regular file. It looks
// with lstat and opens nothing: opening a FIFO would wait for a writer.
func CheckTarget(target string) error {
	st, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s exists and is %s: an output must be a regular file or absent", target, Kind(st.Mode()))
	}
	return nil
}

// Kind names the type of a file for messages: "a regular file", "a
// directory", "a FIFO", ...
func Kind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// Commit syncs the data, renames it over the target and syncs the directory.
// A caller may Sync before (while it does other work); Commit's own sync
// then has only what was written since.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.target)
	}
	err := f.Sync()
	if err == nil {
		// Checked again: something other than a file may have appeared.
		err = CheckTarget(f.target)
	}
	if err == nil {
		// Renamed while still open, so still locked: a RemoveStale of a
		// concurrent process never takes it for a leftover.
		err = os.Rename(f.Name(), f.target)
	}
	// The data is synced: an error of close changes nothing.
	f.Close()
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
