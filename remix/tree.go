package remix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// maxSymlinkHops matches the kernel's MAXSYMLINKS: a path walk that needs
// more hops fails with ELOOP, so the entry is dropped at boot.
const maxSymlinkHops = 40

// Errors a Tree operation returns when the kernel's unpacker would fail the
// same way; the entry would be silently dropped at boot.
var (
	ErrNotExist    = errors.New("no such file or directory")
	ErrNotDir      = errors.New("not a directory")
	ErrLoop        = errors.New("too many levels of symbolic links")
	ErrDirNotEmpty = errors.New("directory not empty")
	ErrIsDir       = errors.New("is a directory")
	ErrExist       = errors.New("file exists")
)

// Content is the body of a regular file. Implementations must return the
// same bytes every time Open is called.
type Content interface {
	Size() int64
	Open() (io.ReadCloser, error)
}

// BytesContent is a Content held in memory, for small generated files.
type BytesContent []byte

// Size implements Content.
func (b BytesContent) Size() int64 { return int64(len(b)) }

// Open implements Content.
func (b BytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// FileContent is a Content read from a host file when the image is written,
// so large trees are never copied into memory. The size is taken when it is
// created; a file that changed size by write time is an error.
type FileContent struct {
	Path string
	Len  int64
}

// NewFileContent records path and its current size.
func NewFileContent(path string) (FileContent, error) {
	st, err := os.Stat(path)
	if err != nil {
		return FileContent{}, err
	}
	if !st.Mode().IsRegular() {
		return FileContent{}, fmt.Errorf("%s: not a regular file", path)
	}
	return FileContent{Path: path, Len: st.Size()}, nil
}

// Size implements Content.
func (f FileContent) Size() int64 { return f.Len }

// Open implements Content.
func (f FileContent) Open() (io.ReadCloser, error) {
	fh, st, err := OpenRegular(f.Path)
	if err != nil {
		return nil, err
	}
	if st.Size() != f.Len {
		fh.Close()
		return nil, fmt.Errorf("%s: size changed from %d to %d since it was added", f.Path, f.Len, st.Size())
	}
	return fh, nil
}

// Inode is the shared part of hard-linked names: type and permissions,
// owner, times, device numbers, link target and content.
type Inode struct {
	Mode      uint32 // type and permission bits as in cpio
	UID, GID  uint32
	Mtime     uint32
	RDevMajor uint32
	RDevMinor uint32
	Target    string  // symlinks only
	Content   Content // regular files only; nil means empty

	gen   int // generation that last changed it
	links int
}

// Type returns the file type bits (newc.TypeReg, newc.TypeDir, ...).
// To retire outside package remix: stages use the predicates (IsDir,
// IsRegular, IsSymlink, IsDevice ...) and TypeName.
func (i *Inode) Type() uint32 { return i.Mode & newc.TypeMask }

// Size is the body size written for the inode: content for regular files,
// the target for symlinks, 0 otherwise.
func (i *Inode) Size() int64 {
	switch i.Type() {
	case newc.TypeReg:
		if i.Content == nil {
			return 0
		}
		return i.Content.Size()
	case newc.TypeSymlink:
		return int64(len(i.Target))
	}
	return 0
}

// Links is the number of names the inode has in the tree.
func (i *Inode) Links() int { return i.links }

// Node is one name in the tree.
type Node struct {
	Path  string // canonical: no leading slash, no symlinks in its parents; "." is the root
	Inode *Inode

	seq  int     // creation order: parents always have a smaller seq than children
	gen  int     // generation that created this name
	kids []*Node // for directories: the names it holds, in no order
	// detached: Replace gave the name a new inode where the kernel, given
	// the bare entry, would write through the old one (a hard-linked file,
	// a device node); an appended archive must unlink the name first.
	detached bool
}

// Gen is the generation that last changed the name or its inode. Entries read
// from segment i have generation i; edits made through Tree methods have the
// tree's current edit generation.
func (n *Node) Gen() int {
	if n.Inode.gen > n.gen {
		return n.Inode.gen
	}
	return n.gen
}

// Entry describes one thing to put in the tree, as a cpio header does.
type Entry struct {
	Name      string
	Mode      uint32 // type and permission bits
	UID, GID  uint32
	Mtime     uint32
	RDevMajor uint32
	RDevMinor uint32
	Target    string  // symlinks
	Content   Content // regular files
}

// Tree is the root filesystem the kernel builds from an initrd: every entry
// applied in order with the unpacker's semantics (init/initramfs.c), so that
// later entries win, a type change replaces, writes go through symlinked
// parent directories (usr-merge) and hard links share one inode. Edits made
// by later stages go through the same rules, so what the tree shows is what
// the kernel will build from the written image.
type Tree struct {
	nodes map[string]*Node
	seq   int
	gen   int
}

// NewTree returns a tree holding only the root directory.
func NewTree() *Tree {
	t := &Tree{nodes: map[string]*Node{}}
	t.nodes["."] = &Node{Path: ".", Inode: &Inode{Mode: newc.TypeDir | 0o755, links: 1}}
	return t
}

// SetGeneration sets the generation recorded on names and inodes changed
// from now on. Image readers use the segment index; editors use a value
// above every segment so that append mode can find their changes.
func (t *Tree) SetGeneration(g int) { t.gen = g }

// Generation returns the current edit generation.
func (t *Tree) Generation() int { return t.gen }

// Len returns the number of names, the root included.
func (t *Tree) Len() int { return len(t.nodes) }

// Get returns the node at a canonical path, or nil.
func (t *Tree) Get(canonical string) *Node { return t.nodes[canonical] }

// ReadDir returns the names directly inside the directory dir, sorted by
// name. dir is resolved through the image's own links, the last component
// included, as the kernel's opendir would; the cost is that of the
// directory's entries, not of the tree.
func (t *Tree) ReadDir(dir string) ([]*Node, error) {
	p, n, err := t.Resolve(dir, true)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("%s: %w", p, ErrNotExist)
	}
	if n.Inode.Type() != newc.TypeDir {
		return nil, fmt.Errorf("%s: %w", p, ErrNotDir)
	}
	return n.children(), nil
}

