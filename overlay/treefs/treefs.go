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
	"syscall"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/remix"
)

// maxFile bounds what one Open reads into memory: a body whose content
// offers no random access is read whole, because debug/elf needs it.
const maxFile = 1 << 30

// FS is an ldso.FS over a tree: names are physical (the resolver follows
// links itself), looked up without following any link, and listings come
// from the tree's own directory index. The tree must not change while it
// is used.
type FS struct {
	t *remix.Tree
}

// New returns the FS of t.
func New(t *remix.Tree) *FS { return &FS{t: t} }

var _ ldso.FS = (*FS)(nil)

func (f *FS) node(op, name string) (*remix.Node, error) {
	n := f.t.Get(remix.Canonical(name))
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
	}
	return n, nil
}

// Lstat implements ldso.FS.
func (f *FS) Lstat(name string) (fs.FileMode, error) {
	n, err := f.node("lstat", name)
	if err != nil {
		return 0, err
	}
	return n.Inode.FileMode(), nil
}

// Readlink implements ldso.FS.
func (f *FS) Readlink(name string) (string, error) {
	n, err := f.node("readlink", name)
	if err != nil {
		return "", err
	}
	if !n.IsSymlink() {
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
	if !n.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	kids, err := f.t.ReadDir(n.Path)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	names := make([]string, len(kids))
	for i, k := range kids {
		names[i] = k.Name()
	}
	return names, nil
}

// Open implements ldso.FS.
func (f *FS) Open(name string) (ldso.FileReader, error) {
	n, err := f.node("open", name)
	if err != nil {
		return nil, err
	}
	if !n.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file")}
	}
	c := n.Inode.Content
	if b, ok := c.(remix.BytesContent); ok {
		return reader{bytes.NewReader(b)}, nil
	}
	if c == nil {
		return reader{bytes.NewReader(nil)}, nil
	}
	// Bodies on disk (a file of the root the overlay added, a body
	// spooled to disk) are read where they are: the resolver reads an
	// ELF's headers and a few sections, never the whole of a library.
	r, err := c.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if ra, ok := r.(io.ReaderAt); ok {
		return &section{SectionReader: io.NewSectionReader(ra, 0, c.Size()), c: r}, nil
	}
	defer r.Close()
	if c.Size() > maxFile {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	b := make([]byte, c.Size())
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("content shorter than %d bytes: %w", c.Size(), err)}
	}
	return reader{bytes.NewReader(b)}, nil
}

type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }

// section is a body read in place, of the size the tree records.
type section struct {
	*io.SectionReader
	c io.Closer
}

func (s *section) Close() error { return s.c.Close() }
