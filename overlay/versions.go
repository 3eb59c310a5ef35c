package overlay

import (
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/overlay/treefs"
)

// The rule for a library the image already has (see the README, "What
// 'every library' means"): in one process a soname is one object, and
// symbol versions say whether that object serves everything loaded with
// it. The image's copy stays whenever it defines every version the added
// programs need of it: the image's own programs (/init, systemd, udev)
// were built against it, and an older copy from the root would break them
// ("version `GLIBC_2.38' not found (required by /init)"). Only when an
// added program needs a version the image's copy lacks is the root's copy
// written over it, and only if it is compatible: it defines every version
// the image's copy defines, and neither shares an interface private to
// one build (GLIBC_PRIVATE: libc with its ld.so and libm), which symbol
// versions cannot check. Otherwise the program cannot run in the image.

// versionPlan is what the overlay decides for the libraries of one
// closure that the image already holds at the same place.
type versionPlan struct {
	keep    map[string]string // root path -> why the image's copy stays
	replace map[string]string // root path -> why the root's copy replaces it
	// failing maps a program (index in applier.programs) to why it
	// cannot run in the image.
	failing map[int][]string
	// dlopen lists dlopen() dependencies that will fail to load.
	dlopen []string
}

// imageCopy is the image's object at the path of a root object.
type imageCopy struct {
	path string
	v    *ldso.Versions
	size int64
	// elsewhere: the image's loader finds it under the library's name at
	// another path than the root's file lands on, so the root's file
	// cannot take its place.
	elsewhere bool
}

// elfHeader returns the first bytes of a file of the root, nil when it
// cannot be read.
func (a *applier) elfHeader(p string) []byte {
	f, err := os.Open(a.host(p))
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	return b[:n]
}

// sameObject tells, cheaply, an image copy that is most likely the root's
// own file (the same size and version definitions): keeping it is not
// worth a note.
func (a *applier) sameObject(res *ldso.Result, o string, c imageCopy) bool {
	fi, err := os.Lstat(a.host(o))
	return err == nil && fi.Size() == c.size && slices.Equal(res.Defines[o], c.v.Defines)
}

// imageResolver reads the image as it is before anything is written.
func (a *applier) imageResolver() (*ldso.Resolver, error) {
	if a.imgRes == nil {
		r, err := ldso.NewResolverFS(treefs.New(a.tree), "the image", ldso.Options{})
		if err != nil {
			return nil, fmt.Errorf("reading the image's loader configuration: %w", err)
		}
		a.imgRes = r
	}
	return a.imgRes, nil
}

