package remix

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"syscall"
	"time"
)

// FS is the io/fs view of a tree: names are in io/fs form ("." is the
// root, no leading slash) and symlinks are followed as the kernel would
// inside the image (absolute targets from the image's root, ".." clamped
// at it). It implements fs.ReadDirFS, fs.StatFS, fs.ReadFileFS and
// fs.ReadLinkFS. FileInfo.Sys returns the *Node. The tree must not change
// while the view is used.
type FS struct{ t *Tree }

var (
	_ fs.ReadDirFS  = FS{}
	_ fs.StatFS     = FS{}
	_ fs.ReadFileFS = FS{}
	_ fs.ReadLinkFS = FS{}
)

// FS returns the io/fs view of t.
func (t *Tree) FS() FS { return FS{t} }

// node resolves name for op; follow tells whether a symlink in the last
// component is followed.
func (f FS) node(op, name string, follow bool) (*Node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	_, n, err := f.t.Resolve(name, follow)
	switch {
	case errors.Is(err, ErrNotExist):
		err = fs.ErrNotExist
	case errors.Is(err, ErrNotDir):
		err = syscall.ENOTDIR
	case errors.Is(err, ErrLoop):
		err = syscall.ELOOP
	case err == nil && n == nil:
		err = fs.ErrNotExist
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// Open implements fs.FS. Directories can be read with ReadDir; devices,
// fifos and sockets open as empty files.
func (f FS) Open(name string) (fs.File, error) {
	n, err := f.node("open", name, true)
	if err != nil {
		return nil, err
	}
	info := fileInfo{name: path.Base(name), n: n}
	if n.Inode.IsDir() {
		return &dirFile{info: info, kids: n.children()}, nil
	}
	return &openFile{info: info}, nil
}

// Stat implements fs.StatFS.
func (f FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.node("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

// Lstat implements fs.ReadLinkFS: a symlink in the last component is not
// followed.
func (f FS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.node("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n}, nil
}

// ReadLink implements fs.ReadLinkFS.
func (f FS) ReadLink(name string) (string, error) {
	n, err := f.node("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !n.Inode.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: syscall.EINVAL}
	}
	return n.Inode.Target, nil
}

// ReadDir implements fs.ReadDirFS: the entries sorted by name, each
// describing the name itself (a symlink is not followed).
func (f FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.node("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.Inode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	return dirEntries(n.children()), nil
}

// ReadFile implements fs.ReadFileFS.
func (f FS) ReadFile(name string) ([]byte, error) {
	n, err := f.node("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.Inode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	c := n.Inode.Content
	if !n.Inode.IsRegular() || c == nil {
		return []byte{}, nil
	}
	if b, ok := c.(BytesContent); ok {
		return append([]byte{}, b...), nil
	}
	r, err := c.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	defer r.Close()
	b := make([]byte, c.Size())
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("content shorter than %d bytes: %w", c.Size(), err)}
	}
	return b, nil
}

func dirEntries(kids []*Node) []fs.DirEntry {
	out := make([]fs.DirEntry, len(kids))
	for i, k := range kids {
		out[i] = fileInfo{name: baseOf(k.Path), n: k}
	}
	return out
}

// fileInfo is both the fs.FileInfo and the fs.DirEntry of a node.
type fileInfo struct {
	name string
	n    *Node
}

func (i fileInfo) Name() string               { return i.name }
func (i fileInfo) Size() int64                { return i.n.Inode.Size() }
func (i fileInfo) Mode() fs.FileMode          { return i.n.Inode.FileMode() }
func (i fileInfo) ModTime() time.Time         { return time.Unix(int64(i.n.Inode.Mtime), 0) }
func (i fileInfo) IsDir() bool                { return i.n.Inode.IsDir() }
func (i fileInfo) Sys() any                   { return i.n }
func (i fileInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i fileInfo) Info() (fs.FileInfo, error) { return i, nil }
func (i fileInfo) String() string             { return fs.FormatFileInfo(i) }

// openFile is an open regular file (or device, fifo, socket: empty). Its
// content is opened on the first Read.
type openFile struct {
	info fileInfo
	r    io.ReadCloser
	err  error
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *openFile) Read(b []byte) (int, error) {
	if f.r == nil && f.err == nil {
		c := f.info.n.Inode.Content
		if !f.info.n.Inode.IsRegular() || c == nil {
			f.err = io.EOF
		} else if f.r, f.err = c.Open(); f.err != nil {
			f.err = &fs.PathError{Op: "read", Path: f.info.name, Err: f.err}
		}
	}
	if f.err != nil {
		return 0, f.err
	}
	return f.r.Read(b)
}

func (f *openFile) Close() error {
	if f.r != nil {
		return f.r.Close()
	}
	return nil
}

// dirFile is an open directory.
type dirFile struct {
	info fileInfo
	kids []*Node
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: syscall.EISDIR}
}

func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	n := len(d.kids)
	if count > 0 && count < n {
		n = count
	}
	if count > 0 && n == 0 {
		return nil, io.EOF
	}
	out := dirEntries(d.kids[:n])
	d.kids = d.kids[n:]
	return out, nil
}
