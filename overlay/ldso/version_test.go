package ldso

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay/ldso/elftest"
)

// glibcUpTo returns libc-like version names up to and including last.
func glibcUpTo(last string) []string {
	all := []string{"GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.34", "GLIBC_2.36", "GLIBC_2.38"}
	for i, v := range all {
		if v == last {
			return all[:i+1]
		}
	}
	panic(last)
}

// TestVersionChecks builds roots where the libc the loader finds is older
// or newer than the one a program was linked against, and checks
// Result.Versions as ld.so's _dl_check_map_versions decides.
func TestVersionChecks(t *testing.T) {
	eb := elftest.New(t)
	scratch := t.TempDir()
	newLibc := filepath.Join(scratch, "new/libc.so.6")
	eb.Lib(newLibc, "libc.so.6", glibcUpTo("GLIBC_2.38"), nil, nil, nil)
	f238, f225 := elftest.Func("GLIBC_2.38"), elftest.Func("GLIBC_2.2.5")
	libc := "/usr/lib/" + triplet + "/libc.so.6"
	for _, c := range []struct {
		name string
		// setup builds the root's libc and programs; it returns the
		// inputs of the closure.
		setup func(r *fakeRoot) []string
		want  []VersionMissing
		// noOracle: the host's ld.so cannot be asked (its --library-path
		// comes before the program's RUNPATH).
		noOracle bool
	}{
		{"root libc older than the program", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", glibcUpTo("GLIBC_2.30"), nil, nil, nil)
			eb.Prog(r.host("/usr/bin/prog"), []string{f238, f225}, []string{newLibc})
			return []string{"/usr/bin/prog"}
		}, []VersionMissing{{Object: "/usr/bin/prog", Library: libc, File: "libc.so.6", Version: "GLIBC_2.38"}}, false},
		{"root libc newer than the program", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", glibcUpTo("GLIBC_2.38"), nil, nil, nil)
			old := filepath.Join(scratch, "old/libc.so.6")
			eb.Lib(old, "libc.so.6", glibcUpTo("GLIBC_2.30"), nil, nil, nil)
			eb.Prog(r.host("/usr/bin/prog"), []string{elftest.Func("GLIBC_2.30")}, []string{old})
			return []string{"/usr/bin/prog"}
		}, nil, false},
		{"weak need of a missing version", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", glibcUpTo("GLIBC_2.30"), nil, nil, nil)
			eb.Prog(r.host("/usr/bin/prog"), []string{f238, f225}, []string{newLibc})
			elftest.MarkWeak(t, r.host("/usr/bin/prog"), "GLIBC_2.38")
			return []string{"/usr/bin/prog"}
		}, nil, false},
		{"library without versioning", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", nil, []string{f238, f225}, nil, nil)
			eb.Prog(r.host("/usr/bin/prog"), []string{f238, f225}, []string{newLibc})
			return []string{"/usr/bin/prog"}
		}, nil, false},
		{"need of a library, not of the program", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", glibcUpTo("GLIBC_2.34"), nil, nil, nil)
			eb.Lib(r.host(r.libdir+"/libfoo.so.1"), "libfoo.so.1", nil, []string{"foo"}, []string{f238}, []string{newLibc})
			eb.Prog(r.host("/usr/bin/prog"), []string{"foo"}, []string{r.host(r.libdir + "/libfoo.so.1")})
			return []string{"/usr/bin/prog"}
		}, []VersionMissing{{Object: "/usr/lib/" + triplet + "/libfoo.so.1", Library: libc, File: "libc.so.6", Version: "GLIBC_2.38"}}, false},
		// Two copies of one soname: the version is checked against the
		// one the process loads, here the newer one in the program's
		// RUNPATH, not the older one in the system directory.
		{"satisfied by the copy the process loads", func(r *fakeRoot) []string {
			eb.Lib(r.host(r.libdir+"/libc.so.6"), "libc.so.6", glibcUpTo("GLIBC_2.38"), nil, nil, nil)
			newFoo := r.host("/opt/app/lib/libfoo.so.1")
			eb.Lib(newFoo, "libfoo.so.1", []string{"FOO_1", "FOO_2"}, nil, nil, nil)
			eb.Lib(r.host(r.libdir+"/libfoo.so.1"), "libfoo.so.1", []string{"FOO_1"}, nil, nil, nil)
			eb.Prog(r.host("/opt/app/bin/app"), []string{elftest.Func("FOO_2")}, []string{newFoo}, "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
			eb.Prog(r.host("/usr/bin/other"), []string{elftest.Func("FOO_2")}, []string{newFoo})
			return []string{"/opt/app/bin/app", "/usr/bin/other"}
		}, []VersionMissing{{Object: "/usr/bin/other", Library: "/usr/lib/" + triplet + "/libfoo.so.1", File: "libfoo.so.1", Version: "FOO_2"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBuilder(t)
			r := newDebianRoot(t, b, true)
			in := c.setup(r)
			res := r.closure(Options{}, in...)
			if !c.noOracle {
				hostLoaderOracle(t, r, in, res)
			}
			wantMissing(t, res)
			if len(res.Versions) != len(c.want) {
				t.Fatalf("Versions = %+v, want %+v", res.Versions, c.want)
			}
			for i, w := range c.want {
				if res.Versions[i] != w {
					t.Errorf("Versions[%d] = %+v, want %+v", i, res.Versions[i], w)
				}
				if s := res.Versions[i].String(); !strings.Contains(s, "version `"+w.Version+"' not found (required by "+w.Object+")") {
					t.Errorf("message %q is not ld.so's", s)
				}
			}
			// Every program's needs on libc are recorded with the
			// library that satisfies them.
			for _, p := range in {
				_, phys, _, _ := r.resolver(Options{}).Walk(p)
				for _, n := range res.VersionNeeds[phys] {
					if n.Library == "" || n.File == "" || n.Version == "" {
						t.Errorf("%s: incomplete need %+v", p, n)
					}
				}
			}
		})
	}
}

