package treetest

import (
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
)

// TestTree: each kind of line makes its kind of entry, in order, so that
// later lines reach earlier ones through their links.
func TestTree(t *testing.T) {
	tr := Tree(t, "usr/", "usr/lib/", "lib=-> usr/lib", "lib/x=body")
	if n := tr.Get("usr/lib"); n == nil || !n.IsDir() || n.Perm() != 0o755 {
		t.Errorf("usr/lib: %+v", n)
	}
	if n := tr.Get("lib"); n == nil || !n.IsSymlink() || n.Inode.Target != "usr/lib" {
		t.Errorf("lib: %+v", n)
	}
	n := tr.Get("usr/lib/x")
	if n == nil || !n.IsRegular() || n.Perm() != 0o755 || string(remix.Head(n.Inode.Content, 10)) != "body" {
		t.Errorf("usr/lib/x (written through lib): %+v", n)
	}
	if tr.Len() != 5 {
		t.Errorf("%d names, want 5 with the root", tr.Len())
	}
}
