package ldso

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Options adjust what the resolver assumes about the loader of the root.
// The zero value derives everything from the root and the ELF files.
type Options struct {
	// Platform is the value of $PLATFORM (the kernel's AT_PLATFORM).
	// Empty means the fixed value of the machine where there is one
	// ("x86_64", "i686", "aarch64"); on other machines path elements
	// using $PLATFORM are then dropped.
	Platform string
	// Lib overrides the expansion of $LIB ("lib/x86_64-linux-gnu" on
	// Debian's x86_64, "lib64" upstream).
	Lib string
	// SystemDirs overrides the loader's default directories, in order.
	SystemDirs []string
	// WellKnownDlopen also adds the libraries glibc itself loads with
	// dlopen(): libgcc_s.so.1 (needed by pthread_cancel and pthread_exit
	// to unwind) and the NSS modules named in /etc/nsswitch.conf, for
	// every program that links libc.
	WellKnownDlopen bool
}

// Resolver answers what programs under one root need. It reads the root's
// loader configuration once; it is immutable afterwards and safe for
// concurrent use. Every Closure call reads the files it needs afresh.
type Resolver struct {
	root     string // what the root is, for messages: its directory
	fsys     FS
	opts     Options
	cache    *ldCache // nil: the root has no /etc/ld.so.cache
	confDirs []string // from /etc/ld.so.conf, used only without a cache
	nss      []string // NSS services, with WellKnownDlopen
}

// Paths of the loader configuration inside the root.
const (
	ldSoCache  = "/etc/ld.so.cache"
	ldSoConf   = "/etc/ld.so.conf"
	nsswitch   = "/etc/nsswitch.conf"
	maxCache   = 64 << 20
	defaultEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// NewResolver reads the loader configuration of the root directory: its
// /etc/ld.so.cache, /etc/ld.so.conf (with includes) and, with
// WellKnownDlopen, /etc/nsswitch.conf. root may be "/".
func NewResolver(root string, opts Options) (*Resolver, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", root)
	}
	return NewResolverFS(DirFS(abs), abs, opts)
}

// NewResolverFS is NewResolver for a root read through fsys (an initrd
// image, for example). name says what the root is in error messages.
func NewResolverFS(fsys FS, name string, opts Options) (*Resolver, error) {
	for _, d := range opts.SystemDirs {
		if !strings.HasPrefix(d, "/") {
			return nil, fmt.Errorf("system directory %q is not absolute", d)
		}
	}
	r := &Resolver{root: name, fsys: fsys, opts: opts}
	// The caller keeps its slice; a nil one means "derive", an empty one
	// "none".
	r.opts.SystemDirs = slices.Clone(opts.SystemDirs)
	v := newView(fsys)
	b, _, err := v.readFile(ldSoCache, maxCache)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%s in %s: %w", ldSoCache, name, err)
	default:
		if r.cache, err = parseCache(b); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", ldSoCache, name, err)
		}
	}
	// The loader reads only the cache; ld.so.conf matters only when there
	// is none (see the package documentation).
	if r.cache == nil {
		if r.confDirs, err = v.parseLdSoConf(ldSoConf); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", ldSoConf, name, err)
		}
	}
	if opts.WellKnownDlopen {
		if r.nss, err = v.parseNsswitch(nsswitch); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", nsswitch, name, err)
		}
	}
	return r, nil
}

// Root returns the absolute root directory (or the name given to
// NewResolverFS).
func (r *Resolver) Root() string { return r.root }

// Result is the closure of some files.
type Result struct {
	// Files is everything to copy, sorted by path: the inputs, their
	// interpreters and libraries, every symlink met on the way to each
	// (directory links such as /lib -> usr/lib included) and the final
	// files.
	Files []File
	// Missing lists what nothing satisfies: a DT_NEEDED name, an
	// interpreter, a "#!/usr/bin/env" command.
	Missing []Missing
	// Optional lists the dlopen() dependencies looked for, found or not.
	Optional []Optional
	// Needs maps each resolved object (by real path) to the real paths of
	// what it needs directly: its interpreter and DT_NEEDED libraries, as
	// loaded on a CPU supporting every glibc-hwcaps level; for a script,
	// its interpreter (and an env(1) command). Union over all the
	// programs it was loaded in. dlopen() dependencies are not here but
	// in Optional; objects that need nothing have an empty list.
	Needs map[string][]string
	// VersionNeeds maps each resolved object (by real path) to the symbol
	// versions it needs, each with the real path of the library that
	// satisfies its file name in the process (union over processes).
	VersionNeeds map[string][]VersionNeed
	// Defines maps each resolved object that has DT_VERDEF to the
	// version names it defines; an object without is not in the map and
	// satisfies any version (as ld.so accepts it).
	Defines map[string][]string
	// Versions lists the version needs the loaded libraries do not
	// define: ld.so refuses to start such a program ("version `GLIBC_2.38'
	// not found"). Weak needs are never listed.
	Versions []VersionMissing
}