// readelfVersions is what `readelf -V` says about one file: definitions
// in order and needs as "FILE VERSION" with " weak" for VER_FLG_WEAK.
type readelfVersions struct {
	defs, needs []string
}

// parseReadelfV splits `readelf -V -W` output for several files by file.
func parseReadelfV(out string, files []string) map[string]*readelfVersions {
	res := map[string]*readelfVersions{}
	var cur *readelfVersions
	if len(files) == 1 {
		cur = &readelfVersions{}
		res[files[0]] = cur
	}
	section, file := "", ""
	for _, line := range strings.Split(out, "\n") {
		if f, ok := strings.CutPrefix(line, "File: "); ok {
			cur = &readelfVersions{}
			res[f] = cur
			continue
		}
		switch {
		case cur == nil:
		case strings.HasPrefix(line, "Version definition section"):
			section = "def"
		case strings.HasPrefix(line, "Version needs section"):
			section = "need"
		case strings.HasPrefix(line, "Version symbols section"), strings.HasPrefix(line, "No version information"):
			section = ""
		case section == "def" && strings.Contains(line, "Rev: "):
			_, name, _ := strings.Cut(line, "Name: ")
			cur.defs = append(cur.defs, strings.TrimSpace(name))
		case section == "need" && strings.Contains(line, "File: "):
			_, rest, _ := strings.Cut(line, "File: ")
			file, _, _ = strings.Cut(rest, "  Cnt:")
		case section == "need" && strings.Contains(line, "Name: "):
			_, rest, _ := strings.Cut(line, "Name: ")
			name, flags, _ := strings.Cut(rest, "  Flags: ")
			n := file + " " + name
			if strings.Contains(flags, "WEAK") {
				n += " weak"
			}
			cur.needs = append(cur.needs, n)
		}
	}
	return res
}