// children lists a directory node's names sorted by name.
func (n *Node) children() []*Node {
	out := append([]*Node(nil), n.kids...)
	sort.Slice(out, func(a, b int) bool { return baseOf(out[a].Path) < baseOf(out[b].Path) })
	return out
}

// Nodes returns every node in creation order, so that each directory comes
// before what it holds, as an archive must list them. It costs the whole
// tree: to list a directory use ReadDir.
func (t *Tree) Nodes() []*Node {
	out := make([]*Node, 0, len(t.nodes))
	for _, n := range t.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].seq < out[b].seq })
	return out
}

// Resolve returns the canonical path of name, following symlinks in every
// parent component and, when followLast is set, in the last one too. A path
// that would leave the image is clamped at its root, as the kernel's walk
// is at "/". The returned node is nil when the last component does not exist.
func (t *Tree) Resolve(name string, followLast bool) (string, *Node, error) {
	return t.walk(name, followLast, 0)
}

func (t *Tree) walk(name string, followLast bool, hops int) (string, *Node, error) {
	comps := splitPath(name)
	cur := "."
	for i, c := range comps {
		last := i == len(comps)-1
		switch c {
		case ".":
			continue
		case "..":
			cur = parentOf(cur)
			continue
		}
		next := join(cur, c)
		n := t.nodes[next]
		if n == nil {
			if last {
				return next, nil, nil
			}
			return "", nil, fmt.Errorf("%s: %w", next, ErrNotExist)
		}
		if n.Inode.Type() == newc.TypeSymlink && (!last || followLast) {
			hops++
			if hops > maxSymlinkHops {
				return "", nil, fmt.Errorf("%s: %w", name, ErrLoop)
			}
			base := cur
			if strings.HasPrefix(n.Inode.Target, "/") {
				base = "."
			}
			target, tn, err := t.walk(join(base, n.Inode.Target), true, hops)
			if err != nil {
				return "", nil, err
			}
			if last {
				return target, tn, nil
			}
			if tn == nil {
				return "", nil, fmt.Errorf("%s: %w", target, ErrNotExist)
			}
			next, n = target, tn
		}
		if !last && n.Inode.Type() != newc.TypeDir {
			return "", nil, fmt.Errorf("%s: %w", next, ErrNotDir)
		}
		cur = next
		if last {
			return cur, n, nil
		}
	}
	return cur, t.nodes[cur], nil
}

