package ldso

import (
	"debug/elf"
	"errors"
	"io/fs"
	"strings"
	"syscall"
)

// lm mirrors ld.so's struct link_map: one loaded object of one process.
type lm struct {
	obj      *object
	real     string   // physical path inside the root
	realname string   // the path it was opened as ("" for the executed program)
	origin   string   // $ORIGIN
	loader   *lm      // the object that caused it to be loaded
	names    []string // names it was requested by
	// Decomposed DT_RPATH / DT_RUNPATH, computed on first use.
	rpath, runpath []string
	pathsDone      bool
}

func (l *lm) matches(name string) bool {
	if name == l.realname && name != "" {
		return true
	}
	for _, n := range l.names {
		if n == name {
			return true
		}
	}
	return l.obj.soname != "" && l.obj.soname == name
}

func (l *lm) addName(name string) {
	for _, n := range l.names {
		if n == name {
			return
		}
	}
	l.names = append(l.names, name)
}

// process is one program's run of the loader.
type process struct {
	c      *closure
	cfg    *abiConfig
	main   *lm
	loaded []*lm          // in load order, searched by name like ld.so's namespace list
	byReal map[string]*lm // the same file is loaded once (ld.so compares dev/ino)
	all    []*lm          // loaded objects and hwcaps variants, in creation order
	queue  int            // index in all of the next object whose DT_NEEDED to map
	noted  int            // index in all of the next object whose dlopen notes to load
	// opened is the index in all of the first object loaded by dlopen():
	// everything from it on came after startup.
	opened int
}

func (c *closure) runProcess(obj *object, real, name, origin string) {
	p := &process{c: c, cfg: c.configFor(abiOf(obj.hdr)), byReal: map[string]*lm{}}
	p.main = &lm{obj: obj, real: real, realname: name, origin: origin}
	p.loaded = append(p.loaded, p.main)
	p.byReal[real] = p.main
	p.all = append(p.all, p.main)
	c.need(real)
	if obj.interp != "" {
		p.loadInterp()
	}
	p.run()
	// ld.so checks versions once every startup object is loaded
	// (_dl_check_all_versions), and again for what each dlopen() adds.
	checked := p.checkVersions(0, false)
	p.opened = len(p.all)
	p.notes()
	if c.r.opts.WellKnownDlopen {
		p.wellKnown()
		p.notes()
	}
	p.checkVersions(checked, true)
}

// checkVersions checks the version needs of the objects in p.all from
// index from on, as _dl_check_map_versions does: each need is looked up
// in the object loaded for its file name, and a version that object does
// not define is fatal unless it is weak or the object has no DT_VERDEF.
// It returns the index of the next object to check.
func (p *process) checkVersions(from int, dlopen bool) int {
	for _, l := range p.all[from:] {
		p.c.recordDefines(l)
		for _, n := range l.obj.verneed {
			var lib *lm
			for _, cand := range p.loaded {
				if cand.matches(n.file) {
					lib = cand
					break
				}
			}
			need := VersionNeed{File: n.file, Version: n.name, Weak: n.weak}
			if lib == nil {
				if !p.c.isMissing(l.real, n.file) && !n.weak {
					p.c.versionMissing[VersionMissing{Object: l.real, File: n.file, Version: n.name, Dlopen: dlopen}] = true
				}
				continue
			}
			need.Library = lib.real
			p.c.addVersionNeed(l.real, need)
			if n.weak || !lib.obj.hasVerdef || lib.obj.defines(n.name, n.hash) {
				continue
			}
			p.c.versionMissing[VersionMissing{Object: l.real, Library: lib.real, File: n.file, Version: n.name, Dlopen: dlopen}] = true
		}
	}
	return len(p.all)
}

// notes loads the .note.dlopen dependencies of every object not looked at
// yet. dlopen() comes after the initial load, and what it loads may carry
// notes of its own, so this continues until no object is left.
func (p *process) notes() {
	for p.noted < len(p.all) {
		l := p.all[p.noted]
		p.noted++
		for _, d := range l.obj.dlopen {
			p.dlopen(l, d)
			p.run()
		}
	}
}