// runReadelfOracle compares Versions with `readelf -V` (binutils reads the
// sections, the resolver the dynamic segment as ld.so does) on every
// loadable ELF of the oracle directories of a root.
func runReadelfOracle(t *testing.T, root string, full bool) {
	readelf := testtool.Require(t, "readelf")
	r, err := NewResolver(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lv := lddView{root: root, full: full, real: func(paths []string) map[string]string {
		m := map[string]string{}
		for _, p := range paths {
			if _, phys, mode, err := r.Walk(p); err == nil && mode.IsRegular() {
				m[p] = phys
			}
		}
		return m
	}}
	files := oracleFiles(t, lv)
	if len(files) < 50 {
		t.Fatalf("only %d ELF files under %s", len(files), root)
	}
	versioned, needs := 0, 0
	for i := 0; i < len(files); i += 200 {
		batch := files[i:min(i+200, len(files))]
		host := make([]string, len(batch))
		for j, f := range batch {
			host[j] = filepath.Join(root, f)
		}
		out, err := exec.Command(readelf, append([]string{"-V", "-W"}, host...)...).Output()
		if err != nil {
			t.Fatalf("readelf: %v", err)
		}
		want := parseReadelfV(string(out), host)
		for j, f := range batch {
			w, ok := want[host[j]]
			if !ok {
				t.Errorf("%s: no readelf output", f)
				continue
			}
			got, err := r.Versions(f)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			var gotNeeds []string
			for _, n := range got.Needs {
				s := n.File + " " + n.Version
				if n.Weak {
					s += " weak"
				}
				gotNeeds = append(gotNeeds, s)
			}
			if strings.Join(got.Defines, ",") != strings.Join(w.defs, ",") {
				t.Errorf("%s: defines %v, readelf %v", f, got.Defines, w.defs)
			}
			if strings.Join(gotNeeds, ",") != strings.Join(w.needs, ",") {
				t.Errorf("%s: needs %v, readelf %v", f, gotNeeds, w.needs)
			}
			if got.Versioned != (len(w.defs) > 0) {
				t.Errorf("%s: versioned %v, readelf defs %v", f, got.Versioned, w.defs)
			}
			if got.Versioned {
				versioned++
			}
			// ld.so matches by hash and name: the hashes read are the
			// names' ELF hashes in every real file.
			o, err := r.objectAt(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range o.verneed {
				if n.hash != elfHash(n.name) {
					t.Errorf("%s: need %s has hash %#x, want %#x", f, n.name, n.hash, elfHash(n.name))
				}
			}
			for _, d := range o.verdef {
				if d.hash != elfHash(d.name) {
					t.Errorf("%s: definition %s has hash %#x, want %#x", f, d.name, d.hash, elfHash(d.name))
				}
			}
			needs += len(gotNeeds)
		}
	}
	t.Logf("%d ELF files, %d with DT_VERDEF, %d version needs: all as readelf -V says", len(files), versioned, needs)
}

func TestVersionsReadelfOracleHost(t *testing.T) { runReadelfOracle(t, "/", false) }

func TestVersionsReadelfOracleLab(t *testing.T) {
	for _, l := range testtool.LabReleases(t) {
		t.Run(l.Release, func(t *testing.T) { runReadelfOracle(t, l.Env["LAB_ROOT"], true) })
	}
}

// hostLoaderOracle asks the host's ld.so (`ld.so --library-path DIR
// --list PROG`, which maps and version-checks without running anything)
// which versions are missing for each program, with the root's library
// directory as the library path, and compares with Result.Versions.
func hostLoaderOracle(t *testing.T, r *fakeRoot, progs []string, res *Result) {
	t.Helper()
	const loader = "/lib64/ld-linux-x86-64.so.2"
	if _, err := os.Stat(loader); err != nil {
		testtool.Missing(t, "no host loader: %v", err)
	}
	got, want := map[string]bool{}, map[string]bool{}
	for _, m := range res.Versions {
		got[m.Version+" required by "+filepath.Base(m.Object)] = true
	}
	for _, p := range progs {
		out, _ := exec.Command(loader, "--library-path", r.host(r.libdir), "--list", r.host(p)).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			_, rest, ok := strings.Cut(line, ": version `")
			if !ok {
				continue
			}
			ver, rest, _ := strings.Cut(rest, "' not found (required by ")
			want[ver+" required by "+filepath.Base(strings.TrimSuffix(rest, ")"))] = true
		}
	}
	if strings.Join(sortedKeys(got), "\n") != strings.Join(sortedKeys(want), "\n") {
		t.Errorf("missing versions %v, the host's ld.so says %v", sortedKeys(got), sortedKeys(want))
	}
}

// TestFind: the library a root's loader picks for a name, by its cache or
// its default directories, for the ABI of the header given.
func TestFind(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, false)
	b.lib(r.host("/usr/lib/"+triplet+"/libfoo.so.1"), "libfoo.so.1", "foo", nil, nil)
	b.lib(r.host("/lib/"+triplet+"/libbar.so.1"), "libbar.so.1", "bar", nil, nil)
	hdr := make([]byte, 64)
	f, err := os.Open(r.host(r.libdir + "/libc.so.6"))
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(hdr, 0)
	f.Close()
	res := r.resolver(Options{})
	for name, want := range map[string]string{
		"libc.so.6":   "/lib/" + triplet + "/libc.so.6",
		"libfoo.so.1": "/usr/lib/" + triplet + "/libfoo.so.1",
		"libbar.so.1": "/lib/" + triplet + "/libbar.so.1",
		"libnone.so":  "",
	} {
		got, err := res.Find(name, hdr)
		if err != nil || got != want {
			t.Errorf("Find(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := res.Find("libc.so.6", elf32Header()[:20]); err == nil {
		t.Error("a short header is accepted")
	}
}
