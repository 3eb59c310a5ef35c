package treefs

import (
	"errors"
	"io/fs"
	"sort"
	"testing"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

func tree(t *testing.T) *remix.Tree {
	t.Helper()
	return treetest.Of(t,
		remix.Dir("usr", 0o755),
		remix.Dir("usr/bin", 0o755),
		remix.Symlink("bin", "usr/bin"),
		remix.File("usr/bin/tool", 0o4755, remix.BytesContent("#!/bin/sh\necho hi\n")),
		remix.File("usr/bin/run", 0o755, remix.BytesContent("#!/usr/bin/tool\n")),
		remix.Dir("dev", 0o755),
		remix.CharDev("dev/console", 0o600, 5, 1),
	)
}

func TestFS(t *testing.T) {
	f := New(tree(t))
	for _, c := range []struct {
		name string
		mode fs.FileMode
		err  bool
	}{
		{"/", fs.ModeDir | 0o755, false},
		{"/bin", fs.ModeSymlink | 0o777, false},
		{"/usr/bin/tool", fs.ModeSetuid | 0o755, false},
		{"/dev/console", fs.ModeDevice | fs.ModeCharDevice | 0o600, false},
		{"/nothere", 0, true},
		{"/bin/tool", 0, true}, // names are physical: the FS never follows links
	} {
		m, err := f.Lstat(c.name)
		if (err != nil) != c.err || m != c.mode {
			t.Errorf("Lstat(%s) = %v, %v; want %v (error %v)", c.name, m, err, c.mode, c.err)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%s): %v is not ErrNotExist", c.name, err)
		}
	}
	if tg, err := f.Readlink("/bin"); err != nil || tg != "usr/bin" {
		t.Errorf("Readlink = %q, %v", tg, err)
	}
	if _, err := f.Readlink("/usr"); err == nil {
		t.Error("Readlink of a directory succeeded")
	}
	names, err := f.ReadDir("/usr/bin")
	sort.Strings(names)
	if err != nil || len(names) != 2 || names[0] != "run" || names[1] != "tool" {
		t.Errorf("ReadDir = %q, %v", names, err)
	}
	r, err := f.Open("/usr/bin/tool")
	if err != nil || r.Size() != 18 {
		t.Fatalf("Open: %v", err)
	}
	b := make([]byte, 2)
	if _, err := r.ReadAt(b, 0); err != nil || string(b) != "#!" {
		t.Errorf("ReadAt = %q, %v", b, err)
	}
	if _, err := f.Open("/usr/bin"); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// The resolver runs on a tree as on a directory: the script's interpreter
// chain is followed through the image's bin -> usr/bin link, and the
// missing /bin/sh is reported.
func TestResolverOnTree(t *testing.T) {
	r, err := ldso.NewResolverFS(New(tree(t)), "test image", ldso.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Closure("/bin/run")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Needs["/usr/bin/run"]) != 1 || res.Needs["/usr/bin/run"][0] != "/usr/bin/tool" {
		t.Errorf("needs of run: %v", res.Needs)
	}
	if len(res.Missing) != 1 || res.Missing[0].Soname != "/bin/sh" {
		t.Errorf("missing: %+v", res.Missing)
	}
}