// run maps the DT_NEEDED entries of every object not processed yet, in
// breadth-first order as _dl_map_object_deps does.
func (p *process) run() {
	for p.queue < len(p.all) {
		l := p.all[p.queue]
		p.queue++
		for _, name := range l.obj.needed {
			dep, reason := p.mapObject(l, name)
			if dep == nil {
				p.c.missWhen(l.real, name, reason, p.queue-1 >= p.opened && p.opened > 0)
				continue
			}
			p.c.addNeed(l.real, dep.real)
		}
	}
}

func (p *process) loadInterp() {
	m := p.main
	ip := m.obj.interp
	if !strings.HasPrefix(ip, "/") {
		p.c.miss(m.real, ip, "relative interpreter path depends on the working directory")
		return
	}
	var sr searchResult
	p.tryOne(ip, &sr)
	if sr.found == nil {
		p.c.miss(m.real, ip, "interpreter: "+sr.reason())
		return
	}
	l, _ := p.adopt(nil, ip, sr.found)
	p.c.addNeed(m.real, l.real)
}

// searchResult collects the outcome of probing candidates.
type searchResult struct {
	found      *found
	otherClass bool   // a file of the other ELF class was skipped
	fatal      string // a candidate ld.so would refuse with an error
	hwcapsSeen bool   // a glibc-hwcaps candidate existed
}

func (sr *searchResult) reason() string {
	switch {
	case sr.fatal != "":
		return sr.fatal
	case sr.otherClass:
		return "not found (only files of the wrong ELF class)"
	}
	return "not found"
}

type found struct {
	path string // as opened
	w    walked
	obj  *object
}

// probe is the outcome of trying one candidate file.
type probe uint8

const (
	probeNext     probe = iota // absent or skipped: try the next candidate
	probeStopList              // open failed otherwise (ELOOP): open_path gives up on this list
	probeEnd                   // found, or refused with an error that ends the search
)

// tryOne probes one candidate path the way open_verify does.
func (p *process) tryOne(cand string, sr *searchResult) probe {
	c := p.c
	w := c.v.walk(cand)
	if w.err != nil {
		// open_path goes on after ENOENT, EACCES and ENOTDIR only.
		if errors.Is(w.err, fs.ErrNotExist) || errors.Is(w.err, syscall.ENOTDIR) {
			return probeNext
		}
		return probeStopList
	}
	if w.mode.IsDir() {
		sr.fatal = cand + ": cannot read file data: is a directory"
		return probeEnd
	}
	if !w.mode.IsRegular() {
		return probeNext
	}
	head, err := c.head(w.phys)
	if err != nil {
		sr.fatal = cand + ": cannot read file data: " + err.Error()
		return probeEnd
	}
	// Any other value in EI_CLASS, valid or not, only skips the file.
	if len(head) > elf.EI_CLASS && string(head[:4]) == elf.ELFMAG && elf.Class(head[elf.EI_CLASS]) != p.cfg.abi.class {
		sr.otherClass = true
		return probeNext
	}
	h, err := parseHeader(head)
	if err != nil {
		sr.fatal = cand + ": " + err.Error()
		return probeEnd
	}
	switch v, msg := p.cfg.abi.check(h); v {
	case otherClass:
		sr.otherClass = true
		return probeNext
	case otherMach:
		return probeNext
	case reject:
		sr.fatal = cand + ": " + msg
		return probeEnd
	}
	obj, err := c.object(w.phys, h)
	if err != nil {
		sr.fatal = cand + ": " + err.Error()
		return probeEnd
	}
	sr.found = &found{path: cand, w: w, obj: obj}
	return probeEnd
}

// mapObject is _dl_map_object: reuse a loaded object matching the name,
// else find the file. It returns the object, or nil and the reason.
func (p *process) mapObject(loader *lm, name string) (*lm, string) {
	for _, l := range p.loaded {
		if l.matches(name) {
			l.addName(name)
			return l, ""
		}
	}
	var sr searchResult
	var variants []*found
	if strings.Contains(name, "/") {
		cand, ok := p.expand(loader, name)
		switch {
		case !ok:
			return nil, "a dynamic string token in the name has no value"
		case !strings.HasPrefix(cand, "/"):
			return nil, "relative path depends on the working directory"
		}
		p.tryOne(cand, &sr)
	} else {
		sr = p.search(loader, name, 0)
		if sr.found != nil && sr.hwcapsSeen {
			// A CPU without the best glibc-hwcaps level loads another
			// file; the rescue system must hold those too.
			for level := 1; level <= len(p.cfg.hwcaps); level++ {
				alt := p.search(loader, name, level)
				if alt.found != nil && alt.found.w.phys != sr.found.w.phys {
					variants = append(variants, alt.found)
				}
			}
		}
	}
	if sr.found == nil {
		return nil, sr.reason()
	}
	l, _ := p.adopt(loader, name, sr.found)
	for _, f := range variants {
		p.variant(loader, f)
	}
	return l, ""
}

