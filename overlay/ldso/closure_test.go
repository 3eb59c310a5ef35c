package ldso

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

const (
	mergedLoader = "/usr/lib/" + triplet + "/ld-linux-x86-64.so.2"
	mergedLibdir = "/usr/lib/" + triplet
)

// checkInsideRoot verifies that every file of a result exists in the fake
// root with the recorded kind: nothing was taken from the host.
func checkInsideRoot(t *testing.T, r *fakeRoot, res *Result) {
	t.Helper()
	for _, f := range res.Files {
		fi, err := os.Lstat(r.host(f.Path))
		if err != nil {
			t.Errorf("%s: not in the root: %v", f.Path, err)
			continue
		}
		switch f.Kind {
		case Symlink:
			target, _ := os.Readlink(r.host(f.Path))
			if fi.Mode()&os.ModeSymlink == 0 || target != f.Target {
				t.Errorf("%s: recorded as symlink to %q, is %v -> %q", f.Path, f.Target, fi.Mode(), target)
			}
		case Regular:
			if !fi.Mode().IsRegular() {
				t.Errorf("%s: recorded as regular, is %v", f.Path, fi.Mode())
			}
		}
		// Physical: no parent component is a symlink.
		for d := rawDir(f.Path); d != "/"; d = rawDir(d) {
			if fi, err := os.Lstat(r.host(d)); err != nil || !fi.IsDir() {
				t.Errorf("%s: parent %s is not a directory", f.Path, d)
			}
		}
	}
}