// Lookup returns the node name refers to, following symlinks in its parents
// but not in its last component, or nil if there is none.
func (t *Tree) Lookup(name string) *Node {
	_, n, err := t.Resolve(name, false)
	if err != nil {
		return nil
	}
	return n
}

// Put applies e with the kernel's semantics and returns the resulting node.
// It fails where the kernel would drop the entry (missing parent, a
// non-empty directory in the way, a loop), so callers can refuse to write an
// image whose boot would differ from the tree.
func (t *Tree) Put(e Entry) (*Node, error) {
	p, old, err := t.Resolve(e.Name, false)
	if err != nil {
		return nil, err
	}
	typ := e.Mode & newc.TypeMask
	if p == "." {
		// The root can only be re-owned and re-moded, never replaced.
		if typ != newc.TypeDir {
			return nil, fmt.Errorf("%s: %w", e.Name, ErrIsDir)
		}
		t.setMeta(old.Inode, e)
		return old, nil
	}
	if old != nil && old.Inode.Type() != typ {
		if err := t.remove(old); err != nil {
			return nil, err
		}
		old = nil
	}
	switch typ {
	case newc.TypeDir:
		if old != nil {
			t.setMeta(old.Inode, e)
			return old, nil
		}
		return t.create(p, &Inode{}, e), nil
	case newc.TypeSymlink:
		if old != nil {
			if err := t.remove(old); err != nil {
				return nil, err
			}
		}
		return t.create(p, &Inode{}, e), nil
	case newc.TypeReg:
		if old != nil {
			// Same path, same type: the kernel truncates and rewrites the
			// existing inode, which every hard link to it sees.
			t.setMeta(old.Inode, e)
			old.Inode.Content = e.Content
			return old, nil
		}
		return t.create(p, &Inode{}, e), nil
	case newc.TypeChar, newc.TypeBlock, newc.TypeFIFO, newc.TypeSocket:
		if old != nil {
			// mknod fails with EEXIST and the device numbers stay; only
			// chown and chmod reach the existing node.
			old.Inode.UID, old.Inode.GID = e.UID, e.GID
			old.Inode.Mode = e.Mode
			old.Inode.gen = t.gen
			return old, nil
		}
		return t.create(p, &Inode{}, e), nil
	}
	return nil, fmt.Errorf("%s: unknown file type %#o", e.Name, typ)
}

// Replace puts e at its name as a new file of its own. Where Put follows
// the kernel and writes a regular file's content through to every hard link
// of the inode already there (and leaves an existing device node as it is),
// Replace unlinks the name first, so the other links keep their content: a
// program put over one of busybox's hard-linked applet names leaves the
// other applets intact. In append mode the writer precedes such an entry
// with one of another type, which makes the kernel unlink the name too.
// Stages editing an image call Install, which replaces this way and also
// makes the parents and refuses to replace a directory; Replace is to
// retire outside package remix.
func (t *Tree) Replace(e Entry) (*Node, error) {
	p, old, err := t.Resolve(e.Name, false)
	if err != nil {
		return nil, err
	}
	typ := e.Mode & newc.TypeMask
	detach := false
	if old != nil && p != "." && typ != newc.TypeDir {
		ot := old.Inode.Type()
		detach = ot == typ && typ != newc.TypeSymlink && (typ != newc.TypeReg || old.Inode.links > 1)
		if err := t.remove(old); err != nil {
			return nil, err
		}
	}
	n, err := t.Put(e)
	if err != nil {
		return nil, err
	}
	n.detached = n.detached || detach
	return n, nil
}

