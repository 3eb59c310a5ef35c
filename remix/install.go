package remix

import "fmt"

// InstallOption changes how Install creates what it needs.
type InstallOption func(*installOptions)

type installOptions struct {
	parentMtime uint32
}

// ParentMtime sets the mtime of the parent directories Install creates
// (by default the entry's own).
func ParentMtime(mtime uint32) InstallOption {
	return func(o *installOptions) { o.parentMtime = mtime }
}

// Place returns the canonical path at which name is written into the image
// and the node already there (nil if none). The parent directory is
// resolved through the image's own symlinks, the last one included (a
// usr-merged image's lib -> usr/lib), and the parents that are missing are
// created as directories (0755, owned by root, with mtime); the last
// component is not followed. Stages that decide what to write from what is
// there call Place, then Install at the returned path.
func (t *Tree) Place(name string, mtime uint32) (string, *Node, error) {
	c := Canonical(name)
	if c == "." {
		return ".", t.nodes["."], nil
	}
	dir, err := t.MkdirAll(parentOf(c), 0o755, mtime)
	if err != nil {
		return "", nil, fmt.Errorf("parent of %s: %w", c, err)
	}
	p := join(dir, baseOf(c))
	return p, t.nodes[p], nil
}

// Install writes e into the image the way every stage adds or edits a
// file: the parent is resolved and made as Place does; a directory at the
// name is never replaced (ErrIsDir); a symlink at the name is replaced, not
// written through; and the name gets an inode of its own (Replace, not
// Put), so the names hard-linked to what was there keep their content.
// e.Name may be any path; the node returned has the canonical one.
func (t *Tree) Install(e Entry, opts ...InstallOption) (*Node, error) {
	o := installOptions{parentMtime: e.Mtime}
	for _, opt := range opts {
		opt(&o)
	}
	p, old, err := t.Place(e.Name, o.parentMtime)
	if err != nil {
		return nil, err
	}
	if old != nil && old.Inode.IsDir() {
		return nil, fmt.Errorf("%s: %w", p, ErrIsDir)
	}
	e.Name = p
	n, err := t.Replace(e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}
