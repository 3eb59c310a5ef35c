package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/initrd-remix/initrd-remix/remix"
)

// writer puts entries of the root into the image, resolving every path
// against the image's own symlinks first. It is the only place that
// writes into the tree.
type writer struct {
	a         *applier
	bySrc     map[string]string // source path -> canonical image path written
	conflicts []dirLink         // root links that are directories in the image
	links     []writtenLink     // symlinks written, checked at the end
	// keep holds the objects of the root whose copy in the image stays
	// (see planVersions): neither they nor links to them are written
	// over what the image has at their names.
	keep map[string]string
}

// dirLink is a symlink of the root whose path is a directory in the image
// (or the image's own link to another place): the image keeps its layout
// and what the root reaches through the link gets links inside it.
type dirLink struct {
	imagePath string // where the link would have gone, as given
	target    string // physical path of the link's target in the root
}

type writtenLink struct {
	canon, src, dest, target string
}

func newWriter(a *applier) *writer {
	return &writer{a: a, bySrc: map[string]string{}}
}

// put copies src (a path inside the root whose parents are physical) to
// dest in the image.
func (w *writer) put(src, dest, why string) error {
	if _, ok := w.bySrc[src]; ok && src == dest {
		return nil
	}
	t := w.a.tree
	fi, err := os.Lstat(w.a.host(src))
	if err != nil {
		return fmt.Errorf("%s in %s: %w", src, w.a.root, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	var uid, gid uint32
	if st != nil {
		uid, gid = st.Uid, st.Gid
	}
	mtime := uint32(fi.ModTime().Unix())
	canon, node, err := t.Place(dest, mtime)
	if err != nil {
		return fmt.Errorf("image directory for %s: %w", dest, err)
	}
	perm := remix.Perm(fi.Mode())
	var e remix.Entry
	typ := "file"
	switch {
	case fi.IsDir():
		typ = "dir"
		if node != nil {
			// Never a directory over a link (usr-merge) or over what
			// the image already has: the image's layout wins.
			if node.IsDir() {
				w.bySrc[src] = canon
				return nil
			}
			if node.IsSymlink() {
				if _, n, err := t.Resolve(canon, true); err == nil && n != nil && n.IsDir() {
					w.bySrc[src] = canon
					return nil
				}
			}
			return fmt.Errorf("%s: the image has a %s at %s where the root has a directory", src, remix.TypeName(node.Inode.Mode), canon)
		}
		e = remix.Dir(canon, perm)
	case fi.Mode()&fs.ModeSymlink != 0:
		typ = "symlink"
		target, err := os.Readlink(w.a.host(src))
		if err != nil {
			return fmt.Errorf("%s in %s: %w", src, w.a.root, err)
		}
		if node != nil && w.keepImageDir(node, canon, src, dest, target) {
			w.bySrc[src] = canon
			return nil
		}
		if node != nil && node.IsSymlink() && node.Inode.Target == target {
			w.bySrc[src] = canon
			return nil
		}
		// A link of the root to a library whose image copy stays: the
		// image's entry at that name stays too, whatever it is.
		if node != nil && len(w.keep) > 0 {
			if _, phys, _, err := w.a.res.Walk(src); err == nil {
				if _, kept := w.keep[phys]; kept {
					w.bySrc[src] = canon
					return nil
				}
			}
		}
		// A file of the image where the root has a link met on the way
		// (a script's /bin/sh: busybox in the image, a link to dash in
		// the root): the image's own program stays, since its /init and
		// scripts run with it; what the link leads to is added at its
		// own path anyway. A name asked for (--add vi) is replaced.
		if node != nil && node.IsRegular() && !w.a.requested[src] {
			w.bySrc[src] = canon
			w.a.report.Skipped = append(w.a.report.Skipped, fmt.Sprintf("/%s: the image's own file kept (the root has a link to %s)", canon, target))
			return nil
		}
		e = remix.Symlink(canon, target)
		w.links = append(w.links, writtenLink{canon: canon, src: src, dest: dest, target: target})
	case fi.Mode().IsRegular():
		// The image's copy of a library stays, at this path or wherever
		// its loader finds that name (an unmerged image's lib/): the
		// root's is never written beside it, where a program could load
		// a second, mismatched copy.
		if _, kept := w.keep[src]; kept && (node == nil || node.IsRegular()) {
			w.bySrc[src] = canon
			return nil
		}
		if node != nil && node.IsDir() {
			return fmt.Errorf("%s: the image has a directory at %s where the root has a file", src, canon)
		}
		c, err := remix.NewFileContent(w.a.host(src))
		if err != nil {
			return err
		}
		e = remix.File(canon, perm, c)
	default:
		// Devices, fifos and sockets of an included tree: as they are.
		typ = "special"
		e = remix.Entry{Name: canon, Mode: remix.CpioMode(fi.Mode())}
		if st != nil {
			e.RDevMajor, e.RDevMinor = uint32(st.Rdev>>8&0xfff), uint32(st.Rdev&0xff|st.Rdev>>12&0xfff00)
		}
	}
	e.UID, e.GID, e.Mtime = uid, gid, mtime
	// Install replaces, never Puts: the kernel writes a regular file over
	// an existing one in place, so the root's cat put over one of
	// busybox's hard-linked applets would turn every applet, /bin/sh
	// included, into cat. Install gives the name an inode of its own (and
	// the writer makes the kernel unlink it first).
	if _, err := t.Install(e); err != nil {
		return fmt.Errorf("writing %s (from %s) into the image: %w", canon, src, err)
	}
	w.bySrc[src] = canon
	w.a.report.Added = append(w.a.report.Added, Added{Path: canon, Type: typ, Source: src, Reason: why})
	return nil
}

// keepImageDir decides, for a symlink of the root, whether the image's
// entry at that place is a directory (its own, or reached through its own
// different link) that must stay: then what the root reaches through the
// link is linked into it at the end.
func (w *writer) keepImageDir(node *remix.Node, canon, src, dest, target string) bool {
	t := w.a.tree
	isDir := node.IsDir()
	if node.IsSymlink() && node.Inode.Target != target {
		if _, n, err := t.Resolve(canon, true); err == nil && n != nil && n.IsDir() {
			isDir = true
		}
	}
	if !isDir {
		return false
	}
	_, phys, mode, err := w.a.res.Walk(src)
	if err != nil || !mode.IsDir() {
		return false
	}
	w.conflicts = append(w.conflicts, dirLink{imagePath: dest, target: phys})
	return true
}

// finish links what the root reaches through links that are directories
// in the image, and repairs relative link targets that point elsewhere in
// the image than in the root.
func (w *writer) finish() error {
	t := w.a.tree
	srcs := make([]string, 0, len(w.bySrc))
	for s := range w.bySrc {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	for _, c := range w.conflicts {
		for _, s := range srcs {
			rel, ok := strings.CutPrefix(s, c.target+"/")
			if !ok {
				continue
			}
			fi, err := os.Lstat(w.a.host(s))
			if err != nil || fi.IsDir() {
				continue
			}
			img := path.Join(c.imagePath, rel)
			mtime := uint32(fi.ModTime().Unix())
			canon, old, err := t.Place(img, mtime)
			if err != nil {
				return fmt.Errorf("image directory for %s: %w", img, err)
			}
			if old != nil || canon == w.bySrc[s] {
				continue
			}
			e := remix.Symlink(canon, "/"+w.bySrc[s])
			e.Mtime = mtime
			if _, err := t.Install(e); err != nil {
				return fmt.Errorf("writing %s into the image: %w", canon, err)
			}
			w.a.report.Added = append(w.a.report.Added, Added{Path: canon, Type: "symlink", Source: s,
				Reason: fmt.Sprintf("%s is a directory in the image but a link to %s in the root", c.imagePath, c.target)})
		}
	}
	for _, l := range w.links {
		if strings.HasPrefix(l.target, "/") {
			continue
		}
		want, wn, err := t.Resolve(path.Join(path.Dir(l.src), l.target), false)
		if err != nil || wn == nil {
			continue // dangling either way: verify lists it
		}
		dir := "/" + remix.ParentPath(l.canon)
		got, _, err := t.Resolve(path.Join(dir, l.target), false)
		if err == nil && got == want {
			continue
		}
		rel, err := filepath.Rel(dir, "/"+want)
		if err != nil {
			continue
		}
		n := t.Get(l.canon)
		e := remix.Symlink(l.canon, rel)
		e.UID, e.GID, e.Mtime = n.Inode.UID, n.Inode.GID, n.Inode.Mtime
		if _, err := t.Install(e); err != nil {
			return fmt.Errorf("rewriting link %s into the image: %w", l.canon, err)
		}
		w.a.report.Warnings = append(w.a.report.Warnings, fmt.Sprintf("%s: link target %s rewritten to %s to stay valid in the image's layout", l.canon, l.target, rel))
	}
	return nil
}
