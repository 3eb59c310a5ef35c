package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/overlay/treefs"
	"github.com/initrd-remix/initrd-remix/remix"
)

// Options say what to add to an image and from where.
type Options struct {
	// Root is the source root ("" means "/"): programs, libraries, files
	// and modules are taken from it, resolved inside it.
	Root string
	// Add names programs looked up on the PATH of Root
	// (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), or
	// absolute paths inside Root.
	Add []string
	// Include lists SRC or SRC:DEST, absolute paths inside Root and the
	// image: a file, symlink (with its whole chain and final target) or a
	// whole tree, copied truthfully (modes, owners, mtimes, link targets).
	Include []string
	// Modules names kernel modules (as modprobe does, "-" and "_" alike)
	// of KVer, added with their dependencies, soft dependencies and
	// firmware; the image's module indexes are rewritten.
	Modules []string
	// KVer is the kernel version for Modules; "" means the only one the
	// image holds.
	KVer string
	// Preset adds a named program set ("rescue" by default, "none").
	Preset string
	// AllowMissing turns a library that cannot be found into a warning.
	AllowMissing bool
	// Drivers are the driver classes (DriverClasses: storage, fs, net,
	// input) whose modules Root's lib/modules/KVER has and the image
	// lacks, added with their dependencies and firmware so the rescue
	// boots on other hardware. nil is the default, every class, added
	// only when Root has modules of the image's kernel (otherwise one
	// warning says none was added). A non-nil list was asked for: empty
	// adds none; a root without that kernel's modules, or a class that
	// adds nothing and the image does not have, is an error.
	Drivers []string
	// OmitModules are module names or shell patterns ("-" and "_" alike)
	// the driver classes leave out, with every module that needs one.
	OmitModules []string
}

// Report lists what was added and why, and what was skipped.
type Report struct {
	Added    []Added  `json:"added"`
	Skipped  []string `json:"skipped,omitempty"`  // preset programs the root lacks or the image cannot run, the image's entries kept
	Warnings []string `json:"warnings,omitempty"` // missing libraries with AllowMissing, preset programs left out, libraries replaced
	// Drivers says what each driver class added (Options.Drivers).
	Drivers []*DriverReport `json:"drivers,omitempty"`
}

// DriverBytes is what the driver classes added, before compression.
func (r *Report) DriverBytes() int64 {
	var n int64
	for _, d := range r.Drivers {
		n += d.Bytes
	}
	return n
}

// Added is one entry written into the image.
type Added struct {
	Path   string `json:"path"`   // canonical path in the image
	Type   string `json:"type"`   // file, dir, symlink
	Source string `json:"source"` // path inside the root it came from
	Reason string `json:"reason"` // what brought it: "add mount", "library of /usr/bin/mount", ...
}

// defaultPATH is where programs are looked up inside the root.
const defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Apply adds what opts asks for to tree. On error the tree may hold part of
// the additions; callers discard it and write nothing.
func Apply(ctx context.Context, tree *remix.Tree, opts Options) (*Report, error) {
	p, err := Prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	return p.Apply(ctx, tree, opts.KVer)
}

// Prepared is the part of Apply that reads only the root: the programs,
// trees and files asked for, found in the root, and the closure of the
// programs, resolved in the root. It needs no image, so a caller can
// prepare while the image is still being read (see pipeline.Build).
type Prepared struct {
	a       *applier
	closure *ldso.Result // of a.programs as prepared
	used    bool
}