// adopt makes a found file a loaded object, or returns the loaded object
// that is the same file.
func (p *process) adopt(loader *lm, name string, f *found) (*lm, bool) {
	real := f.w.phys
	p.c.addWalk(f.w)
	if l, ok := p.byReal[real]; ok {
		l.addName(name)
		return l, false
	}
	l := &lm{obj: f.obj, real: real, realname: f.path, origin: rawDir(f.path), loader: loader, names: []string{name}}
	p.loaded = append(p.loaded, l)
	p.byReal[real] = l
	p.all = append(p.all, l)
	p.c.need(real)
	return l, true
}

// variant adds a library another CPU would load instead, with its own
// needs, without making it visible to name lookups.
func (p *process) variant(loader *lm, f *found) {
	real := f.w.phys
	p.c.addWalk(f.w)
	for _, l := range p.all {
		if l.real == real {
			return
		}
	}
	l := &lm{obj: f.obj, real: real, realname: f.path, origin: rawDir(f.path), loader: loader}
	p.all = append(p.all, l)
	p.c.need(real)
}

// search is the part of _dl_map_object that looks for a name without a
// slash. level drops that many of the best glibc-hwcaps subdirectories,
// to answer for less capable CPUs.
func (p *process) search(loader *lm, name string, level int) searchResult {
	var sr searchResult
	hw := p.cfg.hwcaps[level:]
	// tryDirs is open_path: every directory of a list, each first with
	// the glibc-hwcaps subdirectories. It reports whether the search ends.
	tryDirs := func(dirs []string) bool {
		for _, d := range dirs {
			var cands []string
			if len(p.cfg.hwcaps) > 0 && p.c.v.isDir(d+"glibc-hwcaps") {
				sr.hwcapsSeen = true
				for _, h := range hw {
					cands = append(cands, d+"glibc-hwcaps/"+h+"/"+name)
				}
			}
			cands = append(cands, d+name)
			last := probeNext
			for _, cand := range cands {
				if last = p.tryOne(cand, &sr); last == probeEnd {
					return true
				}
			}
			// open_path looks at errno after the last attempt in a
			// directory: anything but "absent" abandons the list.
			if last == probeStopList {
				return false
			}
		}
		return false
	}
	// DT_RPATH of the loader and of its loaders, unless the loader has
	// DT_RUNPATH; then the executable's, if the chain did not cover it.
	if !loader.obj.hasRunpath {
		didMain := false
		for l := loader; l != nil; l = l.loader {
			if dirs := p.rpathOf(l); dirs != nil {
				if tryDirs(dirs) {
					return sr
				}
				didMain = didMain || l == p.main
			}
		}
		if !didMain {
			if dirs := p.rpathOf(p.main); dirs != nil && tryDirs(dirs) {
				return sr
			}
		}
	}
	if dirs := p.runpathOf(loader); dirs != nil && tryDirs(dirs) {
		return sr
	}
	nodeflib := loader.obj.nodeflib
	if cache := p.c.r.cache; cache != nil {
		cp, ok, seen := cache.lookup(name, p.cfg.abi, hw)
		sr.hwcapsSeen = sr.hwcapsSeen || seen
		if ok && !(nodeflib && p.inSystemDir(cp)) && p.tryOne(cp, &sr) == probeEnd {
			return sr
		}
	} else if tryDirs(p.c.r.confDirs) {
		// Without a cache, what ldconfig would put into it.
		return sr
	}
	if !nodeflib {
		tryDirs(p.cfg.systemDirs)
	}
	return sr
}

func (p *process) inSystemDir(file string) bool {
	for _, d := range p.cfg.systemDirs {
		if strings.HasPrefix(file, d) {
			return true
		}
	}
	return false
}