// Link makes name another hard link to the inode of node, replacing what
// name held (the kernel's clean_path before link).
func (t *Tree) Link(target *Node, name string) (*Node, error) {
	if target.Inode.Type() == newc.TypeDir {
		return nil, fmt.Errorf("%s: hard link to a directory: %w", name, ErrIsDir)
	}
	p, old, err := t.Resolve(name, false)
	if err != nil {
		return nil, err
	}
	if old == target {
		return old, nil
	}
	if p == "." {
		return nil, fmt.Errorf("%s: %w", name, ErrExist)
	}
	if old != nil {
		if err := t.remove(old); err != nil {
			return nil, err
		}
	}
	return t.attach(p, target.Inode), nil
}

// MkdirAll creates name and its missing parents as directories owned by
// root, following existing symlinks (so usr/lib is reached through a lib ->
// usr/lib link rather than replacing it), and returns the canonical path.
func (t *Tree) MkdirAll(name string, perm uint32, mtime uint32) (string, error) {
	cur := "."
	for _, c := range splitPath(name) {
		p, n, err := t.Resolve(join(cur, c), true)
		if err != nil {
			return "", err
		}
		if n == nil {
			n, err = t.Put(Entry{Name: p, Mode: newc.TypeDir | perm&0o7777, Mtime: mtime})
			if err != nil {
				return "", err
			}
		}
		if n.Inode.Type() != newc.TypeDir {
			return "", fmt.Errorf("%s: %w", p, ErrNotDir)
		}
		cur = p
	}
	return cur, nil
}

func (t *Tree) setMeta(i *Inode, e Entry) {
	i.Mode, i.UID, i.GID, i.Mtime = e.Mode, e.UID, e.GID, e.Mtime
	i.gen = t.gen
}

func (t *Tree) create(p string, i *Inode, e Entry) *Node {
	t.setMeta(i, e)
	i.RDevMajor, i.RDevMinor = e.RDevMajor, e.RDevMinor
	i.Target, i.Content = e.Target, e.Content
	return t.attach(p, i)
}

func (t *Tree) attach(p string, i *Inode) *Node {
	t.seq++
	n := &Node{Path: p, Inode: i, seq: t.seq, gen: t.gen}
	i.links++
	t.nodes[p] = n
	if parent := t.nodes[parentOf(p)]; parent != nil {
		parent.kids = append(parent.kids, n)
	}
	return n
}

func (t *Tree) remove(n *Node) error {
	if n.Inode.Type() == newc.TypeDir && len(n.kids) > 0 {
		return fmt.Errorf("%s: %w", n.Path, ErrDirNotEmpty)
	}
	delete(t.nodes, n.Path)
	n.Inode.links--
	if parent := t.nodes[parentOf(n.Path)]; parent != nil {
		for i, k := range parent.kids {
			if k == n {
				last := len(parent.kids) - 1
				parent.kids[i] = parent.kids[last]
				parent.kids[last] = nil
				parent.kids = parent.kids[:last]
				break
			}
		}
	}
	return nil
}

// Canonical turns an archive name into the form the tree and the writer
// use: no leading "./" or "/", "." for the root. It does not resolve links.
func Canonical(name string) string {
	c := path.Clean("/" + name)
	if c == "/" {
		return "."
	}
	return c[1:]
}

func splitPath(name string) []string {
	var out []string
	for _, c := range strings.Split(name, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// ParentPath returns the directory part of a canonical path ("." for a
// name in the root and for the root itself).
func ParentPath(canonical string) string { return parentOf(canonical) }

// JoinPath joins a canonical directory and a name in it.
func JoinPath(dir, name string) string { return join(dir, name) }

func baseOf(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}
