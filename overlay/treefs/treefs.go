// Package treefs lets the ELF resolver (overlay/ldso) read an initrd's
// merged tree (remix.Tree) as it reads a directory, so the checks of
// `initrd-remix verify` and of the overlay run on an image in memory
// without unpacking it to disk.
package treefs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// maxFile bounds what one Open reads into memory: bodies spooled to disk
// are read whole, because debug/elf needs random access.
const maxFile = 1 << 30

// FS is an ldso.FS over a tree. It indexes directories once when created;
// the tree must not change while it is used.
type FS struct {
	t    *remix.Tree
	dirs map[string][]string // canonical directory -> names in it
}

// New returns the FS of t.
func New(t *remix.Tree) *FS {
	f := &FS{t: t, dirs: map[string][]string{}}
	for _, n := range t.Nodes() {
		if n.Path == "." {
			continue
		}
		dir, name := ".", n.Path
		if i := strings.LastIndexByte(n.Path, '/'); i >= 0 {
			dir, name = n.Path[:i], n.Path[i+1:]
		}
		f.dirs[dir] = append(f.dirs[dir], name)
	}
	return f
}

var _ ldso.FS = (*FS)(nil)

func canonical(name string) string { return remix.Canonical(name) }

func (f *FS) node(op, name string) (*remix.Node, error) {
	n := f.t.Get(canonical(name))
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
	}
	return n, nil
}

// Mode converts cpio mode bits to an fs.FileMode.
func Mode(m uint32) fs.FileMode {
	perm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	switch m & newc.TypeMask {
	case newc.TypeDir:
		perm |= fs.ModeDir
	case newc.TypeSymlink:
		perm |= fs.ModeSymlink
	case newc.TypeChar:
		perm |= fs.ModeDevice | fs.ModeCharDevice
	case newc.TypeBlock:
		perm |= fs.ModeDevice
	case newc.TypeFIFO:
		perm |= fs.ModeNamedPipe
	case newc.TypeSocket:
		perm |= fs.ModeSocket
	}
	return perm
}

// Lstat implements ldso.FS.
func (f *FS) Lstat(name string) (fs.FileMode, error) {
	n, err := f.node("lstat", name)
	if err != nil {
		return 0, err
	}
	return Mode(n.Inode.Mode), nil
}

// Readlink implements ldso.FS.
func (f *FS) Readlink(name string) (string, error) {
	n, err := f.node("readlink", name)
	if err != nil {
		return "", err
	}
	if n.Inode.Type() != newc.TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: syscall.EINVAL}
	}
	return n.Inode.Target, nil
}

// ReadDir implements ldso.FS.
func (f *FS) ReadDir(name string) ([]string, error) {
	n, err := f.node("readdir", name)
	if err != nil {
		return nil, err
	}
	if n.Inode.Type() != newc.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	return f.dirs[canonical(name)], nil
}

// Open implements ldso.FS.
func (f *FS) Open(name string) (ldso.FileReader, error) {
	n, err := f.node("open", name)
	if err != nil {
		return nil, err
	}
	if n.Inode.Type() != newc.TypeReg {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file")}
	}
	c := n.Inode.Content
	if c == nil {
		return reader{bytes.NewReader(nil)}, nil
	}
	if b, ok := c.(remix.BytesContent); ok {
		return reader{bytes.NewReader(b)}, nil
	}
	if c.Size() > maxFile {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	rc, err := c.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxFile))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return reader{bytes.NewReader(b)}, nil
}

type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }
