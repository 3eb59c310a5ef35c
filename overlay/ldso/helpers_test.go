package ldso

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay/ldso/elftest"
)

// builder compiles tiny ELF objects with the host's gcc into fake roots.
// Everything is built with -nostdlib, so the objects need exactly the
// libraries a test links and nothing of the host.
type builder struct {
	t  *testing.T
	eb *elftest.Builder
}

func newBuilder(t *testing.T) *builder {
	t.Helper()
	return &builder{t: t, eb: elftest.New(t)}
}

func (b *builder) cc(out, src string, args ...string) {
	b.t.Helper()
	b.eb.CC(out, src, args...)
}

// source returns C defining fn (if any) that calls every function in calls.
func source(fn string, calls []string, entry bool) string {
	var s strings.Builder
	for _, c := range calls {
		s.WriteString("extern int " + c + "(void);\n")
	}
	body := "int r = 0;\n"
	for _, c := range calls {
		body += "r += " + c + "();\n"
	}
	if fn != "" {
		s.WriteString("int " + fn + "(void) {\n" + body + "return r;\n}\n")
	}
	if entry {
		s.WriteString("void _start(void) {\n" + body + "for (;;) ;\n}\n")
	}
	return s.String()
}

// lib builds a shared library at out (a host path) named soname, defining
// fn and calling calls, linked against deps (host paths).
func (b *builder) lib(out, soname, fn string, calls, deps []string, ldflags ...string) {
	b.t.Helper()
	args := append([]string{"-shared", "-Wl,-soname," + soname}, deps...)
	b.cc(out, source(fn, calls, false), append(args, ldflags...)...)
}

// prog builds a dynamically linked executable at out calling calls.
func (b *builder) prog(out string, calls, deps []string, ldflags ...string) {
	b.t.Helper()
	b.cc(out, source("", calls, true), append(append([]string{"-pie"}, deps...), ldflags...)...)
}

// fakeRoot is a directory laid out like a distribution root.
type fakeRoot struct {
	t      *testing.T
	dir    string
	libdir string // where libraries really live, inside the root
}

const triplet = "x86_64-linux-gnu"

// newDebianRoot builds a Debian-like root with a fake loader and libc in
// /lib/x86_64-linux-gnu; merged makes /bin, /sbin, /lib, /lib64 symlinks
// into /usr as on Debian 12.
func newDebianRoot(t *testing.T, b *builder, merged bool) *fakeRoot {
	t.Helper()
	r := &fakeRoot{t: t, dir: t.TempDir()}
	if merged {
		for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
			r.mkdir("/usr/" + d)
			r.symlink("/"+d, "usr/"+d)
		}
		r.libdir = "/usr/lib/" + triplet
		r.symlink("/usr/lib64/ld-linux-x86-64.so.2", "/lib/"+triplet+"/ld-linux-x86-64.so.2")
	} else {
		for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64", "/usr/bin", "/usr/sbin", "/usr/lib"} {
			r.mkdir(d)
		}
		r.libdir = "/lib/" + triplet
		r.symlink("/lib64/ld-linux-x86-64.so.2", "/lib/"+triplet+"/ld-linux-x86-64.so.2")
	}
	r.mkdir(r.libdir)
	r.mkdir("/usr/lib/" + triplet)
	r.mkdir("/etc")
	b.lib(r.host(r.libdir+"/ld-linux-x86-64.so.2"), "ld-linux-x86-64.so.2", "ldso", nil, nil)
	b.lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", "libc", nil, nil)
	return r
}

// newUpstreamRoot builds a root laid out like Fedora or openSUSE: libraries
// in /usr/lib64 (with /lib64 -> usr/lib64), no multiarch directories.
func newUpstreamRoot(t *testing.T, b *builder) *fakeRoot {
	t.Helper()
	r := &fakeRoot{t: t, dir: t.TempDir(), libdir: "/usr/lib64"}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		r.mkdir("/usr/" + d)
		r.symlink("/"+d, "usr/"+d)
	}
	r.mkdir("/etc")
	b.lib(r.host("/usr/lib64/ld-linux-x86-64.so.2"), "ld-linux-x86-64.so.2", "ldso", nil, nil)
	b.lib(r.host("/usr/lib64/libc.so.6"), "libc.so.6", "libc", nil, nil)
	return r
}