// The brief's main case: a program finds libA through its RUNPATH
// ($ORIGIN/../lib), libA finds libB through its RPATH, and libB is reached
// through a chain of symlinks, on a usr-merged root whose loader is an
// absolute symlink.
func TestRunpathRpathAndSymlinkChain(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host("/opt/app/private/libB.so.1.2.3"), "libB.so.1", "fb", nil, nil)
	r.symlink("/opt/app/private/libB.so.1.2", "libB.so.1.2.3")
	r.symlink("/opt/app/private/libB.so.1", "libB.so.1.2")
	b.lib(r.host("/opt/app/lib/libA.so.1"), "libA.so.1", "fa", []string{"fb"},
		[]string{r.host("/opt/app/private/libB.so.1.2.3")}, "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../private")
	b.prog(r.host("/opt/app/bin/prog"), []string{"fa"}, []string{r.host("/opt/app/lib/libA.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")

	res := r.closure(Options{}, "/opt/app/bin/prog")
	wantFiles(t, res,
		File{Path: "/opt/app/bin/prog", Kind: Regular},
		File{Path: "/lib64", Kind: Symlink, Target: "usr/lib64"},
		File{Path: "/usr/lib64/ld-linux-x86-64.so.2", Kind: Symlink, Target: "/lib/" + triplet + "/ld-linux-x86-64.so.2"},
		File{Path: "/lib", Kind: Symlink, Target: "usr/lib"},
		File{Path: mergedLoader, Kind: Regular},
		File{Path: "/opt/app/lib/libA.so.1", Kind: Regular},
		File{Path: "/opt/app/private/libB.so.1", Kind: Symlink, Target: "libB.so.1.2"},
		File{Path: "/opt/app/private/libB.so.1.2", Kind: Symlink, Target: "libB.so.1.2.3"},
		File{Path: "/opt/app/private/libB.so.1.2.3", Kind: Regular},
	)
	if len(res.Files) != 9 {
		t.Errorf("files: %v", res.Files)
	}
	wantNeeds(t, res, "/opt/app/bin/prog", "/opt/app/lib/libA.so.1", mergedLoader)
	wantNeeds(t, res, "/opt/app/lib/libA.so.1", "/opt/app/private/libB.so.1.2.3")
	wantNeeds(t, res, "/opt/app/private/libB.so.1.2.3")
	wantMissing(t, res)
	checkInsideRoot(t, r, res)
}

// DT_RUNPATH serves only the object's own needs; DT_RPATH is inherited by
// everything loaded below it; a loader with DT_RUNPATH ignores the RPATH
// chain altogether.
func TestRpathInheritanceRules(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host("/opt/app/lib/libC.so.1"), "libC.so.1", "fc", nil, nil)
	b.lib(r.host("/opt/app/lib/libA.so.1"), "libA.so.1", "fa", []string{"fc"}, []string{r.host("/opt/app/lib/libC.so.1")})
	b.lib(r.host("/opt/app/lib2/libR.so.1"), "libR.so.1", "fr", []string{"fc"}, []string{r.host("/opt/app/lib/libC.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/nonexistent")
	libA := []string{r.host("/opt/app/lib/libA.so.1")}
	libR := []string{r.host("/opt/app/lib2/libR.so.1")}
	b.prog(r.host("/opt/app/bin/runpath"), []string{"fa"}, libA, "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
	b.prog(r.host("/opt/app/bin/rpath"), []string{"fa"}, libA, "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
	b.prog(r.host("/opt/app/bin/rpath-over-runpath"), []string{"fr"}, libR, "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib:$ORIGIN/../lib2")

	t.Run("runpath is not inherited", func(t *testing.T) {
		res := r.closure(Options{}, "/opt/app/bin/runpath")
		wantNeeds(t, res, "/opt/app/bin/runpath", "/opt/app/lib/libA.so.1", mergedLoader)
		wantMissing(t, res, Missing{Object: "/opt/app/lib/libA.so.1", Soname: "libC.so.1", Reason: "not found"})
	})
	t.Run("rpath is inherited", func(t *testing.T) {
		res := r.closure(Options{}, "/opt/app/bin/rpath")
		wantNeeds(t, res, "/opt/app/lib/libA.so.1", "/opt/app/lib/libC.so.1")
		wantMissing(t, res)
	})
	t.Run("a loader with runpath ignores the rpath chain", func(t *testing.T) {
		res := r.closure(Options{}, "/opt/app/bin/rpath-over-runpath")
		wantNeeds(t, res, "/opt/app/bin/rpath-over-runpath", "/opt/app/lib2/libR.so.1", mergedLoader)
		wantMissing(t, res, Missing{Object: "/opt/app/lib2/libR.so.1", Soname: "libC.so.1", Reason: "not found"})
	})
}

// The same program on a usr-merged and on a split root: the library is
// found in the default directory /lib/x86_64-linux-gnu, and the merged
// root's /lib symlink must be part of the closure.
func TestUsrMergedAndSplitRoots(t *testing.T) {
	for _, merged := range []bool{true, false} {
		t.Run(fmt.Sprintf("merged=%v", merged), func(t *testing.T) {
			b := newBuilder(t)
			r := newDebianRoot(t, b, merged)
			b.lib(r.host(r.libdir+"/libfoo.so.1"), "libfoo.so.1", "ff", nil, nil)
			sbin := "/sbin"
			if merged {
				sbin = "/usr/sbin"
			}
			b.prog(r.host(sbin+"/tool"), []string{"ff"}, []string{r.host(r.libdir + "/libfoo.so.1")})
			res := r.closure(Options{}, "/sbin/tool")
			if merged {
				wantFiles(t, res,
					File{Path: "/sbin", Kind: Symlink, Target: "usr/sbin"},
					File{Path: "/usr/sbin/tool", Kind: Regular},
					File{Path: "/lib", Kind: Symlink, Target: "usr/lib"},
					File{Path: mergedLibdir + "/libfoo.so.1", Kind: Regular},
				)
				wantNeeds(t, res, "/usr/sbin/tool", mergedLoader, mergedLibdir+"/libfoo.so.1")
			} else {
				wantFiles(t, res,
					File{Path: "/sbin/tool", Kind: Regular},
					File{Path: "/lib64/ld-linux-x86-64.so.2", Kind: Symlink, Target: "/lib/" + triplet + "/ld-linux-x86-64.so.2"},
					File{Path: "/lib/" + triplet + "/ld-linux-x86-64.so.2", Kind: Regular},
					File{Path: "/lib/" + triplet + "/libfoo.so.1", Kind: Regular},
				)
				wantNoFile(t, res, "/lib", "/sbin")
			}
			wantMissing(t, res)
			checkInsideRoot(t, r, res)
		})
	}
	t.Run("upstream layout", func(t *testing.T) {
		b := newBuilder(t)
		r := newUpstreamRoot(t, b)
		b.lib(r.host("/usr/lib64/libfoo.so.1"), "libfoo.so.1", "ff", nil, nil)
		b.prog(r.host("/usr/bin/tool"), []string{"ff"}, []string{r.host("/usr/lib64/libfoo.so.1")})
		res := r.closure(Options{}, "/usr/bin/tool")
		wantFiles(t, res,
			File{Path: "/lib64", Kind: Symlink, Target: "usr/lib64"},
			File{Path: "/usr/lib64/ld-linux-x86-64.so.2", Kind: Regular},
			File{Path: "/usr/lib64/libfoo.so.1", Kind: Regular},
		)
		wantNeeds(t, res, "/usr/bin/tool", "/usr/lib64/ld-linux-x86-64.so.2", "/usr/lib64/libfoo.so.1")
		wantMissing(t, res)
	})
}

// ReaR #3064: a program reached only through a symlink somewhere else
// (/usr/lib/systemd/systemd-sysv-install -> ../../../usr/sbin/chkconfig)
// must bring the libraries nothing else needs.
func TestProgramReachedThroughSymlink(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host(mergedLibdir+"/libpopt.so.0.0.2"), "libpopt.so.0", "fp", nil, nil)
	r.symlink(mergedLibdir+"/libpopt.so.0", "libpopt.so.0.0.2")
	b.prog(r.host("/usr/sbin/chkconfig"), []string{"fp"}, []string{r.host(mergedLibdir + "/libpopt.so.0.0.2")})
	r.symlink("/usr/lib/systemd/systemd-sysv-install", "../../../usr/sbin/chkconfig")
	r.symlink("/usr/lib/x/tool", "../../sbin/chkconfig")

	res := r.closure(Options{}, "/usr/lib/systemd/systemd-sysv-install", "/usr/lib/x/tool")
	wantFiles(t, res,
		File{Path: "/usr/lib/systemd/systemd-sysv-install", Kind: Symlink, Target: "../../../usr/sbin/chkconfig"},
		File{Path: "/usr/lib/x/tool", Kind: Symlink, Target: "../../sbin/chkconfig"},
		File{Path: "/usr/sbin/chkconfig", Kind: Regular},
		File{Path: "/lib", Kind: Symlink, Target: "usr/lib"},
		File{Path: mergedLibdir + "/libpopt.so.0", Kind: Symlink, Target: "libpopt.so.0.0.2"},
		File{Path: mergedLibdir + "/libpopt.so.0.0.2", Kind: Regular},
	)
	wantNeeds(t, res, "/usr/sbin/chkconfig", mergedLoader, mergedLibdir+"/libpopt.so.0.0.2")
	wantMissing(t, res)
	checkInsideRoot(t, r, res)
}

// An executed program's $ORIGIN is its real directory (the loader reads
// /proc/self/exe), so /usr/bin/tool -> /opt/app/bin/tool with RUNPATH
// $ORIGIN/../lib works — `ldd /usr/bin/tool` would say "not found", as it
// does for /usr/bin/java on Debian. A library loaded by path keeps the
// directory of that path, symlinks unresolved.
func TestOriginOfSymlinkedProgram(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host("/opt/app/lib/libjli.so"), "libjli.so", "fj", nil, nil)
	b.prog(r.host("/opt/app/bin/tool"), []string{"fj"}, []string{r.host("/opt/app/lib/libjli.so")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
	r.symlink("/usr/bin/tool", "/etc/alternatives/tool")
	r.symlink("/etc/alternatives/tool", "/opt/app/bin/tool")

	res := r.closure(Options{}, "/usr/bin/tool")
	wantNeeds(t, res, "/opt/app/bin/tool", "/opt/app/lib/libjli.so", mergedLoader)
	wantFiles(t, res,
		File{Path: "/usr/bin/tool", Kind: Symlink, Target: "/etc/alternatives/tool"},
		File{Path: "/etc/alternatives/tool", Kind: Symlink, Target: "/opt/app/bin/tool"},
	)
	wantMissing(t, res)

	// A library given by a symlinked path: $ORIGIN is the link's directory.
	b.lib(r.host("/usr/lib/plugins/libdep.so.1"), "libdep.so.1", "fd", nil, nil)
	b.lib(r.host("/opt/plug/libplug.so.1"), "libplug.so.1", "fq", []string{"fd"}, []string{r.host("/usr/lib/plugins/libdep.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN")
	r.symlink("/usr/lib/plugins/libplug.so", "/opt/plug/libplug.so.1")
	res = r.closure(Options{}, "/usr/lib/plugins/libplug.so")
	wantNeeds(t, res, "/opt/plug/libplug.so.1", "/usr/lib/plugins/libdep.so.1")
	wantMissing(t, res)
}

// An ld.so.cache written by the real ldconfig, in each of its formats, is
// what finds libraries in directories only ld.so.conf names; ld.so never
// reads ld.so.conf itself, so a cache built before a directory was added
// does not find it. Without any cache the ld.so.conf directories stand in.
func TestLdconfigCache(t *testing.T) {
	for _, format := range []string{"new", "old", "compat"} {
		t.Run(format, func(t *testing.T) {
			b := newBuilder(t)
			r := newDebianRoot(t, b, true)
			r.write("/etc/ld.so.conf", "# comment\ninclude ld.so.conf.d/*.conf\n")
			r.write("/etc/ld.so.conf.d/app.conf", "/opt/cached # trailing comment\n")
			b.lib(r.host("/opt/cached/libcached.so.1"), "libcached.so.1", "fc", nil, nil)
			b.lib(r.host("/opt/later/liblater.so.1"), "liblater.so.1", "fl", nil, nil)
			b.prog(r.host("/usr/bin/prog"), []string{"fc", "fl"},
				[]string{r.host("/opt/cached/libcached.so.1"), r.host("/opt/later/liblater.so.1")})
			r.ldconfig(format)
			r.write("/etc/ld.so.conf.d/later.conf", "/opt/later\n")

			rs := r.resolver(Options{})
			if rs.cache == nil || rs.cache.format != format {
				t.Fatalf("cache = %+v, want format %s", rs.cache, format)
			}
			res, err := rs.Closure("/usr/bin/prog")
			if err != nil {
				t.Fatal(err)
			}
			wantNeeds(t, res, "/usr/bin/prog", mergedLoader, "/opt/cached/libcached.so.1")
			wantMissing(t, res, Missing{Object: "/usr/bin/prog", Soname: "liblater.so.1", Reason: "not found"})

			if err := os.Remove(r.host("/etc/ld.so.cache")); err != nil {
				t.Fatal(err)
			}
			res = r.closure(Options{}, "/usr/bin/prog")
			wantNeeds(t, res, "/usr/bin/prog", mergedLoader, "/opt/cached/libcached.so.1", "/opt/later/liblater.so.1")
			wantMissing(t, res)
		})
	}
}

// glibc-hwcaps: the cache and every search directory prefer the best
// subdirectory; the closure also holds what less capable CPUs load.
func TestGlibcHwcaps(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	r.write("/etc/ld.so.conf", "/opt/cached\n")
	b.lib(r.host(mergedLibdir+"/libv3dep.so.1"), "libv3dep.so.1", "fv3", nil, nil)
	b.lib(r.host("/opt/cached/glibc-hwcaps/x86-64-v3/libhw.so.1"), "libhw.so.1", "fh", []string{"fv3"},
		[]string{r.host(mergedLibdir + "/libv3dep.so.1")})
	b.lib(r.host("/opt/cached/libhw.so.1"), "libhw.so.1", "fh", nil, nil)
	b.lib(r.host("/opt/app/lib/glibc-hwcaps/x86-64-v2/libA.so.1"), "libA.so.1", "fa", nil, nil)
	b.lib(r.host("/opt/app/lib/libA.so.1"), "libA.so.1", "fa", nil, nil)
	b.prog(r.host("/opt/app/bin/prog"), []string{"fh", "fa"},
		[]string{r.host("/opt/cached/libhw.so.1"), r.host("/opt/app/lib/libA.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
	r.ldconfig("new")

	rs := r.resolver(Options{})
	if got := rs.cache.byName["libhw.so.1"]; len(got) != 2 || got[0].hwcaps != "x86-64-v3" {
		t.Fatalf("cache entries for libhw.so.1: %+v", got)
	}
	res, err := rs.Closure("/opt/app/bin/prog")
	if err != nil {
		t.Fatal(err)
	}
	wantNeeds(t, res, "/opt/app/bin/prog", mergedLoader,
		"/opt/app/lib/glibc-hwcaps/x86-64-v2/libA.so.1", "/opt/cached/glibc-hwcaps/x86-64-v3/libhw.so.1")
	wantNeeds(t, res, "/opt/cached/glibc-hwcaps/x86-64-v3/libhw.so.1", mergedLibdir+"/libv3dep.so.1")
	wantFiles(t, res,
		File{Path: "/opt/cached/libhw.so.1", Kind: Regular},
		File{Path: "/opt/app/lib/libA.so.1", Kind: Regular},
		File{Path: mergedLibdir + "/libv3dep.so.1", Kind: Regular},
	)
	wantMissing(t, res)
}

func TestMissingSoname(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	elsewhere := t.TempDir() + "/libnothere.so.1"
	b.lib(elsewhere, "libnothere.so.1", "fn", nil, nil)
	b.prog(r.host("/usr/bin/prog"), []string{"fn"}, []string{elsewhere})
	res := r.closure(Options{}, "/usr/bin/prog")
	wantMissing(t, res, Missing{Object: "/usr/bin/prog", Soname: "libnothere.so.1", Reason: "not found"})
	wantFiles(t, res, File{Path: "/usr/bin/prog", Kind: Regular}, File{Path: mergedLoader, Kind: Regular})

	// A missing interpreter is reported, not an error.
	if err := os.Remove(r.host(mergedLoader)); err != nil {
		t.Fatal(err)
	}
	res = r.closure(Options{}, "/usr/bin/prog")
	wantMissing(t, res,
		Missing{Object: "/usr/bin/prog", Soname: "/lib64/ld-linux-x86-64.so.2", Reason: "interpreter"},
		Missing{Object: "/usr/bin/prog", Soname: "libnothere.so.1", Reason: "not found"})
}

func TestSymlinkLoops(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	r.symlink("/usr/bin/a", "b")
	r.symlink("/usr/bin/b", "/bin/a")
	_, err := r.resolver(Options{}).Closure("/usr/bin/a")
	if err == nil || !isLoop(err) || !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("err = %v, want a LoopError", err)
	}
	for _, want := range []string{"/usr/bin/a -> b", "/usr/bin/b -> /bin/a", "/bin -> usr/bin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// A library candidate that loops is no error: ld.so gets ELOOP, gives
	// up on that search list (here the RUNPATH, /opt/good included) and
	// goes on with the default directories.
	b.lib(r.host("/opt/good/libL.so.1"), "libL.so.1", "fl", nil, nil)
	b.lib(r.host(mergedLibdir+"/libL.so.1"), "libL.so.1", "fl", nil, nil)
	r.symlink("/opt/loop/libL.so.1", "libL.so.1")
	b.prog(r.host("/usr/bin/prog"), []string{"fl"}, []string{r.host("/opt/good/libL.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/loop:/opt/good")
	res := r.closure(Options{}, "/usr/bin/prog")
	wantNeeds(t, res, "/usr/bin/prog", mergedLoader, mergedLibdir+"/libL.so.1")
	wantMissing(t, res)
}

// Candidates of another class or machine are skipped; another byte order
// or a file that is not ELF stops the search with an error, as in
// open_verify.
func TestCandidateABIChecks(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	r.write("/opt/a/libX.so.1", string(elf32Header()))
	b.lib(r.host("/opt/b/libX.so.1"), "libX.so.1", "fx", nil, nil)
	aarch64 := uint16(183)
	patchELF(t, r.host("/opt/b/libX.so.1"), &aarch64, nil)
	b.lib(r.host("/opt/c/libX.so.1"), "libX.so.1", "fx", nil, nil)
	b.prog(r.host("/usr/bin/x"), []string{"fx"}, []string{r.host("/opt/c/libX.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/a:/opt/b:/opt/c")
	b.prog(r.host("/usr/bin/x-wrong"), []string{"fx"}, []string{r.host("/opt/c/libX.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/a:/opt/b")

	b.lib(r.host("/opt/d/libY.so.1"), "libY.so.1", "fy", nil, nil)
	big := byte(2)
	patchELF(t, r.host("/opt/d/libY.so.1"), nil, &big)
	b.lib(r.host("/opt/e/libY.so.1"), "libY.so.1", "fy", nil, nil)
	r.write("/opt/f/libY.so.1", "/* GNU ld script */\nINPUT(libY.so.1)\n")
	b.prog(r.host("/usr/bin/y-order"), []string{"fy"}, []string{r.host("/opt/e/libY.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/d:/opt/e")
	b.prog(r.host("/usr/bin/y-script"), []string{"fy"}, []string{r.host("/opt/e/libY.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/f:/opt/e")

	res := r.closure(Options{}, "/usr/bin/x", "/usr/bin/x-wrong", "/usr/bin/y-order", "/usr/bin/y-script")
	wantNeeds(t, res, "/usr/bin/x", mergedLoader, "/opt/c/libX.so.1")
	wantMissing(t, res,
		Missing{Object: "/usr/bin/x-wrong", Soname: "libX.so.1", Reason: "wrong ELF class"},
		Missing{Object: "/usr/bin/y-order", Soname: "libY.so.1", Reason: "/opt/d/libY.so.1: ELF file data encoding not little-endian"},
		Missing{Object: "/usr/bin/y-script", Soname: "libY.so.1", Reason: "/opt/f/libY.so.1: invalid ELF header"},
	)
	wantNoFile(t, res, "/opt/a/libX.so.1", "/opt/b/libX.so.1", "/opt/e/libY.so.1")
}

// Scripts need their interpreter, through symlinks, and with env(1) also
// the command it runs; other files need nothing.
func TestScripts(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host(mergedLibdir+"/libdash.so.1"), "libdash.so.1", "fd", nil, nil)
	b.prog(r.host("/usr/bin/dash"), []string{"fd"}, []string{r.host(mergedLibdir + "/libdash.so.1")})
	r.symlink("/usr/bin/sh", "dash")
	b.prog(r.host("/usr/bin/env"), nil, nil)
	b.prog(r.host("/usr/bin/bash"), nil, nil)
	r.write("/usr/local/bin/s", "#!/bin/sh -e\necho hi\n")
	r.write("/usr/local/bin/e", "#!/usr/bin/env -S bash -e\necho hi\n")
	r.write("/usr/local/bin/nested", "#! /usr/local/bin/s\n")
	r.write("/usr/local/bin/broken", "#!/bin/nothere\n")
	r.write("/etc/data", "just data\n")

	res := r.closure(Options{}, "/usr/local/bin/s", "/usr/local/bin/e", "/usr/local/bin/nested", "/usr/local/bin/broken", "/etc/data")
	wantFiles(t, res,
		File{Path: "/usr/local/bin/s", Kind: Regular},
		File{Path: "/bin", Kind: Symlink, Target: "usr/bin"},
		File{Path: "/usr/bin/sh", Kind: Symlink, Target: "dash"},
		File{Path: "/usr/bin/dash", Kind: Regular},
		File{Path: mergedLibdir + "/libdash.so.1", Kind: Regular},
		File{Path: "/usr/bin/env", Kind: Regular},
		File{Path: "/usr/bin/bash", Kind: Regular},
		File{Path: "/etc/data", Kind: Regular},
	)
	wantNeeds(t, res, "/usr/local/bin/s", "/usr/bin/dash")
	wantNeeds(t, res, "/usr/local/bin/e", "/usr/bin/bash", "/usr/bin/env")
	wantNeeds(t, res, "/usr/local/bin/nested", "/usr/local/bin/s")
	wantNeeds(t, res, "/usr/bin/dash", mergedLoader, mergedLibdir+"/libdash.so.1")
	if _, ok := res.Needs["/etc/data"]; ok {
		t.Error("a data file has needs")
	}
	wantMissing(t, res, Missing{Object: "/usr/local/bin/broken", Soname: "/bin/nothere", Reason: "interpreter"})
}

// dlopenNoteSource returns C for an object carrying a .note.dlopen note
// with the given JSON.
func dlopenNoteSource(json string, calls []string) string {
	size := (len(json) + 1 + 3) &^ 3
	quoted := strings.ReplaceAll(json, `"`, `\"`)
	return fmt.Sprintf(`
__attribute__((used, section(".note.dlopen"), aligned(4)))
static const struct { unsigned int namesz, descsz, type; char name[4]; char desc[%d]; } dlopen_note = {
	4, %d, 0x407c0c0a, "FDO", "%s"
};
`, size, len(json)+1, quoted) + source("", calls, true)
}

func TestDlopenNote(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host(mergedLibdir+"/libzdep.so.1"), "libzdep.so.1", "fz", nil, nil)
	b.lib(r.host(mergedLibdir+"/libzstd.so.1"), "libzstd.so.1", "fzstd", []string{"fz"}, []string{r.host(mergedLibdir + "/libzdep.so.1")})
	json := `[{"feature":"zstd","description":"Support for zstd","priority":"recommended","soname":["libzstd-new.so.2","libzstd.so.1"]},` +
		`{"feature":"fido2","priority":"suggested","soname":["libfido2.so.1"]}]`
	b.cc(r.host("/usr/bin/prog"), dlopenNoteSource(json, nil), "-pie")

	res := r.closure(Options{}, "/usr/bin/prog")
	want := []Optional{
		{Object: "/usr/bin/prog", Feature: "fido2", Priority: PrioritySuggested, Sonames: []string{"libfido2.so.1"}},
		{Object: "/usr/bin/prog", Feature: "zstd", Priority: PriorityRecommended, Sonames: []string{"libzstd-new.so.2", "libzstd.so.1"}, Path: mergedLibdir + "/libzstd.so.1"},
	}
	if fmt.Sprint(res.Optional) != fmt.Sprint(want) {
		t.Errorf("Optional = %+v\nwant       %+v", res.Optional, want)
	}
	wantFiles(t, res,
		File{Path: mergedLibdir + "/libzstd.so.1", Kind: Regular},
		File{Path: mergedLibdir + "/libzdep.so.1", Kind: Regular},
	)
	wantNeeds(t, res, "/usr/bin/prog", mergedLoader)
	wantNeeds(t, res, mergedLibdir+"/libzstd.so.1", mergedLibdir+"/libzdep.so.1")
	wantMissing(t, res)
}

// A library that only a dlopen() loads may lack a dependency of its own:
// the program starts and that dlopen() fails, so the need is marked Dlopen.
// The same library needed at startup by another program is a hard miss.
func TestDlopenOnlyMissing(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	elsewhere := t.TempDir() + "/libxxhash.so.0"
	b.lib(elsewhere, "libxxhash.so.0", "fx", nil, nil)
	b.lib(r.host(mergedLibdir+"/liblz4.so.1"), "liblz4.so.1", "flz4", []string{"fx"}, []string{elsewhere})
	json := `[{"feature":"lz4","priority":"recommended","soname":["liblz4.so.1"]}]`
	b.cc(r.host("/usr/bin/journal"), dlopenNoteSource(json, nil), "-pie")
	b.prog(r.host("/usr/bin/lz4"), []string{"flz4"}, []string{r.host(mergedLibdir + "/liblz4.so.1")})

	lz4 := Missing{Object: mergedLibdir + "/liblz4.so.1", Soname: "libxxhash.so.0", Reason: "not found"}
	dl := lz4
	dl.Dlopen = true
	wantMissing(t, r.closure(Options{}, "/usr/bin/journal"), dl)
	wantMissing(t, r.closure(Options{}, "/usr/bin/lz4"), lz4)
	// One closure of both: missed at startup in one process, so hard.
	wantMissing(t, r.closure(Options{}, "/usr/bin/journal", "/usr/bin/lz4"), lz4)
	wantMissing(t, r.closure(Options{}, "/usr/bin/lz4", "/usr/bin/journal"), lz4)
}

func TestWellKnownDlopen(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	r.write("/etc/nsswitch.conf", "# test\npasswd: files mysvc [NOTFOUND=return] other\nhosts:  files dns\n")
	b.lib(r.host(r.libdir+"/libgcc_s.so.1"), "libgcc_s.so.1", "fg", nil, nil)
	b.lib(r.host(r.libdir+"/libsvcdep.so.1"), "libsvcdep.so.1", "fs", nil, nil)
	b.lib(r.host(r.libdir+"/libnss_mysvc.so.2"), "libnss_mysvc.so.2", "fn", []string{"fs"}, []string{r.host(r.libdir + "/libsvcdep.so.1")})
	b.prog(r.host("/usr/bin/prog"), []string{"libc"}, []string{r.host(r.libdir + "/libc.so.6")})

	res := r.closure(Options{}, "/usr/bin/prog")
	if len(res.Optional) != 0 {
		t.Errorf("Optional without WellKnownDlopen: %+v", res.Optional)
	}
	res = r.closure(Options{WellKnownDlopen: true}, "/usr/bin/prog")
	libc := mergedLibdir + "/libc.so.6"
	got := map[string]string{}
	for _, o := range res.Optional {
		if o.Object != libc {
			t.Errorf("optional %+v not attributed to libc", o)
		}
		got[o.Feature] = o.Path
	}
	want := map[string]string{
		"libgcc_s":  mergedLibdir + "/libgcc_s.so.1",
		"nss-files": "",
		"nss-mysvc": mergedLibdir + "/libnss_mysvc.so.2",
		"nss-other": "",
		"nss-dns":   "",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("optional = %v, want %v", got, want)
	}
	wantFiles(t, res, File{Path: mergedLibdir + "/libsvcdep.so.1", Kind: Regular})
	wantMissing(t, res)
}

// DF_1_NODEFLIB keeps the loader out of the default directories and of
// cache entries inside them, but not out of other cache entries.
func TestNodeflib(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	r.write("/etc/ld.so.conf", "/opt/cached\n")
	b.lib(r.host(r.libdir+"/libfoo.so.1"), "libfoo.so.1", "ff", nil, nil)
	b.lib(r.host("/opt/cached/libbar.so.1"), "libbar.so.1", "fb", nil, nil)
	b.prog(r.host("/usr/bin/prog"), []string{"ff", "fb"},
		[]string{r.host(r.libdir + "/libfoo.so.1"), r.host("/opt/cached/libbar.so.1")}, "-Wl,-z,nodefaultlib")
	r.ldconfig("new")
	res := r.closure(Options{}, "/usr/bin/prog")
	wantNeeds(t, res, "/usr/bin/prog", mergedLoader, "/opt/cached/libbar.so.1")
	wantMissing(t, res, Missing{Object: "/usr/bin/prog", Soname: "libfoo.so.1", Reason: "not found"})
}

// $LIB, $PLATFORM and $ORIGIN in search paths and in needed names.
func TestDynamicStringTokens(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	b.lib(r.host("/opt/lib/"+triplet+"/x/libl.so.1"), "libl.so.1", "fl", nil, nil)
	b.lib(r.host("/opt/x86_64/y/libp.so.1"), "libp.so.1", "fp", nil, nil)
	b.lib(r.host("/opt/$FOO/z/libf.so.1"), "libf.so.1", "ff", nil, nil)
	b.lib(r.host("/opt/app/lib/libslash.so.1"), "$ORIGIN/../lib/libslash.so.1", "fs", nil, nil)
	deps := []string{r.host("/opt/lib/" + triplet + "/x/libl.so.1"), r.host("/opt/x86_64/y/libp.so.1"),
		r.host("/opt/$FOO/z/libf.so.1"), r.host("/opt/app/lib/libslash.so.1")}
	b.prog(r.host("/opt/app/bin/prog"), []string{"fl", "fp", "ff", "fs"}, deps,
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/$LIB/x:/opt/${PLATFORM}/y:/opt/$FOO/z")
	res := r.closure(Options{}, "/opt/app/bin/prog")
	wantNeeds(t, res, "/opt/app/bin/prog", "/opt/$FOO/z/libf.so.1", "/opt/app/lib/libslash.so.1",
		"/opt/lib/"+triplet+"/x/libl.so.1", "/opt/x86_64/y/libp.so.1", mergedLoader)
	wantMissing(t, res)

	b.lib(r.host("/opt/custom/x/libl.so.1"), "libl.so.1", "fl", nil, nil)
	b.lib(r.host("/opt/haswell/y/libp.so.1"), "libp.so.1", "fp", nil, nil)
	res = r.closure(Options{Lib: "custom", Platform: "haswell"}, "/opt/app/bin/prog")
	wantNeeds(t, res, "/opt/app/bin/prog", "/opt/$FOO/z/libf.so.1", "/opt/app/lib/libslash.so.1",
		"/opt/custom/x/libl.so.1", "/opt/haswell/y/libp.so.1", mergedLoader)
}

// On a root without multiarch directories, $LIB is lib64 on x86_64.
func TestUpstreamLib(t *testing.T) {
	b := newBuilder(t)
	r := newUpstreamRoot(t, b)
	b.lib(r.host("/opt/lib64/libl.so.1"), "libl.so.1", "fl", nil, nil)
	b.prog(r.host("/usr/bin/prog"), []string{"fl"}, []string{r.host("/opt/lib64/libl.so.1")},
		"-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/$LIB")
	res := r.closure(Options{}, "/usr/bin/prog")
	wantNeeds(t, res, "/usr/bin/prog", "/opt/lib64/libl.so.1", "/usr/lib64/ld-linux-x86-64.so.2")
}

// Several programs in one call share one answer; bad inputs are errors
// naming the path.
func TestClosureInputs(t *testing.T) {
	b := newBuilder(t)
	r := newDebianRoot(t, b, true)
	rs := r.resolver(Options{})
	for _, p := range []string{"relative/path", "/usr/bin/nothere", "/usr"} {
		_, err := rs.Closure(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Closure(%q) error = %v, want one naming the path", p, err)
		}
	}
	if _, err := rs.Closure("/usr/bin/nothere"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing input: %v is not ErrNotExist", err)
	}
	if _, err := NewResolver(r.host("/nothere"), Options{}); err == nil {
		t.Error("NewResolver on a missing root succeeded")
	}
	r.write("/etc/ld.so.cache", "garbage")
	if _, err := NewResolver(r.dir, Options{}); err == nil || !strings.Contains(err.Error(), "ld.so.cache") {
		t.Errorf("corrupt cache: %v", err)
	}
}
