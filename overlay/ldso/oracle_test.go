package ldso

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// The oracle tests compare the resolver with ldd on whole roots: for every
// ELF file in the usual program and library directories, the set of real
// paths ldd lists (interpreter included) must equal the set reachable
// through Result.Needs, and the names ldd reports "not found" must equal
// Result.Missing. Paths are given to both as real paths: ldd on a symlink
// computes $ORIGIN from the link's directory, which is not what happens
// when the program is executed (see TestOriginOfSymlinkedProgram).

// oracleDir is a directory scanned, with whether to recurse and whether to
// take only files named like shared libraries.
type oracleDir struct {
	dir     string
	recurse bool
	soOnly  bool
}

// oracleDirs is the lab's set: every loadable ELF under /usr/bin, /usr/sbin,
// /usr/lib and /usr/libexec. On the host (whatever CI runs on, possibly
// with many more packages) the libraries are limited to the multiarch
// directory, to keep the run short.
func oracleDirs(full bool) []oracleDir {
	lib := oracleDir{"/usr/lib/x86_64-linux-gnu", false, true}
	if full {
		lib = oracleDir{"/usr/lib", true, false} // libraries, helpers, plugins
	}
	return []oracleDir{
		{"/usr/bin", false, false},
		{"/usr/sbin", false, false},
		lib,
		{"/usr/libexec", true, false},
	}
}

// lddView is an ldd run and a path normaliser for one root.
type lddView struct {
	root string
	// full selects the whole of /usr/lib (see oracleDirs).
	full bool
	// ldd runs ldd on files (paths inside the root) and returns stdout.
	ldd func(files []string) []byte
	// real maps paths inside the root to real paths inside the root.
	real func(paths []string) map[string]string
}

func TestLddOracleHost(t *testing.T) {
	ldd := testtool.Require(t, "ldd")
	lv := lddView{
		root: "/",
		ldd: func(files []string) []byte {
			out, _ := exec.Command(ldd, files...).Output() // non-zero when one is static
			return out
		},
		real: func(paths []string) map[string]string {
			m := map[string]string{}
			for _, p := range paths {
				if r, err := filepath.EvalSymlinks(p); err == nil {
					m[p] = r
				}
			}
			return m
		},
	}
	runOracle(t, lv, Options{})
}

// TestLddOracleLab runs the same comparison on the lab's debootstrapped
// Debian root, with ldd and realpath run inside it by chroot.
func TestLddOracleLab(t *testing.T) {
	chroot := testtool.Require(t, "chroot")
	for _, l := range testtool.LabReleases(t) {
		t.Run(l.Release, func(t *testing.T) { lddOracleIn(t, chroot, l.Env["LAB_ROOT"]) })
	}
}

// lddOracleIn compares the closures of every ELF file of a lab root with
// what that root's own ldd says in a chroot.
func lddOracleIn(t *testing.T, chroot, root string) {
	if _, err := os.Stat(filepath.Join(root, "usr/bin/ldd")); err != nil {
		testtool.Missing(t, "lab root without ldd: %v", err)
	}
	lv := lddView{
		full: true,
		root: root,
		ldd: func(files []string) []byte {
			out, _ := exec.Command(chroot, append([]string{root, "ldd"}, files...)...).Output()
			return out
		},
		real: func(paths []string) map[string]string {
			m := map[string]string{}
			// realpath -e fails for missing paths but prints the rest in
			// order; run it one path at a time only when that happens.
			out, err := exec.Command(chroot, append([]string{root, "realpath", "-e", "--"}, paths...)...).Output()
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if err == nil && len(lines) == len(paths) {
				for i, p := range paths {
					m[p] = lines[i]
				}
				return m
			}
			for _, p := range paths {
				if out, err := exec.Command(chroot, root, "realpath", "-e", "--", p).Output(); err == nil {
					m[p] = strings.TrimSpace(string(out))
				}
			}
			return m
		},
	}
	runOracle(t, lv, Options{})
}

// lddEntry is what ldd says about one file.
type lddEntry struct {
	paths   map[string]bool // listed paths (unnormalised)
	missing map[string]bool // names "=> not found"
}

// parseLdd splits ldd output for several files into entries by file.
func parseLdd(out []byte, files []string) map[string]*lddEntry {
	res := map[string]*lddEntry{}
	var cur *lddEntry
	if len(files) == 1 {
		cur = &lddEntry{paths: map[string]bool{}, missing: map[string]bool{}}
		res[files[0]] = cur
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "\t") {
			if len(files) > 1 && strings.HasSuffix(line, ":") {
				cur = &lddEntry{paths: map[string]bool{}, missing: map[string]bool{}}
				res[strings.TrimSuffix(line, ":")] = cur
			}
			continue
		}
		if cur == nil {
			continue
		}
		line = strings.TrimSpace(line)
		if name, rest, ok := strings.Cut(line, " => "); ok {
			if strings.HasPrefix(rest, "not found") {
				cur.missing[name] = true
				continue
			}
			if p, _, _ := strings.Cut(rest, " ("); strings.HasPrefix(p, "/") {
				cur.paths[p] = true
			}
			continue
		}
		// "/lib64/ld-linux-x86-64.so.2 (0x...)" is the interpreter;
		// "linux-vdso.so.1 (0x...)" is the kernel's and has no file.
		if p, _, ok := strings.Cut(line, " ("); ok && strings.HasPrefix(p, "/") {
			cur.paths[p] = true
		}
	}
	return res
}

