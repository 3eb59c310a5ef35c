package ldso

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FS is what the resolver reads a root through, so that the same rules
// apply to a directory on disk and to an initrd held in memory (the
// verify command resolves every ELF of an image without unpacking it).
// Every name is absolute and physical inside the root: the resolver
// follows symlinks itself and never asks an FS to, so an implementation
// must not follow the last component in Lstat and Readlink. Errors must
// unwrap to fs.ErrNotExist (or syscall.ENOENT), syscall.ENOTDIR … as the
// kernel would report them.
type FS interface {
	// Lstat returns the type and permission bits of name.
	Lstat(name string) (fs.FileMode, error)
	// Readlink returns the target of the symlink name as stored.
	Readlink(name string) (string, error)
	// Open opens the regular file name for reading at any offset.
	Open(name string) (FileReader, error)
	// ReadDir lists the names in directory name, in any order.
	ReadDir(name string) ([]string, error)
}

// FileReader is an open regular file of an FS.
type FileReader interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// DirFS returns the FS of a directory on the host; dir "/" is the host's
// root. dir must be absolute and clean.
func DirFS(dir string) FS { return dirFS(dir) }

type dirFS string

func (d dirFS) host(name string) string {
	if d == "/" {
		return name
	}
	return string(d) + name
}

func (d dirFS) Lstat(name string) (fs.FileMode, error) {
	fi, err := os.Lstat(d.host(name))
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

func (d dirFS) Readlink(name string) (string, error) { return os.Readlink(d.host(name)) }

func (d dirFS) Open(name string) (FileReader, error) {
	f, err := os.Open(d.host(name))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file")}
	}
	return osFile{f, fi.Size()}, nil
}

func (d dirFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(d.host(name))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }
