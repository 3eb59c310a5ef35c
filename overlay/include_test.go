package overlay

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/remix"
)

// TestIncludeTruthful copies a tree with modes, owners, mtimes, a relative
// link, a chain of links leaving the tree, and a link whose relative
// target only works in the root's layout; and one file to another place.
func TestIncludeTruthful(t *testing.T) {
	root := t.TempDir()
	mk := func(p string, mode os.FileMode, body string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc/rear/local.conf", 0o600, "OUTPUT=ISO\n")
	mk("etc/rear/bin/tool", 0o755|os.ModeSetuid, "data\n")
	mk("usr/share/rear/real.conf", 0o644, "x\n")
	mk("usr/lib/helper", 0o644, "h\n")
	os.MkdirAll(filepath.Join(root, "etc/alternatives"), 0o755)
	ln("local.conf", "etc/rear/site.conf")                     // relative, inside the tree
	ln("/etc/alternatives/rear-real", "etc/rear/default.conf") // a chain leaving the tree
	ln("/usr/share/rear/real.conf", "etc/alternatives/rear-real")
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	ln("../usr/lib/helper", "sbin/helper") // valid only where sbin is a directory of /
	if err := os.Chown(filepath.Join(root, "etc/rear/local.conf"), 123, 456); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	mtime := time.Unix(1700000000, 0)
	if err := os.Chtimes(filepath.Join(root, "etc/rear/local.conf"), mtime, mtime); err != nil {
		t.Fatal(err)
	}

	tr := synthImage(t, true) // merged: sbin -> usr/sbin is not there, bin and lib are
	if _, err := tr.Put(remix.Dir("usr/sbin", 0o755)); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Put(remix.Symlink("sbin", "usr/sbin")); err != nil {
		t.Fatal(err)
	}
	rep, err := Apply(context.Background(), tr, Options{Root: root, Preset: "none", Drivers: []string{},
		Include: []string{"/etc/rear", "/sbin/helper", "/etc/rear/local.conf:/root/recover.conf"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(p, typ string, mode, uid, gid uint32, target string) {
		t.Helper()
		n := tr.Lookup(p)
		if n == nil {
			t.Errorf("%s not in the image", p)
			return
		}
		if remix.TypeName(n.Inode.Mode) != typ || n.Perm() != mode || n.Inode.UID != uid || n.Inode.GID != gid || n.Inode.Target != target {
			t.Errorf("%s: %s %o %d:%d -> %q", p, remix.TypeName(n.Inode.Mode), n.Inode.Mode&0o7777, n.Inode.UID, n.Inode.GID, n.Inode.Target)
		}
	}
	check("etc/rear/local.conf", "file", 0o600, 123, 456, "")
	check("root/recover.conf", "file", 0o600, 123, 456, "")
	check("etc/rear/bin/tool", "file", 0o4755, 0, 0, "")
	check("etc/rear/site.conf", "symlink", 0o777, 0, 0, "local.conf")
	check("etc/rear/default.conf", "symlink", 0o777, 0, 0, "/etc/alternatives/rear-real")
	check("etc/alternatives/rear-real", "symlink", 0o777, 0, 0, "/usr/share/rear/real.conf")
	check("usr/share/rear/real.conf", "file", 0o644, 0, 0, "")
	// sbin/helper landed in usr/sbin, where ../usr/lib/helper would be
	// usr/usr/lib/helper: rewritten to reach usr/lib/helper.
	check("usr/sbin/helper", "symlink", 0o777, 0, 0, "../lib/helper")
	if _, n, err := tr.Resolve("/sbin/helper", true); err != nil || n == nil || !n.IsRegular() {
		t.Errorf("/sbin/helper does not reach the helper (%v)", err)
	}
	if n := tr.Lookup("etc/rear/local.conf"); n != nil && n.Inode.Mtime != uint32(mtime.Unix()) {
		t.Errorf("mtime %d, want %d", n.Inode.Mtime, mtime.Unix())
	}
	if len(rep.Warnings) != 1 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	mustVerify(t, tr)
}

// TestHardlinkedImageFile: a regular file written over one name of a hard
// link group (busybox's applets) must not rewrite the other names: the name
// gets an inode of its own (remix.Tree.Replace).
func TestHardlinkedImageFile(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/cat"), []byte("not busybox\n"), 0o755)
	tr := synthImage(t, true)
	bb, err := tr.Put(remix.File("usr/bin/busybox", 0o755, remix.BytesContent("busybox")))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"usr/bin/sh", "usr/bin/cat"} {
		if _, err := tr.Link(bb, n); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Apply(context.Background(), tr, Options{Root: root, Preset: "none", Include: []string{"/usr/bin/cat"}})
	if err != nil {
		t.Fatal(err)
	}
	// The root's cat gets an inode of its own; busybox's other names keep
	// busybox (the kernel would write cat through every hard link).
	n := tr.Lookup("usr/bin/sh")
	if n == nil || n.Inode.Size() != int64(len("busybox")) || n.Inode.Links() != 2 {
		t.Errorf("usr/bin/sh changed: %+v", n)
	}
	if c := tr.Lookup("usr/bin/cat"); c == nil || c.Inode.Size() != int64(len("not busybox\n")) || c.Inode.Links() != 1 {
		t.Errorf("usr/bin/cat is not the root's: %+v", c)
	}
	if len(rep.Skipped) != 0 {
		t.Errorf("skipped: %q", rep.Skipped)
	}
}