// oracleFiles lists the real paths of the ELF files to compare.
func oracleFiles(t *testing.T, lv lddView) []string {
	var cands []string
	for _, d := range oracleDirs(lv.full) {
		host := filepath.Join(lv.root, d.dir)
		err := filepath.WalkDir(host, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() {
				if p != host && !d.recurse {
					return filepath.SkipDir
				}
				return nil
			}
			if d.soOnly && !strings.Contains(e.Name(), ".so") {
				return nil
			}
			if e.Type()&fs.ModeSymlink == 0 && !e.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(lv.root, p)
			cands = append(cands, "/"+filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	real := lv.real(cands)
	seen := map[string]bool{}
	var files []string
	for _, c := range cands {
		r, ok := real[c]
		if !ok || seen[r] {
			continue
		}
		seen[r] = true
		b := make([]byte, 18)
		f, err := os.Open(filepath.Join(lv.root, r))
		if err != nil {
			continue
		}
		n, _ := io.ReadFull(f, b)
		f.Close()
		if n == 18 && string(b[:4]) == "\x7fELF" && loadable(b) {
			files = append(files, r)
		}
	}
	sort.Strings(files)
	return files
}

// loadable reports whether an ELF header is of an executable or shared
// object: kernel modules and object files (ET_REL) under /usr/lib are not
// loaded by ld.so and ldd has nothing to say about them.
func loadable(h []byte) bool {
	typ := uint16(h[16]) | uint16(h[17])<<8
	if h[5] == 2 {
		typ = uint16(h[16])<<8 | uint16(h[17])
	}
	return typ == 2 || typ == 3
}

// knownOracleException returns why the resolver's answer for a file
// deliberately differs from ldd's, or "".
func knownOracleException(e *lddEntry, res *Result, file string) string {
	// ldd only knows the loaders present (RTLDLIST): for a program of
	// another ABI whose loader the root lacks (valgrind's i386 helpers
	// on amd64 without libc6:i386) it prints "not a dynamic executable"
	// on stderr and lists nothing. The resolver reports the missing
	// interpreter instead, which is the truth for a rescue system.
	if len(e.paths) == 0 && len(e.missing) == 0 {
		for _, m := range res.Missing {
			if m.Object == file && strings.HasPrefix(m.Reason, "interpreter:") {
				return "ldd has no loader for its ABI; the resolver reports the interpreter " + m.Soname + " missing"
			}
		}
	}
	// klibc's programs have a PT_INTERP (/lib/klibc-HASH.so, the library
	// itself mapped by the kernel) but no PT_DYNAMIC: ldd calls them "not
	// a dynamic executable", yet exec needs the interpreter, which is
	// the resolver's only answer for them.
	if len(e.paths) == 0 && len(e.missing) == 0 && len(res.Missing) == 0 {
		if deps := res.Needs[file]; len(deps) == 1 && len(res.Needs[deps[0]]) == 0 && strings.Contains(deps[0], "/klibc-") {
			return "static klibc program: ldd ignores its PT_INTERP " + deps[0]
		}
	}
	return ""
}

func runOracle(t *testing.T, lv lddView, opts Options) {
	files := oracleFiles(t, lv)
	if testing.Short() {
		var sample []string
		for i := 0; i < len(files); i += 10 {
			sample = append(sample, files[i])
		}
		files = sample
	}
	if len(files) == 0 {
		t.Fatal("no ELF files found")
	}
	r, err := NewResolver(lv.root, opts)
	if err != nil {
		t.Fatal(err)
	}

	// ldd in batches, two at a time: it is slow (a shell script that runs
	// the loader twice per file) and the machine is shared.
	const batch = 64
	entries := map[string]*lddEntry{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := 0; i < len(files); i += batch {
		part := files[i:min(i+batch, len(files))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got := parseLdd(lv.ldd(part), part)
			mu.Lock()
			for k, v := range got {
				entries[k] = v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()

	var listed []string
	for _, e := range entries {
		for p := range e.paths {
			listed = append(listed, p)
		}
	}
	real := lv.real(uniq(listed))

	checked, mismatches, exceptions := 0, 0, 0
	var report strings.Builder
	for _, f := range files {
		e := entries[f]
		if e == nil {
			t.Errorf("%s: no ldd output", f)
			continue
		}
		want := map[string]bool{}
		for p := range e.paths {
			if rp, ok := real[p]; ok {
				want[rp] = true
			} else {
				want[p] = true
			}
		}
		res, err := r.Closure(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		got := reachable(res, f)
		gotMissing := map[string]bool{}
		for _, m := range res.Missing {
			gotMissing[m.Soname] = true
		}
		checked++
		diff := setDiff(want, got, "ldd only", "resolver only") + setDiff(e.missing, gotMissing, "missing for ldd only", "missing for resolver only")
		if diff == "" {
			continue
		}
		if why := knownOracleException(e, res, f); why != "" {
			t.Logf("%s: known exception (%s):%s", f, why, diff)
			exceptions++
			continue
		}
		mismatches++
		fmt.Fprintf(&report, "%s:%s\n", f, diff)
	}
	t.Logf("oracle on %s: %d ELF files checked, %d mismatches, %d known exceptions", lv.root, checked, mismatches, exceptions)
	if mismatches > 0 {
		t.Errorf("mismatches with ldd:\n%s", report.String())
	}
}

// reachable returns the real paths reachable from start through Needs.
func reachable(res *Result, start string) map[string]bool {
	seen := map[string]bool{}
	queue := []string{start}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, n := range res.Needs[p] {
			if !seen[n] && n != start {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	return seen
}

func setDiff(a, b map[string]bool, onlyA, onlyB string) string {
	var s strings.Builder
	for _, k := range sortedKeys(a) {
		if !b[k] {
			fmt.Fprintf(&s, " [%s: %s]", onlyA, k)
		}
	}
	for _, k := range sortedKeys(b) {
		if !a[k] {
			fmt.Fprintf(&s, " [%s: %s]", onlyB, k)
		}
	}
	return s.String()
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