// Prepare does the root's part of Apply for opts: with opts.KVer set, the
// root's modules of that kernel are read too (Apply takes the kernel
// version, and reads them again if it is another). Its errors are Apply's.
func Prepare(ctx context.Context, opts Options) (*Prepared, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", root)
	}
	res, err := ldso.NewResolver(root, ldso.Options{WellKnownDlopen: true})
	if err != nil {
		return nil, err
	}
	preset := opts.Preset
	if preset == "" {
		preset = "rescue"
	}
	presetProgs, err := PresetPrograms(preset)
	if err != nil {
		return nil, err
	}
	a := &applier{
		ctx: ctx, res: res, root: res.Root(), opts: opts,
		report: &Report{},
	}
	for _, name := range presetProgs {
		p, err := a.lookPath(name)
		if err != nil {
			a.report.Skipped = append(a.report.Skipped, name)
			continue
		}
		a.program(p, "preset "+preset+": "+name)
	}
	if err := a.presetTrees(preset); err != nil {
		return nil, err
	}
	for _, name := range opts.Add {
		p, err := a.lookPath(name)
		if err != nil {
			return nil, fmt.Errorf("--add %s: %w", name, err)
		}
		if err := a.checkProgram(p); err != nil {
			return nil, fmt.Errorf("--add %s: %w", name, err)
		}
		a.program(p, "add "+name)
	}
	for _, inc := range opts.Include {
		if err := a.include(inc); err != nil {
			return nil, fmt.Errorf("--include %s: %w", inc, err)
		}
	}
	if kver := opts.KVer; plainKver(kver) && (len(opts.Modules) > 0 || opts.Drivers == nil || len(opts.Drivers) > 0) {
		// The root's modules of a kernel named up front; errors are
		// Apply's, where modules are added.
		plan, err := a.rootModules(kver)
		a.preModules = &preloadedModules{kver: kver, plan: plan, err: err}
	}
	pr := &Prepared{a: a}
	if len(a.programs) > 0 {
		// Errors of the closure are Apply's, after those of the modules.
		pr.closure, _ = a.res.Closure(a.programs...)
	}
	return pr, nil
}

// RootFile is a regular file of the root that Apply will most likely add.
type RootFile struct {
	Host string // its path on the host
	Path string // its absolute path in the root
	// Loaded: a program loads it (an interpreter or a library). Apply
	// keeps the image's own copy of what a program loads where the image
	// has one; programs are always written.
	Loaded bool
}

// Files returns the regular files of the root that the prepared programs
// need, sorted by path: what Apply will most likely add, known before the
// image is. Apply may add fewer or more.
func (pr *Prepared) Files() []RootFile {
	if pr.closure == nil || pr.a == nil {
		return nil
	}
	loaded := map[string]bool{}
	for _, deps := range pr.closure.Needs {
		for _, d := range deps {
			loaded[d] = true
		}
	}
	var out []RootFile
	for _, f := range pr.closure.Files {
		if f.Kind == ldso.Regular {
			out = append(out, RootFile{Host: pr.a.host(f.Path), Path: f.Path, Loaded: loaded[f.Path]})
		}
	}
	return out
}

// Apply adds what was prepared to tree, for the kernel version kver ("":
// the only one the image holds). A Prepared is applied once.
func (pr *Prepared) Apply(ctx context.Context, tree *remix.Tree, kver string) (*Report, error) {
	if pr.used {
		return nil, errors.New("overlay: Prepared applied twice")
	}
	pr.used = true
	// The applier, with the root's module database, is garbage once the
	// report is out: nothing of it stays reachable through pr while the
	// image is written.
	a, closure := pr.a, pr.closure
	pr.a, pr.closure = nil, nil
	a.ctx, a.tree, a.opts.KVer, a.closure = ctx, tree, kver, closure
	if err := a.modules(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := a.resolveAndWrite(); err != nil {
		return nil, err
	}
	if a.modPlan != nil {
		if err := a.writeModuleIndexes(); err != nil {
			return nil, err
		}
	}
	if err := a.checkInImage(); err != nil {
		return nil, err
	}
	sort.Slice(a.report.Added, func(i, j int) bool { return a.report.Added[i].Path < a.report.Added[j].Path })
	return a.report, nil
}

// applier is the state of one Apply call.
type applier struct {
	ctx    context.Context
	tree   *remix.Tree
	res    *ldso.Resolver
	root   string // absolute host directory of the root
	opts   Options
	report *Report

	programs []string    // paths inside the root whose closure is needed
	progWhy  []string    // why, parallel to programs
	plain    []plainFile // files copied as they are (include, modules)
	modPlan  *modulePlan // with --module: indexes to rewrite at the end
	// requested holds the paths (and the links on the way to them) of
	// the programs and files asked for by name, which replace what the
	// image has under that name.
	requested map[string]bool
	imgRes    *ldso.Resolver // the image before the overlay, read once
	// closure, when set, is the closure of programs as Prepare found
	// them: resolveAndWrite's first round uses it.
	closure *ldso.Result
	// preModules, when set, is the root's module database Prepare read
	// for the kernel it was given.
	preModules *preloadedModules
}

// plainFile is an entry copied from the root to a place in the image.
type plainFile struct {
	src, dest, why string
}

func (a *applier) host(p string) string {
	if a.root == "/" {
		return p
	}
	return a.root + p
}

// lookPath finds a program like execvp with the default PATH, inside the
// root; a name with a slash is taken as a path inside the root.
func (a *applier) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			return "", fmt.Errorf("%s: not an absolute path inside the root", name)
		}
		if _, _, mode, err := a.res.Walk(name); err != nil {
			return "", err
		} else if !mode.IsRegular() {
			return "", fmt.Errorf("%s: not a regular file", name)
		}
		return name, nil
	}
	for _, dir := range strings.Split(defaultPATH, ":") {
		p := dir + "/" + name
		_, _, mode, err := a.res.Walk(p)
		var le *ldso.LoopError
		if errors.As(err, &le) {
			return "", err
		}
		if err == nil && mode.IsRegular() && mode.Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found on PATH %s in %s", name, defaultPATH, a.root)
}

// checkProgram refuses what cannot be a program: --add of a data file is a
// mistake that would otherwise go unnoticed until the rescue boot.
func (a *applier) checkProgram(p string) error {
	_, phys, _, err := a.res.Walk(p)
	if err != nil {
		return err
	}
	f, err := os.Open(a.host(phys))
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	head = head[:n]
	if remix.IsProgram(head) {
		return nil
	}
	return fmt.Errorf("%s (%s) is neither an ELF program nor a #! script", p, phys)
}

func (a *applier) program(p, why string) {
	a.programs = append(a.programs, p)
	a.progWhy = append(a.progWhy, why)
	a.request(p)
}

// request marks p and the links on the way to it as asked for.
func (a *applier) request(p string) {
	if a.requested == nil {
		a.requested = map[string]bool{}
	}
	a.requested[p] = true
	if links, _, _, err := a.res.Walk(p); err == nil {
		for _, l := range links {
			a.requested[l.Path] = true
		}
	}
}

// include queues SRC[:DEST]: the path itself as a truthful copy, the chain
// of links it goes through, and, for a directory, the whole tree.
func (a *applier) include(spec string) error {
	src, dest, _ := strings.Cut(spec, ":")
	if dest == "" {
		dest = src
	}
	if !strings.HasPrefix(src, "/") || !strings.HasPrefix(dest, "/") {
		return fmt.Errorf("paths must be absolute (SRC[:DEST], inside the root and the image)")
	}
	src, dest = path.Clean(src), path.Clean(dest)
	why := "include " + spec
	// The parents of SRC may be links of the root; they are the root's
	// layout, not what was asked for, so SRC is copied at its physical
	// place unless a DEST was given.
	_, phys, _, err := a.res.Walk(path.Dir(src))
	if err != nil {
		return err
	}
	srcPhys := path.Join(phys, path.Base(src))
	if dest == src {
		dest = srcPhys
	}
	return a.includeTree(srcPhys, dest, why)
}