func (p *process) rpathOf(l *lm) []string {
	p.decompose(l)
	return l.rpath
}

func (p *process) runpathOf(l *lm) []string {
	p.decompose(l)
	return l.runpath
}

// decompose splits and expands an object's DT_RPATH and DT_RUNPATH once,
// as fillin_rpath does. An object with DT_RUNPATH has no DT_RPATH for the
// loader (get-dynamic-info.h clears it).
func (p *process) decompose(l *lm) {
	if l.pathsDone {
		return
	}
	l.pathsDone = true
	split := func(s string) []string {
		dirs := []string{}
		for _, e := range strings.Split(s, ":") {
			// An empty element means the working directory, which a
			// rescue system cannot reproduce; it is left out.
			if e == "" {
				continue
			}
			d, ok := p.expand(l, e)
			if !ok || d == "" || !strings.HasPrefix(d, "/") {
				continue
			}
			dirs = appendUnique(dirs, dirSlash(d))
		}
		return dirs
	}
	if l.obj.hasRunpath {
		l.runpath = split(l.obj.runpath)
	} else if l.obj.hasRpath {
		l.rpath = split(l.obj.rpath)
	}
}

// expand substitutes $ORIGIN, $PLATFORM and $LIB (also in braces) as
// _dl_dst_substitute does. ok is false when a known token has no value,
// in which case ld.so drops the whole element.
func (p *process) expand(l *lm, s string) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i+1:]
		var repl string
		n := 0
		if n = isDST(rest, "ORIGIN"); n > 0 {
			repl = l.origin
		} else if n = isDST(rest, "PLATFORM"); n > 0 {
			repl = p.cfg.platform
		} else if n = isDST(rest, "LIB"); n > 0 {
			repl = p.cfg.lib
		} else {
			b.WriteByte('$')
			i++
			continue
		}
		if repl == "" {
			return "", false
		}
		b.WriteString(repl)
		i += 1 + n
	}
	return b.String(), true
}

// isDST returns the length of the token ref at the start of s ("ref" or
// "{ref}"), or 0. An unbraced token must not run into identifier
// characters.
func isDST(s, ref string) int {
	curly := strings.HasPrefix(s, "{")
	if curly {
		s = s[1:]
	}
	if !strings.HasPrefix(s, ref) {
		return 0
	}
	after := s[len(ref):]
	if curly {
		if !strings.HasPrefix(after, "}") {
			return 0
		}
		return len(ref) + 2
	}
	if after != "" {
		c := after[0]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			return 0
		}
	}
	return len(ref)
}

// dlopen loads the first available soname of a dlopen dependency on
// behalf of l and records the outcome.
func (p *process) dlopen(l *lm, d dlopenDep) {
	opt := Optional{Object: l.real, Feature: d.Feature, Priority: d.Priority, Sonames: d.Sonames}
	for _, s := range d.Sonames {
		if dep, _ := p.mapObject(l, s); dep != nil {
			opt.Path = dep.real
			break
		}
	}
	key := strings.Join(append([]string{opt.Object, opt.Feature, opt.Path}, opt.Sonames...), "\x00")
	p.c.optional[key] = opt
}

// wellKnown adds what glibc dlopens by itself: libgcc_s.so.1 for thread
// cancellation (pthread_cancel, pthread_exit unwind through it) and the NSS
// modules nsswitch.conf names. glibc 2.34 and later build "files" and "dns"
// into libc, so those two may be absent without harm.
func (p *process) wellKnown() {
	var libc, pthread *lm
	for _, l := range p.loaded {
		switch {
		case l.matches("libc.so.6") && libc == nil:
			libc = l
		case l.matches("libpthread.so.0") && pthread == nil:
			pthread = l
		}
	}
	if by := libc; by != nil || pthread != nil {
		if by == nil {
			by = pthread
		}
		p.dlopen(by, dlopenDep{Feature: "libgcc_s", Priority: PriorityRecommended, Sonames: []string{"libgcc_s.so.1"}})
		p.run()
	}
	if libc == nil {
		return
	}
	for _, s := range p.c.r.nss {
		p.dlopen(libc, dlopenDep{Feature: "nss-" + s, Priority: PriorityRecommended, Sonames: []string{"libnss_" + s + ".so.2"}})
		p.run()
	}
}
