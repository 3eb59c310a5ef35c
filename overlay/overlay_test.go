package overlay

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/overlay/verify"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

// labEnv returns a value of the main lab's lab.env.
func labEnv(t testing.TB, key string) string {
	t.Helper()
	return testtool.OpenLab(t).Var(t, key)
}

func openLabImage(t *testing.T, name string) *remix.Image {
	t.Helper()
	img, err := remix.Open(context.Background(), testtool.OpenLab(t).Image(t, name).Path, remix.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	img.Tree.SetGeneration(img.EditGeneration())
	return img
}

func mustVerify(t *testing.T, tree *remix.Tree) {
	t.Helper()
	fs, err := verify.Tree(context.Background(), tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Severity == verify.Error {
			t.Errorf("verify: %s", f)
		}
	}
}

// TestRescuePresetLab adds the rescue preset of the lab root to each
// family's image and checks that every program finds its libraries inside
// the result.
func TestRescuePresetLab(t *testing.T) {
	root := labEnv(t, "LAB_ROOT")
	for _, name := range []string{"itools-zstd", "dracut-sd-zstd", "dracut-nosd-gzip"} {
		t.Run(name, func(t *testing.T) {
			img := openLabImage(t, name)
			rep, err := Apply(context.Background(), img.Tree, Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d entries added, preset programs the root lacks: %v", len(rep.Added), rep.Skipped)
			for _, prog := range []string{"/usr/sbin/parted", "/usr/sbin/mdadm", "/usr/sbin/cryptsetup", "/usr/bin/rsync", "/usr/sbin/mkfs.ext4"} {
				if _, n, err := img.Tree.Resolve(prog, true); err != nil || n == nil {
					t.Errorf("%s not in the image (%v)", prog, err)
				}
			}
			if u := remix.DetectUsrMerge(img.Tree); u.State != "merged" {
				t.Errorf("usr-merge state after the overlay: %s", u.State)
			}
			mustVerify(t, img.Tree)
		})
	}
}

// TestReaR3064 is Relax-and-Recover issue #3064: a symlink elsewhere
// (here /etc/alternatives/NAME) points at a program whose library nothing
// else in the image has; --include of the link must bring the link, the
// program and that library.
func TestReaR3064(t *testing.T) {
	root := labEnv(t, "LAB_ROOT")
	img := openLabImage(t, "itools-zstd")
	res, err := ldso.NewResolver(root, ldso.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, dir := range []string{"/etc/alternatives", "/usr/sbin", "/usr/bin"} {
		ents, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Type()&os.ModeSymlink != 0 {
				links = append(links, dir+"/"+e.Name())
			}
		}
	}
	var link, prog, lib string
	for _, p := range links {
		_, phys, mode, err := res.Walk(p)
		if err != nil || !mode.IsRegular() {
			continue
		}
		r, err := res.Closure(phys)
		if err != nil {
			continue
		}
		for _, dep := range r.Needs[phys] {
			if !strings.Contains(filepath.Base(dep), ".so.") || strings.HasPrefix(filepath.Base(dep), "ld-linux") {
				continue // a script's interpreter or the ELF interpreter
			}
			if _, n, _ := img.Tree.Resolve(dep, true); n == nil {
				link, prog, lib = p, phys, dep
				break
			}
		}
		if lib != "" {
			break
		}
	}
	if lib == "" {
		t.Fatal("no symlink in the lab root's /etc/alternatives, /usr/sbin, /usr/bin leads to a program with a library the image lacks")
	}
	t.Logf("scenario: %s -> %s, which needs %s", link, prog, lib)
	if _, err := Apply(context.Background(), img.Tree, Options{Root: root, Preset: "none", Include: []string{link}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, prog, lib} {
		if _, n, err := img.Tree.Resolve(p, true); err != nil || n == nil || !n.IsRegular() {
			t.Errorf("%s missing from the image (%v)", p, err)
		}
	}
	if n := img.Tree.Lookup(link); n == nil || !n.IsSymlink() {
		t.Errorf("%s is not a symlink in the image", link)
	}
	mustVerify(t, img.Tree)
}

// copyFile copies a file of the lab root into a synthetic root.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// synthRoot builds a minimal root holding dash and libc from the lab
// root, usr-merged (bin, lib, lib64 links into usr) or not.
func synthRoot(t *testing.T, labRoot string, merged bool) string {
	t.Helper()
	dir := t.TempDir()
	const triplet = "x86_64-linux-gnu"
	libdir, bindir := "lib/"+triplet, "bin"
	if merged {
		for _, d := range []string{"bin", "lib", "lib64"} {
			if err := os.MkdirAll(filepath.Join(dir, "usr", d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("usr/"+d, filepath.Join(dir, d)); err != nil {
				t.Fatal(err)
			}
		}
		libdir, bindir = "usr/lib/"+triplet, "usr/bin"
	}
	copyFile(t, filepath.Join(labRoot, "usr/bin/dash"), filepath.Join(dir, bindir, "dash"))
	copyFile(t, filepath.Join(labRoot, "usr/lib", triplet, "libc.so.6"), filepath.Join(dir, libdir, "libc.so.6"))
	copyFile(t, filepath.Join(labRoot, "usr/lib", triplet, "ld-linux-x86-64.so.2"), filepath.Join(dir, libdir, "ld-linux-x86-64.so.2"))
	lib64 := "lib64"
	if merged {
		lib64 = "usr/lib64"
	}
	if err := os.MkdirAll(filepath.Join(dir, lib64), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+libdir+"/ld-linux-x86-64.so.2", filepath.Join(dir, lib64, "ld-linux-x86-64.so.2")); err != nil && !merged {
		t.Fatal(err)
	}
	if merged {
		// usr/lib64/ld-linux -> ../lib/... as Debian has it.
		os.Remove(filepath.Join(dir, lib64, "ld-linux-x86-64.so.2"))
		if err := os.Symlink("../lib/"+triplet+"/ld-linux-x86-64.so.2", filepath.Join(dir, lib64, "ld-linux-x86-64.so.2")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("dash", filepath.Join(dir, bindir, "sh")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// synthImage is an image tree in the given layout holding nothing else.
func synthImage(t *testing.T, merged bool) *remix.Tree {
	t.Helper()
	entries := []remix.Entry{remix.Dir("usr", 0o755), remix.Dir("usr/bin", 0o755), remix.Dir("usr/lib", 0o755), remix.Dir("usr/lib64", 0o755)}
	for _, d := range []string{"bin", "lib", "lib64"} {
		e := remix.Dir(d, 0o755)
		if merged {
			e = remix.Symlink(d, "usr/"+d)
		}
		entries = append(entries, e)
	}
	tr := treetest.Of(t, entries...)
	tr.SetGeneration(1)
	return tr
}

// TestUsrMerge adds dash to images of both layouts from roots of both
// layouts: the image keeps its layout, no directory replaces a link, and
// the program, its interpreter and libc resolve inside the image.
func TestUsrMerge(t *testing.T) {
	labRoot := labEnv(t, "LAB_ROOT")
	for _, c := range []struct{ rootMerged, imageMerged bool }{{true, true}, {true, false}, {false, true}, {false, false}} {
		name := map[bool]string{true: "merged", false: "unmerged"}
		t.Run("root-"+name[c.rootMerged]+"/image-"+name[c.imageMerged], func(t *testing.T) {
			t.Parallel()
			root := synthRoot(t, labRoot, c.rootMerged)
			tr := synthImage(t, c.imageMerged)
			rep, err := Apply(context.Background(), tr, Options{Root: root, Preset: "none", Add: []string{"sh"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"bin", "lib", "lib64"} {
				n := tr.Get(d)
				want := "dir"
				if c.imageMerged {
					want = "symlink"
				}
				if n == nil || remix.TypeName(n.Inode.Mode) != want {
					t.Errorf("/%s changed type in the image", d)
				}
			}
			// The program where the root's PATH finds it, the interpreter
			// by its PT_INTERP path, libc where the loader searches.
			prog := "/bin/sh"
			if c.rootMerged {
				prog = "/usr/bin/sh"
			}
			for _, p := range []string{prog, "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"} {
				if _, n, err := tr.Resolve(p, true); err != nil || n == nil || !n.IsRegular() {
					t.Errorf("%s does not resolve to a file in the image (%v)", p, err)
				}
			}
			mustVerify(t, tr)
			if t.Failed() {
				for _, a := range rep.Added {
					t.Logf("added %s %s <- %s (%s)", a.Type, a.Path, a.Source, a.Reason)
				}
			}
		})
	}
}

// TestBadInput is issue 4 point 6: each a clear error.
func TestBadInput(t *testing.T) {
	labRoot := labEnv(t, "LAB_ROOT")
	root := synthRoot(t, labRoot, true)
	// A program whose library the root lacks.
	copyFile(t, filepath.Join(labRoot, "usr/bin/ls"), filepath.Join(root, "usr/bin/ls"))
	if err := os.WriteFile(filepath.Join(root, "usr/bin/data"), []byte("just text\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop2", filepath.Join(root, "usr/bin/loop1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop1", filepath.Join(root, "usr/bin/loop2")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "usr/bin/data")
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"not found", Options{Add: []string{"nosuchprog"}}, `"nosuchprog" not found on PATH`},
		{"not ELF", Options{Add: []string{"data"}}, "neither an ELF program nor a #! script"},
		{"missing library", Options{Add: []string{"ls"}}, "/usr/bin/ls: libselinux.so.1 not found"},
		{"root not a directory", Options{Root: file}, "not a directory"},
		{"root missing", Options{Root: root + "/nothere"}, "no such file"},
		{"symlink loop add", Options{Add: []string{"/usr/bin/loop1"}}, "symlink loop"},
		{"symlink loop include", Options{Include: []string{"/usr/bin/loop1"}}, "symlink loop"},
		{"include missing", Options{Include: []string{"/nothere"}}, "no such file"},
		{"unknown preset", Options{Preset: "huge"}, `unknown preset "huge"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Root == "" {
				c.opts.Root = root
			}
			if c.opts.Preset == "" {
				c.opts.Preset = "none"
			}
			_, err := Apply(context.Background(), synthImage(t, true), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			t.Log(err)
		})
	}
	// --allow-missing: a warning naming the program and the soname.
	rep, err := Apply(context.Background(), synthImage(t, true), Options{Root: root, Preset: "none", Add: []string{"ls"}, AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) == 0 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "libselinux.so.1") {
		t.Errorf("warnings %q do not name libselinux.so.1", rep.Warnings)
	}
}

// TestImageLoaderConfig: a library the root finds only through its
// loader configuration (here ld.so.conf naming /opt/lib, with no cache)
// is copied, but the image's loader would not find it: Apply says so
// instead of leaving it to the rescue boot.
func TestImageLoaderConfig(t *testing.T) {
	labRoot := labEnv(t, "LAB_ROOT")
	root := synthRoot(t, labRoot, true)
	copyFile(t, filepath.Join(labRoot, "usr/bin/ls"), filepath.Join(root, "usr/bin/ls"))
	for _, lib := range []string{"libselinux.so.1", "libpcre2-8.so.0"} {
		copyFile(t, filepath.Join(labRoot, "usr/lib/x86_64-linux-gnu", lib), filepath.Join(root, "opt/lib", lib))
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("/opt/lib\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Apply(context.Background(), synthImage(t, true), Options{Root: root, Preset: "none", Add: []string{"ls"}})
	if err == nil || !strings.Contains(err.Error(), "libselinux.so.1 not found inside the image") {
		t.Fatalf("got %v, want the image check to fail on libselinux.so.1", err)
	}
	t.Log(err)
	rep, err := Apply(context.Background(), synthImage(t, true), Options{Root: root, Preset: "none", Add: []string{"ls"}, AllowMissing: true})
	if err != nil || !strings.Contains(strings.Join(rep.Warnings, "\n"), "libselinux.so.1 not found inside the image") {
		t.Errorf("with --allow-missing: %v, warnings %q", err, rep.Warnings)
	}
}
