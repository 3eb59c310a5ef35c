package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/overlay/ldso/elftest"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

func TestTreeFindings(t *testing.T) {
	link := remix.Symlink
	tr := treetest.Of(t,
		remix.Dir("etc", 0o755),
		remix.File("etc/hostname", 0o644, remix.BytesContent("x\n")),
		link("etc/ok", "hostname"),
		link("etc/gone", "../nothere"),
		link("etc/mask", "/dev/null"),
		link("etc/mtab", "../proc/self/mounts"),
		link("etc/a", "b"),
		link("etc/b", "a"),
		remix.File("run.sh", 0o755, remix.BytesContent("#!/bin/sh\n")),
		remix.File("notes.sh", 0o644, remix.BytesContent("#!/bin/sh\n")), // not executable: not checked
	)
	fs, err := Tree(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		"error: dangling: /etc/a: symlink loop: -> b",
		"error: dangling: /etc/b: symlink loop: -> a",
		"warning: dangling: /etc/gone: -> ../nothere: nothing there in the image",
		"error: libraries: /run.sh: /bin/sh not found in the image: interpreter: resolve /bin/sh: /bin: no such file or directory",
		"warning: strip: /usr/lib/initrd-remix/rescue-image: not an initrd-remix rescue image (no marker): storage and switch_root assertions not checked",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !Failed(fs) || Failed(fs[2:3]) {
		t.Error("Failed does not follow severities")
	}
	// --allow-missing makes the missing interpreter a warning, and only
	// that: the symlink loops stay errors.
	allowed := AllowMissing(fs)
	for i, f := range allowed {
		want := fs[i].Severity
		if fs[i].Check == CheckLibraries {
			want = Warning
		}
		if f.Severity != want || f.Message != fs[i].Message {
			t.Errorf("AllowMissing: %s from %s", f, fs[i])
		}
	}
	if fs[3].Severity != Error {
		t.Error("AllowMissing changed its argument")
	}
}

// TestSymbolVersions builds trees by hand, as a wrong build would leave
// them, and checks that verify finds what ld.so would refuse: a program
// needing a version the libc it gets does not define, in both directions
// (a new /init on an old libc, an old libc's missing version needed by a
// library), while a weak need and an unversioned library pass.
func TestSymbolVersions(t *testing.T) {
	eb := elftest.New(t)
	dir := t.TempDir()
	build := func(name string, versions, unversioned []string) string {
		p := filepath.Join(dir, name, "libc.so.6")
		eb.Lib(p, "libc.so.6", versions, unversioned, nil, nil)
		return p
	}
	old := build("old", []string{"GLIBC_2.2.5", "GLIBC_2.30"}, nil)
	newer := build("new", []string{"GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.38"}, nil)
	plain := build("plain", nil, []string{elftest.Func("GLIBC_2.38")})
	ldso := filepath.Join(dir, "ld.so")
	eb.Lib(ldso, "ld-linux-x86-64.so.2", nil, []string{"ldso"}, nil, nil)
	initProg := filepath.Join(dir, "init")
	eb.Prog(initProg, []string{elftest.Func("GLIBC_2.38")}, []string{newer})
	weakProg := filepath.Join(dir, "weak")
	eb.Prog(weakProg, []string{elftest.Func("GLIBC_2.38")}, []string{newer})
	elftest.MarkWeak(t, weakProg, "GLIBC_2.38")
	libfoo := filepath.Join(dir, "libfoo.so.1")
	eb.Lib(libfoo, "libfoo.so.1", nil, []string{"foo"}, []string{elftest.Func("GLIBC_2.38")}, []string{newer})
	fooProg := filepath.Join(dir, "foo")
	eb.Prog(fooProg, []string{"foo"}, []string{libfoo})

	tree := func(libc string) *remix.Tree {
		return elfTree(t, ldso, map[string]string{
			"lib/x86_64-linux-gnu/libc.so.6":   libc,
			"lib/x86_64-linux-gnu/libfoo.so.1": libfoo,
			"init":                             initProg,
			"weak":                             weakProg,
			"foo":                              fooProg,
		})
	}
	for _, c := range []struct {
		name string
		libc string
		want []string
	}{
		{"old libc", old, []string{
			"error: versions: /init: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /init)",
			"error: versions: /lib/x86_64-linux-gnu/libfoo.so.1: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /lib/x86_64-linux-gnu/libfoo.so.1)",
			"warning: versions: /lib/x86_64-linux-gnu/libfoo.so.1: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /lib/x86_64-linux-gnu/libfoo.so.1)",
		}},
		{"new libc", newer, nil},
		{"unversioned libc", plain, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs, err := Tree(context.Background(), tree(c.libc))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				if f.Check == CheckVersions {
					got = append(got, f.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			// A version ld.so refuses is not a missing library:
			// --allow-missing leaves it an error.
			if Failed(fs) != Failed(AllowMissing(fs)) {
				t.Error("AllowMissing demoted a missing symbol version")
			}
		})
	}
}

// TestDlopenOnlyMissingIsWarning: a library only a .note.dlopen reaches
// lacks a dependency (liblz4 without libxxhash in Debian 13's dracut
// images). The program still starts; only that dlopen() fails: a warning,
// not an error that would refuse the image.
func TestDlopenOnlyMissingIsWarning(t *testing.T) {
	eb := elftest.New(t)
	dir := t.TempDir()
	ldso := filepath.Join(dir, "ld.so")
	eb.Lib(ldso, "ld-linux-x86-64.so.2", nil, []string{"ldso"}, nil, nil)
	xxhash := filepath.Join(dir, "libxxhash.so.0")
	eb.Lib(xxhash, "libxxhash.so.0", nil, []string{"fx"}, nil, nil)
	lz4 := filepath.Join(dir, "liblz4.so.1")
	eb.Lib(lz4, "liblz4.so.1", nil, []string{"flz4"}, []string{"fx"}, []string{xxhash})
	json := `[{"feature":"lz4","priority":"recommended","soname":["liblz4.so.1"]}]`
	prog := filepath.Join(dir, "journal")
	eb.CC(prog, fmt.Sprintf(`
__attribute__((used, section(".note.dlopen"), aligned(4)))
static const struct { unsigned int namesz, descsz, type; char name[4]; char desc[%d]; } note = {
	4, %d, 0x407c0c0a, "FDO", "%s"
};
void _start(void) { for (;;) ; }
`, (len(json)+4)&^3, len(json)+1, strings.ReplaceAll(json, `"`, `\"`)), "-pie")
	tr := elfTree(t, ldso, map[string]string{"lib/x86_64-linux-gnu/liblz4.so.1": lz4, "journal": prog})
	fs, err := Tree(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	var lz4Findings int
	for _, f := range fs {
		if f.Severity == Error {
			t.Errorf("an error for what only a dlopen() misses: %s", f)
		}
		if f.Check == CheckLibraries && f.Path == "lib/x86_64-linux-gnu/liblz4.so.1" {
			lz4Findings++
		}
	}
	if lz4Findings == 0 {
		t.Errorf("no warning about liblz4's missing libxxhash: %v", fs)
	}
}

// elfTree is an image of files built on the host: the loader ldso at its
// x86-64 place (and its /lib64 link), and each file of files (image path
// -> host path), executable.
func elfTree(t *testing.T, ldso string, files map[string]string) *remix.Tree {
	t.Helper()
	entries := []remix.Entry{
		remix.Dir("lib64", 0o755),
		remix.Dir("lib", 0o755),
		remix.Dir("lib/x86_64-linux-gnu", 0o755),
		remix.Symlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
	}
	files["lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"] = ldso
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, remix.File(name, 0o755, remix.BytesContent(b)))
	}
	return treetest.Of(t, entries...)
}

// Links into what the boot mounts are not dangling, however they get there.
func TestRuntimeLinks(t *testing.T) {
	for _, tc := range []struct {
		target, at string
		want       bool
	}{
		{"/proc/self/mounts", "etc/mtab", true},
		{"../run/lock", "var/lock", true},
		{"../../../../run", "var/a/b", true}, // ".." stops at the root
		{"run", "x", true},
		{"./dev/null", "x", true},
		{"/devices", "x", false},
		{"../etc/x", "var/lock", false},
		{"/", "x", false},
	} {
		if got := runtime(tc.target, tc.at); got != tc.want {
			t.Errorf("runtime(%q at %s) = %v, want %v", tc.target, tc.at, got, tc.want)
		}
	}
}
