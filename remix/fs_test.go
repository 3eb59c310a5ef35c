package remix

import (
	"errors"
	"github.com/initrd-remix/initrd-remix/remix/newc"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// scanDir is the full scan ReadDir replaces: every node whose parent is p.
// The directory index stays what a full scan finds through every kind of
// mutation, applied at random: puts of every type (type changes remove),
// replaces, hard links, MkdirAll and Install.
// crafted holds every type, links relative and absolute, through the root
// and out of it (clamped), chains, and hard links.
func crafted(t *testing.T) *Tree {
	tr := usrMerged(t)
	mustPut(t, tr,
		File("usr/bin/sh", 0o755, BytesContent("#!/bin/busybox\n")),
		File("usr/lib/libc.so.6", 0o755, BytesContent("\x7fELF....")),
		Symlink("usr/lib/libc.so", "libc.so.6"),
		Symlink("usr/lib/up", "../../../../usr/bin/sh"),
		Symlink("usr/lib/chain", "/lib/libc.so"),
		Symlink("usr/lib/tobin", "/bin"),
		Dir("dev", 0o755), CharDev("dev/console", 0o600, 5, 1), BlockDev("dev/sda", 0o660, 8, 0),
		Entry{Name: "dev/fifo", Mode: newc.TypeFIFO | 0o644},
		Dir("etc", 0o755), File("etc/empty", 0o644, nil), File("etc/fstab", 0o644, BytesContent("# none\n")),
	)
	if _, err := tr.Link(tr.Get("usr/bin/sh"), "usr/bin/ash"); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestFSPassesFSTest(t *testing.T) {
	if err := fstest.TestFS(crafted(t).FS(), "usr/bin/sh", "usr/lib/libc.so.6", "dev/console", "etc/empty", "usr/lib/chain"); err != nil {
		t.Fatal(err)
	}
}

func TestFSFollowsLinksAsTheKernel(t *testing.T) {
	f := crafted(t).FS()
	for _, tc := range []struct {
		name, body string
		err        error
	}{
		{"lib/libc.so", "\x7fELF....", nil},
		{"usr/lib/chain", "\x7fELF....", nil},
		{"usr/lib/up", "#!/bin/busybox\n", nil}, // ".." clamped at the image's root
		{"usr/lib/tobin/ash", "#!/bin/busybox\n", nil},
		{"bin/nothere", "", fs.ErrNotExist},
		{"etc/fstab/x", "", syscallENOTDIR},
		{"/etc/fstab", "", fs.ErrInvalid},
		{"dev/console", "", nil},
	} {
		b, err := fs.ReadFile(f, tc.name)
		if !errors.Is(err, tc.err) || string(b) != tc.body {
			t.Errorf("ReadFile(%s) = %q, %v; want %q, %v", tc.name, b, err, tc.body, tc.err)
		}
	}
	if tg, err := f.ReadLink("lib/libc.so"); err != nil || tg != "libc.so.6" {
		t.Errorf("ReadLink = %q, %v", tg, err)
	}
	if fi, err := f.Lstat("lib"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(lib) = %v, %v", fi, err)
	}
	if fi, err := f.Stat("lib"); err != nil || !fi.IsDir() || fi.Name() != "lib" {
		t.Errorf("Stat(lib) = %v, %v", fi, err)
	}
	ents, err := f.ReadDir("bin")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != "ash sh" {
		t.Errorf("ReadDir(bin) = %v, %v", names, err)
	}
	mustPut(t, f.t, Symlink("loop", "loop"))
	if _, err := f.Stat("loop"); !errors.Is(err, syscallELOOP) {
		t.Errorf("Stat(loop): %v", err)
	}
}

var (
	syscallENOTDIR = syscall.ENOTDIR
	syscallELOOP   = syscall.ELOOP
)