func (r *fakeRoot) host(p string) string { return filepath.Join(r.dir, p) }

func (r *fakeRoot) mkdir(p string) {
	r.t.Helper()
	if err := os.MkdirAll(r.host(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) symlink(p, target string) {
	r.t.Helper()
	r.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, r.host(p)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) write(p, content string) {
	r.t.Helper()
	r.mkdir(filepath.Dir(p))
	if err := os.WriteFile(r.host(p), []byte(content), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) resolver(opts Options) *Resolver {
	r.t.Helper()
	res, err := NewResolver(r.dir, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *fakeRoot) closure(opts Options, paths ...string) *Result {
	r.t.Helper()
	res, err := r.resolver(opts).Closure(paths...)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// ldconfig builds the root's ld.so.cache with the real ldconfig, without
// touching the root's symlinks (-X), in the given format.
func (r *fakeRoot) ldconfig(format string) {
	r.t.Helper()
	ldconfig := testtool.Require(r.t, "ldconfig")
	if os.Geteuid() != 0 {
		testtool.Missing(r.t, "ldconfig -r needs root (it chroots)")
	}
	out, err := exec.Command(ldconfig, "-X", "-c", format, "-r", r.dir).CombinedOutput()
	if err != nil {
		r.t.Fatalf("ldconfig -r %s: %v\n%s", r.dir, err, out)
	}
}

// patchELF rewrites header fields of a built object to fake another ABI.
func patchELF(t *testing.T, path string, machine *uint16, data *byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if machine != nil {
		binary.LittleEndian.PutUint16(b[18:], *machine)
	}
	if data != nil {
		b[5] = *data
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// elf32Header returns a minimal i386 ET_DYN header: enough for the class
// check that skips it.
func elf32Header() []byte {
	b := make([]byte, 52)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 1, 1, 1                // ELFCLASS32, little-endian, EV_CURRENT
	binary.LittleEndian.PutUint16(b[16:], 3)  // ET_DYN
	binary.LittleEndian.PutUint16(b[18:], 3)  // EM_386
	binary.LittleEndian.PutUint32(b[20:], 1)  // EV_CURRENT
	binary.LittleEndian.PutUint16(b[40:], 52) // e_ehsize
	return b
}

// fileMap indexes a result's files by path.
func fileMap(res *Result) map[string]File {
	m := map[string]File{}
	for _, f := range res.Files {
		m[f.Path] = f
	}
	return m
}

func wantFiles(t *testing.T, res *Result, want ...File) {
	t.Helper()
	m := fileMap(res)
	for _, w := range want {
		got, ok := m[w.Path]
		if !ok {
			t.Errorf("missing file %s (%v) in %v", w.Path, w.Kind, res.Files)
			continue
		}
		if got != w {
			t.Errorf("file %s: got %+v, want %+v", w.Path, got, w)
		}
	}
}

func wantNoFile(t *testing.T, res *Result, paths ...string) {
	t.Helper()
	m := fileMap(res)
	for _, p := range paths {
		if _, ok := m[p]; ok {
			t.Errorf("unexpected file %s", p)
		}
	}
}

func wantNeeds(t *testing.T, res *Result, obj string, want ...string) {
	t.Helper()
	got := res.Needs[obj]
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Needs[%s] = %v, want %v", obj, got, want)
	}
}

func wantMissing(t *testing.T, res *Result, want ...Missing) {
	t.Helper()
	if len(res.Missing) != len(want) {
		t.Fatalf("Missing = %+v, want %+v", res.Missing, want)
	}
	for i, w := range want {
		g := res.Missing[i]
		if g.Object != w.Object || g.Soname != w.Soname || !strings.Contains(g.Reason, w.Reason) || g.Dlopen != w.Dlopen {
			t.Errorf("Missing[%d] = %+v, want %+v (reason containing)", i, g, w)
		}
	}
}

func isLoop(err error) bool {
	var le *LoopError
	return errors.As(err, &le)
}
