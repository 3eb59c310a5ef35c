package remix

import (
	"errors"
	"github.com/initrd-remix/initrd-remix/remix/newc"
	"testing"
)

func TestInstall(t *testing.T) {
	tests := []struct {
		name    string
		setup   []Entry
		install Entry
		opts    []InstallOption
		wantErr error
		check   func(t *testing.T, tr *Tree, n *Node)
	}{
		{
			name:    "usr-merge: lib/x lands in usr/lib",
			install: File("/lib/x", 0o644, BytesContent("x")),
			check: func(t *testing.T, tr *Tree, n *Node) {
				if n.Path != "usr/lib/x" || tr.Get("lib").IsSymlink() != true {
					t.Fatalf("installed at %s", n.Path)
				}
			},
		},
		{
			name:    "missing parents are made with the entry's mtime, through links",
			install: Entry{Name: "lib/a/b/x", Mode: newc.TypeReg | 0o644, Mtime: 77},
			check: func(t *testing.T, tr *Tree, n *Node) {
				for _, p := range []string{"usr/lib/a", "usr/lib/a/b"} {
					d := tr.Get(p)
					if d == nil || !d.IsDir() || d.Inode.Mtime != 77 || d.Perm() != 0o755 {
						t.Fatalf("%s: %+v", p, d)
					}
				}
				if n.Path != "usr/lib/a/b/x" {
					t.Fatalf("installed at %s", n.Path)
				}
			},
		},
		{
			name:    "ParentMtime sets the parents' mtime",
			install: Entry{Name: "etc/x", Mode: newc.TypeReg | 0o644, Mtime: 5},
			opts:    []InstallOption{ParentMtime(9)},
			check: func(t *testing.T, tr *Tree, n *Node) {
				if tr.Get("etc").Inode.Mtime != 9 || n.Inode.Mtime != 5 {
					t.Fatalf("etc mtime %d, x mtime %d", tr.Get("etc").Inode.Mtime, n.Inode.Mtime)
				}
			},
		},
		{
			name:    "a directory is never replaced",
			setup:   []Entry{dir("usr/lib/d")},
			install: File("lib/d", 0o644, nil),
			wantErr: ErrIsDir,
		},
		{
			name:    "nor the root",
			install: Dir("/", 0o700),
			wantErr: ErrIsDir,
		},
		{
			name:    "a symlink at the name is replaced, not written through",
			setup:   []Entry{file("usr/lib/target", "old"), link("usr/lib/l", "target")},
			install: File("lib/l", 0o644, BytesContent("new")),
			check: func(t *testing.T, tr *Tree, n *Node) {
				if n.Path != "usr/lib/l" || !n.IsRegular() || body(t, tr.Get("usr/lib/target")) != "old" {
					t.Fatalf("l %s regular %v, target %q", n.Path, n.IsRegular(), body(t, tr.Get("usr/lib/target")))
				}
			},
		},
		{
			name:    "hard-linked siblings keep their content",
			setup:   []Entry{file("usr/bin/busybox", "bb")},
			install: File("bin/sh", 0o755, BytesContent("dash")),
			check: func(t *testing.T, tr *Tree, n *Node) {
				if body(t, tr.Get("usr/bin/busybox")) != "bb" || body(t, n) != "dash" || n.Inode.Links() != 1 {
					t.Fatalf("busybox %q, sh %q", body(t, tr.Get("usr/bin/busybox")), body(t, n))
				}
			},
		},
		{
			name:    "a file in the way of a parent",
			setup:   []Entry{file("etc", "x")},
			install: File("etc/x", 0o644, nil),
			wantErr: ErrNotDir,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := usrMerged(t)
			mustPut(t, tr, tc.setup...)
			if tc.name == "hard-linked siblings keep their content" {
				if _, err := tr.Link(tr.Get("usr/bin/busybox"), "usr/bin/sh"); err != nil {
					t.Fatal(err)
				}
			}
			n, err := tr.Install(tc.install, tc.opts...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, tr, n)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	tr := usrMerged(t)
	mustPut(t, tr, file("usr/lib/x", "x"))
	for _, tc := range []struct {
		name, want string
		exists     bool
		err        error
	}{
		{"/lib/x", "usr/lib/x", true, nil},
		{"lib/new/y", "usr/lib/new/y", false, nil},
		{"/", ".", true, nil},
		{"bin", "bin", true, nil}, // the last component is not followed
		{"lib/x/y", "", false, ErrNotDir},
	} {
		p, n, err := tr.Place(tc.name, 3)
		if p != tc.want || (n != nil) != tc.exists || !errors.Is(err, tc.err) {
			t.Errorf("Place(%s) = %s, %v, %v; want %s, exists %v, %v", tc.name, p, n, err, tc.want, tc.exists, tc.err)
		}
	}
	if d := tr.Get("usr/lib/new"); d == nil || !d.IsDir() || d.Inode.Mtime != 3 {
		t.Errorf("parent made by Place: %+v", d)
	}
}