// planVersions decides keep or replace for every object of the closure
// the image already has as an ELF object at the same path, and finds the
// programs that cannot run on the merged result.
func (a *applier) planVersions(res *ldso.Result) (*versionPlan, error) {
	plan := &versionPlan{keep: map[string]string{}, replace: map[string]string{}, failing: map[int][]string{}}
	img, err := a.imageResolver()
	if err != nil {
		return nil, err
	}
	// The image's copies, for the objects that collide.
	copies := map[string]imageCopy{}
	objs := make([]string, 0, len(res.Needs))
	for o := range res.Needs {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	for _, o := range objs {
		if a.requested[o] {
			continue // asked for by name: the root's copy replaces the image's
		}
		canon, n, err := a.tree.Resolve(o, true)
		if err != nil || n == nil || !n.IsRegular() {
			continue
		}
		v, err := img.Versions(o)
		if err != nil {
			continue // not an ELF object in the image: nothing to compare
		}
		copies[o] = imageCopy{path: "/" + canon, v: v, size: n.Inode.Size()}
		plan.keep[o] = ""
	}
	// A library is loaded by the name it is needed under, usually a link
	// (libfoo.so.1 -> libfoo.so.1.2.3): where the image has that name
	// for another file, that file is the image's copy.
	for _, f := range res.Files {
		// Only names of libraries: the image's /bin/sh (busybox) is not
		// its copy of the root's dash.
		if f.Kind != ldso.Symlink || !strings.Contains(path.Base(f.Path), ".so") {
			continue
		}
		_, o, mode, err := a.res.Walk(f.Path)
		if err != nil || !mode.IsRegular() || a.requested[o] || a.requested[f.Path] {
			continue
		}
		if _, ok := res.Needs[o]; !ok {
			continue
		}
		if _, ok := copies[o]; ok {
			continue
		}
		canon, n, err := a.tree.Resolve(f.Path, true)
		if err != nil || n == nil || !n.IsRegular() {
			continue
		}
		v, err := img.Versions(f.Path)
		if err != nil {
			continue
		}
		copies[o] = imageCopy{path: "/" + canon, v: v, size: n.Inode.Size()}
		plan.keep[o] = ""
	}
	// The image's loader may find its own copy of a library somewhere
	// else than where the root has it (an unmerged image, a root of
	// another layout): that copy is what the added programs get.
	tried := map[string]bool{}
	for _, o := range sortedKeys(res.VersionNeeds) {
		for _, n := range res.VersionNeeds[o] {
			lib := n.Library
			if _, ok := copies[lib]; ok || a.requested[lib] || tried[lib] {
				continue
			}
			tried[lib] = true
			p, err := img.Find(n.File, a.elfHeader(lib))
			if err != nil || p == "" {
				continue
			}
			v, err := img.Versions(p)
			if err != nil {
				continue
			}
			var size int64
			if _, n, err := a.tree.Resolve(p, true); err == nil && n != nil {
				size = n.Inode.Size()
			}
			copies[lib] = imageCopy{path: p, v: v, size: size, elsewhere: true}
			plan.keep[lib] = ""
		}
	}
	// Which programs load each object at startup.
	progsOf := a.programsOf(res)
	// Start from keeping every image copy; replace those an added
	// program needs more of, until nothing changes: a replaced object's
	// own needs count from then on.
	blocked := map[string]string{}
	for changed := true; changed; {
		changed = false
		for o, c := range copies {
			if _, ok := plan.keep[o]; !ok {
				continue
			}
			missing := missingIn(c.v, a.neededOf(res, o, plan.keep, progsOf))
			if len(missing) == 0 {
				delete(blocked, o)
				continue
			}
			if why := replaceable(res, o, c); why != "" {
				blocked[o] = why
				continue
			}
			delete(plan.keep, o)
			delete(blocked, o)
			plan.replace[o] = fmt.Sprintf("the root's copy replaces the image's %s, which lacks %s", c.path, strings.Join(missing, ", "))
			changed = true
		}
	}
	for o, c := range copies {
		if _, ok := plan.keep[o]; ok && !a.sameObject(res, o, c) {
			plan.keep[o] = fmt.Sprintf("%s: the image's own copy kept (it defines every version the added programs need of the root's %s)", c.path, o)
		}
	}
	// Every need of an object that is written, against the copy the
	// merged tree will hold.
	for _, o := range sortedKeys(res.VersionNeeds) {
		if _, kept := plan.keep[o]; kept {
			continue
		}
		lacking := map[[2]string][]string{} // library, file -> versions
		var order [][2]string
		for _, n := range res.VersionNeeds[o] {
			if n.Weak {
				continue
			}
			defines, versioned := res.Defines[n.Library]
			if c, ok := copies[n.Library]; ok && plan.replace[n.Library] == "" {
				defines, versioned = c.v.Defines, c.v.Versioned
			}
			if !versioned || slices.Contains(defines, n.Version) {
				continue
			}
			k := [2]string{n.Library, n.File}
			if lacking[k] == nil {
				order = append(order, k)
			}
			lacking[k] = append(lacking[k], n.Version)
		}
		for _, k := range order {
			lib, file, vers := k[0], k[1], lacking[k]
			where := lib
			if c, ok := copies[lib]; ok && plan.replace[lib] == "" {
				where = c.path + " (the image's)"
			}
			what := "version " + vers[0]
			if len(vers) > 1 {
				what = "versions " + listSome(vers)
			}
			msg := fmt.Sprintf("%s needs %s of %s, which %s does not define", o, what, file, where)
			if why := blocked[lib]; why != "" {
				msg += "; the root's " + lib + " cannot replace it: " + why
			}
			plan.cannotLoad(progsOf[o], msg)
		}
	}
	// An image copy that stays brings its own needs, which the image may
	// lack: a distribution's initrd can hold a library its generator
	// copied without one of its dependencies (liblz4 without libxxhash,
	// loaded only by dlopen() in the image). What the root's closure
	// writes under that name serves it; nothing else does.
	written := map[string]bool{}
	for _, f := range res.Files {
		written[path.Base(f.Path)] = true
	}
	for _, o := range sortedKeys(plan.keep) {
		c := copies[o]
		r, err := img.Closure(c.path)
		if err != nil {
			continue
		}
		for _, m := range r.Missing {
			if m.Dlopen || written[m.Soname] {
				continue
			}
			msg := fmt.Sprintf("%s (the image's copy, kept) needs %s, which neither the image nor the root's closure has", c.path, m.Soname)
			if m.Object != c.path {
				msg = fmt.Sprintf("%s (the image's copy, kept) loads %s, which needs %s that neither the image nor the root's closure has", c.path, m.Object, m.Soname)
			}
			plan.cannotLoad(progsOf[o], msg)
		}
	}
	return plan, nil
}

// cannotLoad records why an object cannot be loaded: the programs that load
// it at startup cannot run; with none, only a dlopen() of it fails.
func (plan *versionPlan) cannotLoad(progs []int, msg string) {
	if len(progs) == 0 {
		plan.dlopen = append(plan.dlopen, "dlopen() will fail: "+msg)
		return
	}
	for _, i := range progs {
		plan.failing[i] = append(plan.failing[i], msg)
	}
}

// neededOf is the set of versions the objects that will be written need
// of lib at startup.
func (a *applier) neededOf(res *ldso.Result, lib string, kept map[string]string, progsOf map[string][]int) []string {
	var out []string
	for o, needs := range res.VersionNeeds {
		if _, k := kept[o]; k || len(progsOf[o]) == 0 {
			continue
		}
		for _, n := range needs {
			if n.Library == lib && !n.Weak && !slices.Contains(out, n.Version) {
				out = append(out, n.Version)
			}
		}
	}
	sort.Strings(out)
	return out
}

// missingIn returns the versions of want that v does not define; an
// object without DT_VERDEF lacks none (ld.so accepts it).
func missingIn(v *ldso.Versions, want []string) []string {
	if !v.Versioned {
		return nil
	}
	var out []string
	for _, w := range want {
		if !slices.Contains(v.Defines, w) {
			out = append(out, w)
		}
	}
	return out
}

// replaceable says why the root's object o cannot stand in for the
// image's copy c, or "" when it can.
func replaceable(res *ldso.Result, o string, c imageCopy) string {
	if c.elsewhere {
		return "the image's loader finds its own " + c.path + " under that name first"
	}
	defs, versioned := res.Defines[o]
	if !versioned {
		return "it has no version definitions to prove it compatible"
	}
	var lacks []string
	for _, d := range c.v.Defines {
		if !slices.Contains(defs, d) {
			lacks = append(lacks, d)
		}
	}
	if len(lacks) > 0 {
		return "it lacks " + listSome(lacks) + ", which the image's copy defines for the image's own programs"
	}
	for _, d := range append(slices.Clone(defs), c.v.Defines...) {
		if ldso.Private(d) {
			return "it shares " + d + " with the other objects of its build, so it cannot be mixed with the image's"
		}
	}
	for _, n := range res.VersionNeeds[o] {
		if ldso.Private(n.Version) {
			return "it needs " + n.Version + " of " + n.File + ", private to its own build"
		}
	}
	return ""
}

// programsOf maps every object of a closure to the programs (indexes in
// a.programs) that load it at startup.
func (a *applier) programsOf(res *ldso.Result) map[string][]int {
	out := map[string][]int{}
	for i, p := range a.programs {
		_, phys, _, err := a.res.Walk(p)
		if err != nil {
			continue
		}
		seen := map[string]bool{phys: true}
		queue := []string{phys}
		for len(queue) > 0 {
			obj := queue[0]
			queue = queue[1:]
			out[obj] = append(out[obj], i)
			for _, dep := range res.Needs[obj] {
				if !seen[dep] {
					seen[dep] = true
					queue = append(queue, dep)
				}
			}
		}
	}
	return out
}

// listSome joins names for a message, the first few and a count of the
// rest.
func listSome(names []string) string {
	const few = 6
	if len(names) <= few {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:few], ", "), len(names)-few)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
