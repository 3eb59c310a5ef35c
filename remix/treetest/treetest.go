// Package treetest builds synthetic initrd trees (remix.Tree) for the
// tests of every stage: from entries, or from lines a reader can check at
// a glance.
package treetest

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
)

// Of builds a tree from entries put in order, as an archive's would be.
func Of(t testing.TB, entries ...remix.Entry) *remix.Tree {
	t.Helper()
	tr := remix.NewTree()
	for _, e := range entries {
		if _, err := tr.Put(e); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
	}
	return tr
}

// Tree builds a tree from lines in order: "dir/" is a directory,
// "name=-> target" a symlink, "name=body" an executable file with body.
func Tree(t testing.TB, lines ...string) *remix.Tree {
	t.Helper()
	entries := make([]remix.Entry, len(lines))
	for i, l := range lines {
		entries[i] = Entry(l)
	}
	return Of(t, entries...)
}

// Entry is one line of Tree as an entry.
func Entry(line string) remix.Entry {
	name, body, _ := strings.Cut(line, "=")
	switch {
	case strings.HasSuffix(name, "/"):
		return remix.Dir(strings.TrimSuffix(name, "/"), 0o755)
	case strings.HasPrefix(body, "-> "):
		return remix.Symlink(name, strings.TrimPrefix(body, "-> "))
	}
	return remix.File(name, 0o755, remix.BytesContent(body))
}

// Unpack writes the regular files under dir in the tree (through its
// symlinks, as the kernel would reach them) to the host directory to,
// those for which keep (nil: all) is true of their path relative to dir;
// for a real tool (modprobe, ldd) to read what the tree holds.
func Unpack(t testing.TB, tr *remix.Tree, dir, to string, keep func(rel string) bool) {
	t.Helper()
	canon, _, err := tr.Resolve(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.Nodes() {
		rel, ok := strings.CutPrefix(n.Path, canon+"/")
		if !ok || !n.IsRegular() || (keep != nil && !keep(rel)) {
			continue
		}
		dst := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		var body []byte
		if n.Inode.Content != nil {
			rc, err := n.Inode.Content.Open()
			if err != nil {
				t.Fatal(err)
			}
			body, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: %v", n.Path, err)
			}
		}
		if err := os.WriteFile(dst, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
