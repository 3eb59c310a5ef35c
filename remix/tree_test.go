package remix

import (
	"errors"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

func dir(name string) Entry { return Entry{Name: name, Mode: newc.TypeDir | 0o755} }
func file(name, body string) Entry {
	return Entry{Name: name, Mode: newc.TypeReg | 0o644, Content: BytesContent(body)}
}
func link(name, target string) Entry {
	return Entry{Name: name, Mode: newc.TypeSymlink | 0o777, Target: target}
}

func mustPut(t *testing.T, tr *Tree, es ...Entry) {
	t.Helper()
	for _, e := range es {
		if _, err := tr.Put(e); err != nil {
			t.Fatalf("put %s: %v", e.Name, err)
		}
	}
}

func body(t *testing.T, n *Node) string {
	t.Helper()
	if n == nil {
		t.Fatal("node missing")
	}
	if n.Inode.Content == nil {
		return ""
	}
	return string(Head(n.Inode.Content, 1<<20))
}

// usrMerged is the layout of Debian 12's and Fedora's images.
func usrMerged(t *testing.T) *Tree {
	tr := NewTree()
	mustPut(t, tr, dir("usr"), dir("usr/bin"), dir("usr/lib"), link("bin", "usr/bin"), link("lib", "/usr/lib"))
	return tr
}

func TestPutFollowsTheKernelsRules(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		check   func(t *testing.T, tr *Tree)
		wantErr error // of the last entry
	}{
		{
			name:    "later regular file wins",
			entries: []Entry{file("a", "one"), file("a", "two")},
			check: func(t *testing.T, tr *Tree) {
				if got := body(t, tr.Get("a")); got != "two" {
					t.Fatalf("content %q", got)
				}
			},
		},
		{
			name:    "names are normalised and .. is clamped at the root",
			entries: []Entry{dir("./etc"), file("/../../etc/passwd", "x"), file("etc/./../etc/group", "y")},
			check: func(t *testing.T, tr *Tree) {
				if tr.Get("etc/passwd") == nil || tr.Get("etc/group") == nil || tr.Len() != 9 {
					t.Fatalf("nodes: %v", paths(tr))
				}
			},
		},
		{
			name:    "writes through a symlinked parent land in usr",
			entries: []Entry{file("bin/sh", "sh"), file("lib/libc.so.6", "libc")},
			check: func(t *testing.T, tr *Tree) {
				if tr.Get("usr/bin/sh") == nil || tr.Get("usr/lib/libc.so.6") == nil {
					t.Fatalf("nodes: %v", paths(tr))
				}
				if tr.Get("bin").Inode.Type() != newc.TypeSymlink {
					t.Fatal("bin stopped being a symlink")
				}
			},
		},
		{
			name:    "a directory entry over a usr-merge link replaces the link, as the kernel does",
			entries: []Entry{dir("bin")},
			check: func(t *testing.T, tr *Tree) {
				if tr.Get("bin").Inode.Type() != newc.TypeDir {
					t.Fatal("kernel semantics: bin must now be a directory")
				}
			},
		},
		{
			name:    "a symlink over a non-empty directory fails like rmdir",
			entries: []Entry{file("usr/bin/x", "x"), link("usr/bin", "/nowhere")},
			wantErr: ErrDirNotEmpty,
		},
		{
			name:    "a missing parent drops the entry",
			entries: []Entry{file("nope/x", "x")},
			wantErr: ErrNotExist,
		},
		{
			name:    "a symlink loop is refused",
			entries: []Entry{link("a", "b"), link("b", "a"), file("a/x", "x")},
			wantErr: ErrLoop,
		},
		{
			name: "a device entry over the same type keeps the device numbers (mknod fails with EEXIST)",
			entries: []Entry{dir("dev"),
				{Name: "dev/console", Mode: newc.TypeChar | 0o600, RDevMajor: 5, RDevMinor: 1},
				{Name: "dev/console", Mode: newc.TypeChar | 0o620, UID: 7, RDevMajor: 4, RDevMinor: 0}},
			check: func(t *testing.T, tr *Tree) {
				in := tr.Get("dev/console").Inode
				if in.RDevMajor != 5 || in.RDevMinor != 1 || in.Mode&0o777 != 0o620 || in.UID != 7 {
					t.Fatalf("console: %+v", in)
				}
			},
		},
		{
			name:    "a file over a symlink replaces the link and does not write through it",
			entries: []Entry{file("usr/bin/real", "real"), link("tool", "usr/bin/real"), file("tool", "new")},
			check: func(t *testing.T, tr *Tree) {
				if body(t, tr.Get("usr/bin/real")) != "real" || tr.Get("tool").Inode.Type() != newc.TypeReg {
					t.Fatal("the file must replace the link")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := usrMerged(t)
			var err error
			for i, e := range tc.entries {
				_, err = tr.Put(e)
				if err != nil && i != len(tc.entries)-1 {
					t.Fatalf("put %s: %v", e.Name, err)
				}
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, tr)
		})
	}
}

func TestHardLinksShareContent(t *testing.T) {
	tr := usrMerged(t)
	mustPut(t, tr, file("usr/bin/a", "one"))
	n, err := tr.Link(tr.Get("usr/bin/a"), "bin/b")
	if err != nil {
		t.Fatal(err)
	}
	if n.Path != "usr/bin/b" || n.Inode.Links() != 2 {
		t.Fatalf("link %+v", n)
	}
	mustPut(t, tr, file("usr/bin/b", "two"))
	if body(t, tr.Get("usr/bin/a")) != "two" {
		t.Fatal("a rewrite of one name must show through the other")
	}
	view, err := tr.View(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range view {
		if (fi.Path == "usr/bin/a" || fi.Path == "usr/bin/b") && fi.HardlinkOf != "usr/bin/a" {
			t.Fatalf("%s: hardlink_of %q", fi.Path, fi.HardlinkOf)
		}
	}
}

func TestMkdirAllKeepsUsrMergeLinks(t *testing.T) {
	tr := usrMerged(t)
	p, err := tr.MkdirAll("/lib/modules/6.1.0/kernel", 0o755, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p != "usr/lib/modules/6.1.0/kernel" {
		t.Fatalf("canonical %q", p)
	}
	if tr.Get("lib").Inode.Type() != newc.TypeSymlink {
		t.Fatal("lib must stay a link")
	}
	mustPut(t, tr, file("usr/x", "x"))
	if _, err := tr.MkdirAll("usr/x/y", 0o755, 0); !errors.Is(err, ErrNotDir) {
		t.Fatalf("err = %v, want ErrNotDir", err)
	}
}

func TestNodesListParentsFirst(t *testing.T) {
	tr := usrMerged(t)
	mustPut(t, tr, dir("etc"), file("etc/a", "a"), dir("etc/d"), file("etc/d/b", "b"))
	seen := map[string]bool{}
	for _, n := range tr.Nodes() {
		if n.Path != "." && !seen[parentOf(n.Path)] {
			t.Fatalf("%s listed before its parent", n.Path)
		}
		seen[n.Path] = true
	}
}

func paths(tr *Tree) []string {
	var out []string
	for _, n := range tr.Nodes() {
		out = append(out, n.Path)
	}
	return out
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{".": ".", "./": ".", "/": ".", "./usr/bin": "usr/bin", "/a//b/../c": "a/c", "../x": "x"} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}