// Missing is one need nothing satisfies.
type Missing struct {
	Object string // real path of the object that needs it
	Soname string // the name as the object states it
	Reason string // what the loader would report
	// Dlopen is set when the object is loaded only by dlopen() (a
	// .note.dlopen dependency, or what glibc loads itself) in every
	// program that reaches it: the program starts, and that dlopen()
	// fails.
	Dlopen bool
}

// Optional is one library a program may dlopen().
type Optional struct {
	Object   string   // real path of the object that would dlopen it
	Feature  string   // feature name from .note.dlopen, or "nss-SERVICE", "libgcc_s"
	Priority string   // PriorityRequired, PriorityRecommended, PrioritySuggested
	Sonames  []string // alternatives, in order of preference
	Path     string   // real path of the first one found, "" when none was
}

// Closure resolves everything the given files need, each as its own
// process: ELF programs and libraries with their interpreters and
// libraries, scripts with their interpreters. Paths are absolute as seen
// inside the root. A path that does not exist or cannot be resolved is an
// error; what the files need but the root lacks is reported in Missing.
func (r *Resolver) Closure(paths ...string) (*Result, error) {
	c := newClosure(r)
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%s: not an absolute path inside the root", p)
		}
		if _, err := c.program(p, 0); err != nil {
			return nil, err
		}
	}
	return c.result(), nil
}

func newClosure(r *Resolver) *closure {
	return &closure{
		r:        r,
		v:        newView(r.fsys),
		configs:  map[abi]*abiConfig{},
		heads:    map[string]headResult{},
		objects:  map[string]objResult{},
		done:     map[string]bool{},
		files:    map[string]File{},
		missing:  map[[2]string]Missing{},
		optional: map[string]Optional{},
		needs:    map[string]map[string]bool{},

		versionNeeds:   map[string]map[VersionNeed]bool{},
		versionMissing: map[VersionMissing]bool{},
		defines:        map[string][]string{},
	}
}

func (c *closure) result() *Result {
	res := &Result{Needs: make(map[string][]string, len(c.needs))}
	for _, f := range c.files {
		res.Files = append(res.Files, f)
	}
	sort.Slice(res.Files, func(i, j int) bool { return res.Files[i].Path < res.Files[j].Path })
	for _, m := range c.missing {
		res.Missing = append(res.Missing, m)
	}
	sort.Slice(res.Missing, func(i, j int) bool {
		a, b := res.Missing[i], res.Missing[j]
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Soname < b.Soname
	})
	keys := make([]string, 0, len(c.optional))
	for k := range c.optional {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		res.Optional = append(res.Optional, c.optional[k])
	}
	for obj, set := range c.needs {
		list := make([]string, 0, len(set))
		for n := range set {
			list = append(list, n)
		}
		sort.Strings(list)
		res.Needs[obj] = list
	}
	res.VersionNeeds = make(map[string][]VersionNeed, len(c.versionNeeds))
	for obj, set := range c.versionNeeds {
		list := make([]VersionNeed, 0, len(set))
		for n := range set {
			list = append(list, n)
		}
		sort.Slice(list, func(i, j int) bool {
			a, b := list[i], list[j]
			if a.Library != b.Library {
				return a.Library < b.Library
			}
			return a.Version < b.Version
		})
		res.VersionNeeds[obj] = list
	}
	res.Defines = c.defines
	for m := range c.versionMissing {
		// A need that is fatal at startup in one process is not merely
		// a dlopen() failure because another process dlopen()s it.
		if m.Dlopen {
			hard := m
			hard.Dlopen = false
			if c.versionMissing[hard] {
				continue
			}
		}
		res.Versions = append(res.Versions, m)
	}
	sort.Slice(res.Versions, func(i, j int) bool {
		a, b := res.Versions[i], res.Versions[j]
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		if a.Library != b.Library {
			return a.Library < b.Library
		}
		return a.Version < b.Version
	})
	return res
}

// Walk resolves p (absolute, inside the root) as the kernel would with the
// root as "/", and returns every symlink followed on the way, in order, and
// the physical path it ends at with its mode. The last component is
// followed too; a path that does not exist is an error unwrapping to
// fs.ErrNotExist, a loop a *LoopError.
func (r *Resolver) Walk(p string) (links []File, phys string, mode fs.FileMode, err error) {
	w := newView(r.fsys).walk(p)
	return w.links, w.phys, w.mode, w.err
}

// FS returns what the resolver reads the root through.
func (r *Resolver) FS() FS { return r.fsys }
