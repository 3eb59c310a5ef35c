// Package elftest builds tiny real ELF objects with symbol versions for
// tests, with the host's gcc and GNU ld: shared libraries defining version
// names through a version script (-Wl,--version-script), and programs
// linked against them, which then need those versions (DT_VERNEED). It
// exists so that the resolver's tests and the overlay's tests build their
// mismatched "image" and "root" sides the same way.
package elftest

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// Builder compiles with -nostdlib, so an object needs exactly the
// libraries a test links and nothing of the host.
type Builder struct {
	t   testing.TB
	gcc string
	dir string
}

// New returns a Builder, skipping (or failing in CI) without gcc.
func New(t testing.TB) *Builder {
	t.Helper()
	return &Builder{t: t, gcc: testtool.Require(t, "gcc"), dir: t.TempDir()}
}

// Func is the name of the function a versioned library defines at
// version v ("GLIBC_2.38" -> "f_GLIBC_2_38").
func Func(v string) string {
	return "f_" + strings.NewReplacer(".", "_", "-", "_").Replace(v)
}

// CC compiles C source src into out with gcc -nostdlib -fPIC -O0 and
// args; libraries linked by path may leave symbols of others undefined.
func (b *Builder) CC(out, src string, args ...string) {
	b.t.Helper()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		b.t.Fatal(err)
	}
	f, err := os.CreateTemp(b.dir, "*.c")
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := f.WriteString(src); err != nil {
		b.t.Fatal(err)
	}
	f.Close()
	argv := append([]string{"-nostdlib", "-fPIC", "-O0", "-o", out, f.Name()}, args...)
	argv = append(argv, "-Wl,--allow-shlib-undefined")
	if o, err := exec.Command(b.gcc, argv...).CombinedOutput(); err != nil {
		b.t.Fatalf("gcc %s: %v\n%s", strings.Join(argv, " "), err, o)
	}
}

// Lib builds a shared library at out named soname. With versions, it
// defines each version name in order (each inheriting the previous one, as
// glibc's do) with one function Func(v) bound to it; without, it is an
// unversioned library defining the functions of unversioned. It calls
// calls and links deps (host paths); ldflags are passed on.
func (b *Builder) Lib(out, soname string, versions, unversioned, calls, deps []string, ldflags ...string) {
	b.t.Helper()
	var src strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&src, "extern int %s(void);\n", c)
	}
	body := "int r = 0;"
	for _, c := range calls {
		body += " r += " + c + "();"
	}
	fns := append([]string(nil), unversioned...)
	for _, v := range versions {
		fns = append(fns, Func(v))
	}
	for _, fn := range fns {
		fmt.Fprintf(&src, "int %s(void) { %s return r; }\n", fn, body)
	}
	args := []string{"-shared", "-Wl,-soname," + soname}
	if len(versions) > 0 {
		var script strings.Builder
		for i, v := range versions {
			fmt.Fprintf(&script, "%s { global: %s;", v, Func(v))
			if i == 0 {
				script.WriteString(" local: *;")
			}
			script.WriteString(" }")
			if i > 0 {
				script.WriteString(" " + versions[i-1])
			}
			script.WriteString(";\n")
		}
		path := filepath.Join(b.dir, strings.ReplaceAll(soname, "/", "_")+fmt.Sprintf("-%d.map", len(versions)))
		if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
			b.t.Fatal(err)
		}
		args = append(args, "-Wl,--version-script="+path)
	}
	args = append(args, deps...)
	b.CC(out, src.String(), append(args, ldflags...)...)
}

// Prog builds a position-independent executable at out that calls calls,
// linked against deps (host paths); its interpreter is the host's default
// unless ldflags say otherwise.
func (b *Builder) Prog(out string, calls, deps []string, ldflags ...string) {
	b.t.Helper()
	var src strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&src, "extern int %s(void);\n", c)
	}
	src.WriteString("void _start(void) { int r = 0;")
	for _, c := range calls {
		src.WriteString(" r += " + c + "();")
	}
	src.WriteString(" for (;;) ; }\n")
	b.CC(out, src.String(), append(append([]string{"-pie"}, deps...), ldflags...)...)
}

// MarkWeak sets VER_FLG_WEAK on the need of version in the object at path,
// as a link against a weak version definition would; GNU ld gives no
// direct way to produce one.
func MarkWeak(t testing.TB, path, version string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sec := f.Section(".gnu.version_r")
	strs := f.Section(".dynstr")
	if sec == nil || strs == nil {
		f.Close()
		t.Fatalf("%s: no .gnu.version_r", path)
	}
	data, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	str, err := strs.Data()
	if err != nil {
		t.Fatal(err)
	}
	off := sec.Offset
	f.Close()
	cstr := func(i uint32) string {
		s := str[i:]
		if j := strings.IndexByte(string(s), 0); j >= 0 {
			s = s[:j]
		}
		return string(s)
	}
	bo := binary.LittleEndian
	for vn := uint32(0); ; {
		aux := vn + bo.Uint32(data[vn+8:])
		for {
			if cstr(bo.Uint32(data[aux+8:])) == version {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				at := off + uint64(aux) + 4
				bo.PutUint16(b[at:], bo.Uint16(b[at:])|2)
				if err := os.WriteFile(path, b, 0o755); err != nil {
					t.Fatal(err)
				}
				return
			}
			next := bo.Uint32(data[aux+12:])
			if next == 0 {
				break
			}
			aux += next
		}
		next := bo.Uint32(data[vn+12:])
		if next == 0 {
			break
		}
		vn += next
	}
	t.Fatalf("%s needs no version %s", path, version)
}