// includeTree copies one path (not following a final symlink) and, for a
// directory, everything in it; every symlink met also brings its chain and
// target, and every ELF or script its closure.
func (a *applier) includeTree(src, dest, why string) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(a.host(src))
	if err != nil {
		return fmt.Errorf("%s in %s: %w", src, a.root, errors.Unwrap(err))
	}
	a.plain = append(a.plain, plainFile{src: src, dest: dest, why: why})
	a.request(src)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		// The chain and the final target: each link as it is, the target
		// with what it needs.
		links, phys, mode, err := a.res.Walk(src)
		if err != nil {
			return err
		}
		for _, l := range links {
			a.plain = append(a.plain, plainFile{src: l.Path, dest: l.Path, why: "link on the way to " + src})
		}
		if mode.IsDir() {
			return a.includeTree(phys, phys, "target of "+src)
		}
		a.plain = append(a.plain, plainFile{src: phys, dest: phys, why: "target of " + src})
		if mode.IsRegular() {
			a.maybeProgram(phys, "target of "+src)
		}
	case fi.IsDir():
		ents, err := os.ReadDir(a.host(src))
		if err != nil {
			return fmt.Errorf("%s in %s: %w", src, a.root, errors.Unwrap(err))
		}
		for _, e := range ents {
			if err := a.includeTree(path.Join(src, e.Name()), path.Join(dest, e.Name()), why); err != nil {
				return err
			}
		}
	case fi.Mode().IsRegular():
		a.maybeProgram(src, why)
	}
	return nil
}

