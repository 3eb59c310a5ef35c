package overlay

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay/ldso/elftest"
	"github.com/initrd-remix/initrd-remix/remix"
)

const libcPath = "/usr/lib/x86_64-linux-gnu/libc.so.6"

// versionRoot builds a usr-merged Debian-like root: a loader, a libc
// defining versions, and programs at paths inside it, each linked against
// a libc defining what it calls (built aside, as a program of another
// release would have been).
type versionRoot struct {
	t   *testing.T
	eb  *elftest.Builder
	dir string
}

func newVersionRoot(t *testing.T, eb *elftest.Builder, libcVersions []string) *versionRoot {
	t.Helper()
	r := &versionRoot{t: t, eb: eb, dir: t.TempDir()}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.MkdirAll(filepath.Join(r.dir, "usr", d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("usr/"+d, filepath.Join(r.dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(r.dir, "usr/lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	eb.Lib(r.host("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "ld-linux-x86-64.so.2", nil, []string{"ldso"}, nil, nil)
	if libcVersions != nil {
		eb.Lib(r.host(libcPath), "libc.so.6", libcVersions, nil, nil, nil)
	}
	return r
}

func (r *versionRoot) host(p string) string { return filepath.Join(r.dir, p) }

// prog builds a program at p needing the given versions of libc.so.6,
// the weak ones marked VER_FLG_WEAK.
func (r *versionRoot) prog(p string, needs, weak []string) {
	r.t.Helper()
	aside := filepath.Join(r.t.TempDir(), "libc.so.6")
	r.eb.Lib(aside, "libc.so.6", append(append([]string(nil), needs...), weak...), nil, nil, nil)
	var calls []string
	for _, v := range append(append([]string(nil), needs...), weak...) {
		calls = append(calls, elftest.Func(v))
	}
	r.eb.Prog(r.host(p), calls, []string{aside})
	for _, w := range weak {
		elftest.MarkWeak(r.t, r.host(p), w)
	}
}

// image returns a tree holding what Apply adds of paths from this root:
// the stand-in for a distribution's initrd built from it.
func (r *versionRoot) image(paths ...string) *remix.Tree {
	r.t.Helper()
	tr := synthImage(r.t, true)
	if _, err := Apply(context.Background(), tr, Options{Root: r.dir, Preset: "none", Add: paths}); err != nil {
		r.t.Fatal(err)
	}
	return tr
}

func treeFile(t *testing.T, tr *remix.Tree, p string) []byte {
	t.Helper()
	_, n, err := tr.Resolve(p, true)
	if err != nil || n == nil || n.Inode.Content == nil {
		t.Fatalf("%s not in the image (%v)", p, err)
	}
	rc, err := n.Inode.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hostFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMismatchedRoots adds programs of a root of another release than the
// image, in both directions, and checks what the overlay decides for the
// image's libc: it never gives the image's own /init an older libc, it
// takes the root's newer one only when that is compatible, and it refuses
// (or, for a preset program, leaves out) a program the result cannot run.
func TestMismatchedRoots(t *testing.T) {
	eb := elftest.New(t)
	v225, v230, v234, v236, v238 := "GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.34", "GLIBC_2.36", "GLIBC_2.38"
	for _, c := range []struct {
		name       string
		imageLibc  []string // nil: a libc without version definitions
		initNeeds  []string
		rootLibc   []string
		progNeeds  []string
		progWeak   []string
		preset     bool   // the program is a preset one (/usr/bin/ls), not --add
		wantErr    string // Apply refuses with this
		wantLibc   string // "image" or "root": whose libc the result holds
		wantSkip   string // a Skipped note containing this
		wantNoProg bool   // the program is left out
	}{
		{name: "image newer than root: the image's libc stays",
			imageLibc: []string{v225, v230, v234, v236, v238}, initNeeds: []string{v238},
			rootLibc: []string{v225, v230, v234, v236}, progNeeds: []string{v236},
			wantLibc: "image", wantSkip: "the image's own copy kept"},
		{name: "root newer, compatible: the root's libc replaces",
			imageLibc: []string{v225, v230}, initNeeds: []string{v230},
			rootLibc: []string{v225, v230, v238}, progNeeds: []string{v238},
			wantLibc: "root"},
		{name: "root newer with GLIBC_PRIVATE: refused",
			imageLibc: []string{v225, v230, "GLIBC_PRIVATE"}, initNeeds: []string{v230},
			rootLibc: []string{v225, v230, v238, "GLIBC_PRIVATE"}, progNeeds: []string{v238},
			wantErr: "needs version GLIBC_2.38 of libc.so.6, which " + libcPath + " (the image's) does not define; the root's " + libcPath + " cannot replace it: it shares GLIBC_PRIVATE"},
		{name: "root newer, lacking what the image's defines: refused",
			imageLibc: []string{v225, v230, v234}, initNeeds: []string{v234},
			rootLibc: []string{v225, v230, v238}, progNeeds: []string{v238},
			wantErr: "cannot replace it: it lacks GLIBC_2.34, which the image's copy defines"},
		{name: "preset program the image cannot run: left out",
			imageLibc: []string{v225, v230, "GLIBC_PRIVATE"}, initNeeds: []string{v230},
			rootLibc: []string{v225, v230, v238, "GLIBC_PRIVATE"}, progNeeds: []string{v238}, preset: true,
			wantLibc: "image", wantSkip: "cannot run on the image's libraries", wantNoProg: true},
		{name: "weak need of a version the image lacks",
			imageLibc: []string{v225, v230}, initNeeds: []string{v230},
			rootLibc: []string{v225, v230, v238, "GLIBC_PRIVATE"}, progNeeds: []string{v225}, progWeak: []string{v238},
			wantLibc: "image"},
		{name: "image libc without versioning",
			imageLibc: nil, initNeeds: []string{v230},
			rootLibc: []string{v225, v230, v238}, progNeeds: []string{v238},
			wantLibc: "image"},
	} {
		t.Run(c.name, func(t *testing.T) {
			imgRoot := newVersionRoot(t, eb, c.imageLibc)
			if c.imageLibc == nil {
				var fns []string
				for _, v := range append(c.initNeeds, c.progNeeds...) {
					fns = append(fns, elftest.Func(v))
				}
				eb.Lib(imgRoot.host(libcPath), "libc.so.6", nil, fns, nil, nil)
			}
			imgRoot.prog("/init", c.initNeeds, nil)
			tr := imgRoot.image("/init")

			root := newVersionRoot(t, eb, c.rootLibc)
			prog, opts := "/usr/bin/tool", Options{Root: root.dir, Preset: "none", Add: []string{"tool"}}
			if c.preset {
				prog, opts = "/usr/bin/ls", Options{Root: root.dir}
			}
			root.prog(prog, c.progNeeds, c.progWeak)

			rep, err := Apply(context.Background(), tr, opts)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "use a --root of the image's release") {
					t.Fatalf("got %v, want an error containing %q", err, c.wantErr)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := hostFile(t, imgRoot.host(libcPath))
			if c.wantLibc == "root" {
				want = hostFile(t, root.host(libcPath))
			}
			if !bytes.Equal(treeFile(t, tr, libcPath), want) {
				t.Errorf("the image's libc is not the %s's", c.wantLibc)
			}
			notes := strings.Join(append(rep.Skipped, rep.Warnings...), "\n")
			if c.wantSkip != "" && !strings.Contains(notes, c.wantSkip) {
				t.Errorf("notes %q lack %q", notes, c.wantSkip)
			}
			_, n, _ := tr.Resolve(prog, true)
			if (n == nil) != c.wantNoProg {
				t.Errorf("%s in the image: %v, want %v", prog, n != nil, !c.wantNoProg)
			}
			// verify, on its own, finds /init and the program runnable.
			mustVerify(t, tr)
			t.Log(notes)
		})
	}
}

// TestImageLinkToNewerLibrary: the image reaches libfoo.so.1 through a
// link to a newer file than the root's link does. The root's link must not
// replace the image's (its /init needs FOO_2, which only the image's file
// defines); the added program runs on the image's file.
func TestImageLinkToNewerLibrary(t *testing.T) {
	eb := elftest.New(t)
	v := []string{"GLIBC_2.2.5"}
	libdir := "/usr/lib/x86_64-linux-gnu/"
	imgRoot := newVersionRoot(t, eb, v)
	eb.Lib(imgRoot.host(libdir+"libfoo.so.1.2"), "libfoo.so.1", []string{"FOO_1", "FOO_2"}, nil, nil, nil)
	if err := os.Symlink("libfoo.so.1.2", imgRoot.host(libdir+"libfoo.so.1")); err != nil {
		t.Fatal(err)
	}
	eb.Prog(imgRoot.host("/init"), []string{elftest.Func("FOO_2"), elftest.Func(v[0])}, []string{imgRoot.host(libdir + "libfoo.so.1.2"), imgRoot.host(libcPath)})
	tr := imgRoot.image("/init")

	root := newVersionRoot(t, eb, v)
	eb.Lib(root.host(libdir+"libfoo.so.1.1"), "libfoo.so.1", []string{"FOO_1"}, nil, nil, nil)
	if err := os.Symlink("libfoo.so.1.1", root.host(libdir+"libfoo.so.1")); err != nil {
		t.Fatal(err)
	}
	eb.Prog(root.host("/usr/bin/tool"), []string{elftest.Func("FOO_1"), elftest.Func(v[0])}, []string{root.host(libdir + "libfoo.so.1.1"), root.host(libcPath)})
	rep, err := Apply(context.Background(), tr, Options{Root: root.dir, Preset: "none", Add: []string{"tool"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.Lookup(libdir + "libfoo.so.1"); n == nil || n.Inode.Target != "libfoo.so.1.2" {
		t.Errorf("the image's link libfoo.so.1 was replaced: %+v", n)
	}
	if !strings.Contains(strings.Join(rep.Skipped, "\n"), libdir+"libfoo.so.1.2: the image's own copy kept") {
		t.Errorf("no note on the kept library: %q", rep.Skipped)
	}
	mustVerify(t, tr)
}

// copyHost copies the file a host path leads to into dir at dest.
func copyHost(t *testing.T, dir, p, dest string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		testtool.Missing(t, "host without %s: %v", p, err)
	}
	copyFile(t, real, filepath.Join(dir, dest))
}

// hostGlibc puts the host's libc, loader and dash into a versionRoot.
func hostGlibc(t *testing.T, r *versionRoot) {
	t.Helper()
	copyHost(t, r.dir, "/lib/x86_64-linux-gnu/libc.so.6", libcPath)
	copyHost(t, r.dir, "/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	copyHost(t, r.dir, "/usr/bin/dash", "/usr/bin/dash")
}

// TestMismatchedRootsHost uses the host's real glibc (Debian 12: GLIBC_2.2.5
// up to GLIBC_2.36 and GLIBC_PRIVATE) on one side and a libc-like library
// defining only up to GLIBC_2.30 on the other.
func TestMismatchedRootsHost(t *testing.T) {
	eb := elftest.New(t)
	old := []string{"GLIBC_2.2.5", "GLIBC_2.30"}

	t.Run("root of the host, image older: refused", func(t *testing.T) {
		img := newVersionRoot(t, eb, old)
		img.prog("/init", old, nil)
		tr := img.image("/init")
		root := newVersionRoot(t, eb, nil)
		hostGlibc(t, root)
		before := treeFile(t, tr, libcPath)
		_, err := Apply(context.Background(), tr, Options{Root: root.dir, Preset: "none", Add: []string{"dash"}})
		if err == nil || !strings.Contains(err.Error(), "/usr/bin/dash needs versions ") || !strings.Contains(err.Error(), "GLIBC_2.34") || !strings.Contains(err.Error(), "GLIBC_PRIVATE") {
			t.Fatalf("got %v, want a refusal naming dash, libc.so.6 and GLIBC_2.34", err)
		}
		t.Log(err)
		if !bytes.Equal(before, treeFile(t, tr, libcPath)) {
			t.Error("the image's libc changed")
		}
	})
	t.Run("image of the host, root older: the image's libc stays", func(t *testing.T) {
		img := newVersionRoot(t, eb, nil)
		hostGlibc(t, img)
		tr := img.image("/usr/bin/dash")
		root := newVersionRoot(t, eb, old)
		root.prog("/usr/bin/tool", old, nil)
		rep, err := Apply(context.Background(), tr, Options{Root: root.dir, Preset: "none", Add: []string{"tool"}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(treeFile(t, tr, libcPath), hostFile(t, img.host(libcPath))) {
			t.Error("the image's libc was replaced by the root's older one")
		}
		t.Log(strings.Join(rep.Skipped, "\n"))
		mustVerify(t, tr)
	})
}

// TestMismatchedRootsLab adds programs of crafted roots of another glibc
// release to the lab's real images (Debian 12, glibc 2.36): from an older
// root, the image's libc and loader stay and everything verifies; from a
// newer one, a program needing GLIBC_2.38 is refused by name and left out
// of the preset, and the image's libc is never touched.
func TestMismatchedRootsLab(t *testing.T) {
	eb := elftest.New(t)
	older := newVersionRoot(t, eb, []string{"GLIBC_2.2.5", "GLIBC_2.30"})
	older.prog("/usr/bin/tool", []string{"GLIBC_2.30"}, nil)
	newer := newVersionRoot(t, eb, []string{"GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.36", "GLIBC_2.38", "GLIBC_PRIVATE"})
	newer.prog("/usr/bin/tool", []string{"GLIBC_2.38"}, nil)
	newer.prog("/usr/bin/ls", []string{"GLIBC_2.38"}, nil)
	for _, name := range []string{"itools-zstd", "dracut-sd-zstd", "dracut-nosd-gzip"} {
		t.Run(name, func(t *testing.T) {
			img := openLabImage(t, name)
			libc := treeFile(t, img.Tree, libcPath)
			loader := treeFile(t, img.Tree, "/lib64/ld-linux-x86-64.so.2")

			_, err := Apply(context.Background(), img.Tree, Options{Root: newer.dir, Preset: "none", Add: []string{"tool"}})
			if err == nil || !strings.Contains(err.Error(), "/usr/bin/tool needs version GLIBC_2.38 of libc.so.6") {
				t.Fatalf("newer root, --add: got %v, want a refusal", err)
			}
			img = openLabImage(t, name)
			rep, err := Apply(context.Background(), img.Tree, Options{Root: newer.dir})
			if err != nil {
				t.Fatalf("newer root, preset: %v", err)
			}
			if n := img.Tree.Lookup("/usr/bin/ls"); n != nil && n.IsRegular() && bytes.Equal(treeFile(t, img.Tree, "/usr/bin/ls"), hostFile(t, newer.host("/usr/bin/ls"))) {
				t.Error("the preset's ls that cannot run was added")
			}
			if !strings.Contains(strings.Join(rep.Warnings, "\n"), "/usr/bin/ls (preset rescue: ls) left out") {
				t.Errorf("no warning on the preset program left out: %q", rep.Warnings)
			}

			img = openLabImage(t, name)
			if _, err := Apply(context.Background(), img.Tree, Options{Root: older.dir, Preset: "none", Add: []string{"tool"}}); err != nil {
				t.Fatalf("older root: %v", err)
			}
			if !bytes.Equal(treeFile(t, img.Tree, libcPath), libc) || !bytes.Equal(treeFile(t, img.Tree, "/lib64/ld-linux-x86-64.so.2"), loader) {
				t.Error("the image's glibc changed")
			}
			mustVerify(t, img.Tree)
		})
	}
}

// TestUnmergedImageNewerRoot: the image is not usr-merged and its loader
// finds its own older libc in /lib/x86_64-linux-gnu; the merged root's
// newer libc would land in /usr/lib/x86_64-linux-gnu, where the image's
// loader never looks first. A program needing the newer version is
// refused by name and left out of the preset, so the image is still built.
func TestUnmergedImageNewerRoot(t *testing.T) {
	eb := elftest.New(t)
	old := []string{"GLIBC_2.2.5", "GLIBC_2.30"}
	imgDir := t.TempDir()
	img := &versionRoot{t: t, eb: eb, dir: imgDir}
	lib := "/lib/x86_64-linux-gnu/"
	eb.Lib(img.host(lib+"ld-linux-x86-64.so.2"), "ld-linux-x86-64.so.2", nil, []string{"ldso"}, nil, nil)
	eb.Lib(img.host(lib+"libc.so.6"), "libc.so.6", old, nil, nil, nil)
	for _, d := range []string{"lib64", "usr/lib/x86_64-linux-gnu", "usr/bin", "bin"} {
		if err := os.MkdirAll(img.host(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(lib+"ld-linux-x86-64.so.2", img.host("/lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	img.prog("/init", old, nil)
	tr := synthImage(t, false)
	if _, err := Apply(context.Background(), tr, Options{Root: imgDir, Preset: "none", Add: []string{"/init"}}); err != nil {
		t.Fatal(err)
	}
	before := treeFile(t, tr, lib+"libc.so.6")

	root := newVersionRoot(t, eb, []string{"GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.38"})
	root.prog("/usr/bin/ls", []string{"GLIBC_2.38"}, nil)
	root.prog("/usr/bin/tool", []string{"GLIBC_2.38"}, nil)
	_, err := Apply(context.Background(), tr, Options{Root: root.dir, Preset: "none", Add: []string{"tool"}})
	if err == nil || !strings.Contains(err.Error(), "the image's loader finds its own "+lib+"libc.so.6 under that name first") {
		t.Fatalf("--add: got %v, want a refusal", err)
	}
	rep, err := Apply(context.Background(), tr, Options{Root: root.dir})
	if err != nil {
		t.Fatalf("preset: %v", err)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "/usr/bin/ls (preset rescue: ls) left out") {
		t.Errorf("warnings %q", rep.Warnings)
	}
	if !bytes.Equal(before, treeFile(t, tr, lib+"libc.so.6")) {
		t.Error("the image's libc changed")
	}
	mustVerify(t, tr)
}

// TestKeptCopyLacksDependency: the image holds a library without one of its
// own dependencies (Debian 13's dracut images ship liblz4 without
// libxxhash, which only a dlopen() reaches there). The image's copy stays
// (nothing says the root's older one would serve /init), so a program of
// the root that loads it at startup cannot run: a preset program is left
// out with the reason, one asked for with --add is refused, and nothing is
// refused for what the input itself lacked.
func TestKeptCopyLacksDependency(t *testing.T) {
	eb := elftest.New(t)
	v := []string{"GLIBC_2.2.5"}
	lz4 := "/usr/lib/x86_64-linux-gnu/liblz4.so.1"
	for _, c := range []struct {
		name, prog string
		opts       func(root string) Options
		wantErr    string
	}{
		{name: "preset", prog: "/usr/bin/ls", opts: func(root string) Options { return Options{Root: root} }},
		{name: "add", prog: "/usr/bin/tool", opts: func(root string) Options { return Options{Root: root, Preset: "none", Add: []string{"tool"}} },
			wantErr: lz4 + " (the image's copy, kept) needs libxxhash.so.0, which neither the image nor the root's closure has"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := newVersionRoot(t, eb, v)
			xxhash := filepath.Join(t.TempDir(), "libxxhash.so.0") // not in the image
			eb.Lib(xxhash, "libxxhash.so.0", nil, []string{"fx"}, nil, nil)
			eb.Lib(img.host(lz4), "liblz4.so.1", nil, []string{"flz4"}, []string{"fx"}, []string{xxhash})
			img.prog("/init", v, nil)
			tr := synthImage(t, true)
			if _, err := Apply(context.Background(), tr, Options{Root: img.dir, Preset: "none", Add: []string{"/init", lz4}, AllowMissing: true}); err != nil {
				t.Fatal(err)
			}

			root := newVersionRoot(t, eb, v)
			eb.Lib(root.host(lz4), "liblz4.so.1", nil, []string{"flz4"}, nil, nil)
			eb.Prog(root.host(c.prog), []string{"flz4"}, []string{root.host(lz4)})
			rep, err := Apply(context.Background(), tr, c.opts(root.dir))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "use a --root of the image's release") {
					t.Fatalf("got %v, want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, n, _ := tr.Resolve(c.prog, true); n != nil {
				t.Errorf("%s was added, though it cannot start in the image", c.prog)
			}
			notes := strings.Join(append(rep.Skipped, rep.Warnings...), "\n")
			if !strings.Contains(notes, "needs libxxhash.so.0, which neither the image nor the root's closure has") {
				t.Errorf("notes %q do not say why %s was left out", notes, c.prog)
			}
			if !bytes.Equal(treeFile(t, tr, lz4), hostFile(t, img.host(lz4))) {
				t.Error("the image's liblz4 was replaced")
			}
		})
	}
}