// maybeProgram queues the closure of a regular file if it is ELF or a
// script: the one path every such file goes through.
func (a *applier) maybeProgram(p, why string) {
	f, err := os.Open(a.host(p))
	if err != nil {
		return
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	if remix.IsProgram(head[:n]) {
		a.program(p, why)
	}
}

// resolveAndWrite runs the closure of every queued program, decides for
// each library the image already has whether its copy stays (see
// planVersions), and writes the rest and the plain files into the tree. A
// preset program that cannot run on the merged libraries is left out with
// a note; one asked for by name is an error.
func (a *applier) resolveAndWrite() error {
	w := newWriter(a)
	for _, pf := range a.plain {
		if err := w.put(pf.src, pf.dest, pf.why); err != nil {
			return err
		}
	}
	if len(a.programs) == 0 {
		return w.finish()
	}
	var result *ldso.Result
	var plan *versionPlan
	for {
		var err error
		if result, a.closure = a.closure, nil; result == nil {
			if result, err = a.res.Closure(a.programs...); err != nil {
				return err
			}
		}
		if plan, err = a.planVersions(result); err != nil {
			return err
		}
		if len(plan.failing) == 0 {
			break
		}
		if err := a.dropFailing(plan.failing); err != nil {
			return err
		}
		if len(a.programs) == 0 {
			return w.finish()
		}
	}
	if err := a.missing(result); err != nil {
		return err
	}
	a.report.Warnings = append(a.report.Warnings, plan.dlopen...)
	w.keep = plan.keep
	for _, o := range sortedKeys(plan.keep) {
		if plan.keep[o] != "" {
			a.report.Skipped = append(a.report.Skipped, plan.keep[o])
		}
	}
	for _, o := range sortedKeys(plan.replace) {
		a.report.Warnings = append(a.report.Warnings, o+": "+plan.replace[o])
	}
	why := a.whyMap(result)
	for _, f := range result.Files {
		if err := w.put(f.Path, f.Path, why[f.Path]); err != nil {
			return err
		}
	}
	return w.finish()
}

// dropFailing leaves out the preset programs that cannot run in the image
// and refuses the ones asked for by name.
func (a *applier) dropFailing(failing map[int][]string) error {
	var errs []string
	var progs, whys []string
	for i, p := range a.programs {
		msgs, bad := failing[i]
		switch {
		case !bad:
			progs, whys = append(progs, p), append(whys, a.progWhy[i])
		case strings.HasPrefix(a.progWhy[i], "preset "):
			a.report.Skipped = append(a.report.Skipped, strings.TrimPrefix(a.progWhy[i], "preset "))
			a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("%s (%s) left out: it cannot run on the image's libraries: %s", p, a.progWhy[i], strings.Join(msgs, "; ")))
		default:
			errs = append(errs, fmt.Sprintf("%s (%s) cannot run on the image's libraries:\n    %s", p, a.progWhy[i], strings.Join(msgs, "\n    ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s\n  use a --root of the image's release, or leave the program out", strings.Join(errs, "\n  "))
	}
	a.programs, a.progWhy = progs, whys
	return nil
}

// whyMap names, for every file of a closure, the program that brought it.
func (a *applier) whyMap(r *ldso.Result) map[string]string {
	why := map[string]string{}
	for i, p := range a.programs {
		_, phys, _, err := a.res.Walk(p)
		if err != nil {
			continue
		}
		if _, ok := why[phys]; !ok {
			why[phys] = a.progWhy[i]
		}
		// Breadth-first over Needs: the first program to reach a
		// library names it.
		queue := []string{phys}
		seen := map[string]bool{phys: true}
		for len(queue) > 0 {
			obj := queue[0]
			queue = queue[1:]
			for _, dep := range r.Needs[obj] {
				if seen[dep] {
					continue
				}
				seen[dep] = true
				if _, ok := why[dep]; !ok {
					why[dep] = "needed by " + p
				}
				queue = append(queue, dep)
			}
		}
	}
	for _, o := range r.Optional {
		if o.Path != "" {
			if _, ok := why[o.Path]; !ok {
				why[o.Path] = "dlopen " + o.Feature + " of " + o.Object
			}
		}
	}
	for _, f := range r.Files {
		if _, ok := why[f.Path]; !ok {
			why[f.Path] = "on the way to a library or program"
		}
	}
	return why
}

// missing turns unresolved needs into one error naming each program and
// soname, or warnings with AllowMissing.
func (a *applier) missing(r *ldso.Result) error {
	if len(r.Missing) == 0 {
		return nil
	}
	// Which input programs reach each object.
	progsOf := map[string][]string{}
	for obj, idx := range a.programsOf(r) {
		for _, i := range idx {
			progsOf[obj] = append(progsOf[obj], a.programs[i])
		}
	}
	var lines []string
	for _, m := range r.Missing {
		progs := progsOf[m.Object]
		if len(progs) == 0 {
			progs = []string{m.Object}
		}
		via := ""
		if len(progs) != 1 || progs[0] != m.Object {
			via = " (needed by " + m.Object + ")"
		}
		lines = append(lines, fmt.Sprintf("%s: %s not found%s: %s", strings.Join(progs, ", "), m.Soname, via, m.Reason))
	}
	if a.opts.AllowMissing {
		a.report.Warnings = append(a.report.Warnings, lines...)
		return nil
	}
	return fmt.Errorf("missing libraries (--allow-missing makes this a warning):\n  %s", strings.Join(lines, "\n  "))
}

// checkInImage resolves the added programs again, this time inside the
// image with its own loader configuration: a library the root finds only
// through its ld.so.cache in a directory the image's cache does not list,
// or a path the image's layout sends elsewhere, is caught here rather
// than at the rescue boot.
func (a *applier) checkInImage() error {
	var progs []string
	for _, p := range a.programs {
		if _, n, err := a.tree.Resolve(p, true); err == nil && n != nil {
			progs = append(progs, p)
		}
	}
	if len(progs) == 0 {
		return nil
	}
	r, err := ldso.NewResolverFS(treefs.New(a.tree), "the image", ldso.Options{})
	if err != nil {
		return fmt.Errorf("checking the image: %w", err)
	}
	res, err := r.Closure(progs...)
	if err != nil {
		return fmt.Errorf("checking the image: %w", err)
	}
	var versions []string
	for _, m := range res.Versions {
		if !m.Dlopen {
			versions = append(versions, m.String())
		}
	}
	if len(versions) > 0 {
		return fmt.Errorf("added programs cannot run on the libraries inside the image (use a --root of the image's release, or leave the program out):\n  %s", strings.Join(versions, "\n  "))
	}
	var lines []string
	for _, m := range res.Missing {
		line := fmt.Sprintf("%s: %s not found inside the image: %s", m.Object, m.Soname, m.Reason)
		if m.Dlopen {
			// The program runs; one dlopen() of it fails.
			a.report.Warnings = append(a.report.Warnings, line+" (loaded only by dlopen(), which fails)")
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return nil
	}
	if a.opts.AllowMissing {
		a.report.Warnings = append(a.report.Warnings, lines...)
		return nil
	}
	return fmt.Errorf("added programs do not resolve inside the image (--allow-missing makes this a warning):\n  %s", strings.Join(lines, "\n  "))
}
