package ldso

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// maxInterpDepth bounds chains of script interpreters; the kernel's
// binfmt_script gives up after a few levels as well.
const maxInterpDepth = 5

// closure is the state of one Closure call: caches of what was read and
// the accumulated answer. It is used by one goroutine.
type closure struct {
	r       *Resolver
	v       *view
	configs map[abi]*abiConfig
	heads   map[string]headResult // first bytes of files, by physical path
	objects map[string]objResult  // parsed ELF objects, by physical path
	pages   *pagedReader          // parseObject's, reused from file to file
	done    map[string]bool       // programs already processed

	files    map[string]File
	missing  map[[2]string]Missing
	optional map[string]Optional
	needs    map[string]map[string]bool

	versionNeeds   map[string]map[VersionNeed]bool
	versionMissing map[VersionMissing]bool
	defines        map[string][]string
}

type headResult struct {
	b   []byte
	err error
}

type objResult struct {
	o   *object
	err error
}

func (c *closure) isFile(p string) bool { return c.v.isFile(p) }

// head returns up to sniffSize leading bytes of a physical path.
func (c *closure) head(phys string) ([]byte, error) {
	if h, ok := c.heads[phys]; ok {
		return h.b, h.err
	}
	var h headResult
	f, err := c.v.fsys.Open(phys)
	if err != nil {
		h.err = underlying(err)
	} else {
		buf := make([]byte, min(sniffSize, f.Size()))
		n, err := f.ReadAt(buf, 0)
		if err != nil && err != io.EOF {
			h.err = underlying(err)
		}
		h.b = buf[:n]
		f.Close()
	}
	c.heads[phys] = h
	return h.b, h.err
}

func (c *closure) object(phys string, h *header) (*object, error) {
	if o, ok := c.objects[phys]; ok {
		return o.o, o.err
	}
	if c.pages == nil {
		c.pages = newPagedReader(nil, 0)
	}
	o, err := parseObject(c.v.fsys, phys, h, c.pages)
	if err != nil {
		err = underlying(err)
	}
	c.objects[phys] = objResult{o, err}
	return o, err
}

// addWalk records the symlinks of a resolved path and its final file.
func (c *closure) addWalk(w walked) {
	for _, l := range w.links {
		c.files[l.Path] = l
	}
	c.files[w.phys] = File{Path: w.phys, Kind: Regular}
}

func (c *closure) need(obj string) {
	if c.needs[obj] == nil {
		c.needs[obj] = map[string]bool{}
	}
}

func (c *closure) addNeed(obj, dep string) {
	c.need(obj)
	c.needs[obj][dep] = true
}

func (c *closure) isMissing(obj, name string) bool {
	_, ok := c.missing[[2]string{obj, name}]
	return ok
}

func (c *closure) addVersionNeed(obj string, n VersionNeed) {
	if c.versionNeeds[obj] == nil {
		c.versionNeeds[obj] = map[VersionNeed]bool{}
	}
	c.versionNeeds[obj][n] = true
}

func (c *closure) recordDefines(l *lm) {
	if _, ok := c.defines[l.real]; ok || !l.obj.hasVerdef {
		return
	}
	c.defines[l.real] = l.obj.versions().Defines
}

func (c *closure) miss(obj, name, reason string) { c.missWhen(obj, name, reason, false) }

// missWhen records a need nothing satisfies; dlopen tells that obj was
// loaded by dlopen(). A need missed at startup in any process is hard.
func (c *closure) missWhen(obj, name, reason string, dlopen bool) {
	k := [2]string{obj, name}
	if m, ok := c.missing[k]; !ok || (m.Dlopen && !dlopen) {
		c.missing[k] = Missing{Object: obj, Soname: name, Reason: reason, Dlopen: dlopen}
	}
}

// program adds a file that is executed or loaded on its own — an input or
// a script's interpreter — with everything it needs, and returns its real
// path.
func (c *closure) program(p string, depth int) (string, error) {
	w := c.v.walk(p)
	if w.err != nil {
		return "", w.err
	}
	if !w.mode.IsRegular() {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: fmt.Errorf("%s: not a regular file", w.phys)}
	}
	c.addWalk(w)
	real := w.phys
	head, err := c.head(real)
	if err != nil {
		return "", &fs.PathError{Op: "read", Path: p, Err: err}
	}
	switch sniff(head) {
	case kindScript:
		if c.done[real] {
			return real, nil
		}
		c.done[real] = true
		c.need(real)
		if err := c.script(p, real, head, depth); err != nil {
			return "", err
		}
	case kindELF:
		hdr, err := parseHeader(head)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if hdr.typ != elf.ET_EXEC && hdr.typ != elf.ET_DYN {
			return real, nil // relocatable objects, core files: nothing to load
		}
		obj, err := c.object(real, hdr)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		// An executed program's $ORIGIN comes from /proc/self/exe, its
		// real path; a library loaded by path keeps the path's directory.
		name, origin := "", rawDir(real)
		if obj.interp == "" {
			name, origin = p, rawDir(p)
		}
		key := real + "\x00" + origin
		if c.done[key] {
			return real, nil
		}
		c.done[key] = true
		c.runProcess(obj, real, name, origin)
	}
	return real, nil
}

func (c *closure) script(p, real string, head []byte, depth int) error {
	interp, arg, ok := parseShebang(head)
	if !ok {
		c.miss(real, "#!", "empty interpreter line")
		return nil
	}
	if depth+1 >= maxInterpDepth {
		c.miss(real, interp, "script interpreters nested too deep")
		return nil
	}
	if !strings.HasPrefix(interp, "/") {
		c.miss(real, interp, "relative interpreter path depends on the working directory")
		return nil
	}
	ireal, err := c.program(interp, depth+1)
	switch {
	case err == nil:
		c.addNeed(real, ireal)
	case isAbsent(err):
		c.miss(real, interp, "interpreter: "+err.Error())
	default:
		return fmt.Errorf("%s: interpreter: %w", p, err)
	}
	// "#!/usr/bin/env NAME" runs NAME from PATH: the kernel cannot tell, but
	// without NAME the script does not run either.
	if path.Base(interp) != "env" || arg == "" {
		return nil
	}
	cmd := envCommand(arg)
	if cmd == "" {
		return nil
	}
	for _, dir := range strings.Split(defaultEnv, ":") {
		cand := dir + "/" + cmd
		if strings.Contains(cmd, "/") {
			cand = cmd
		}
		if !c.isFile(cand) {
			if strings.Contains(cmd, "/") {
				break
			}
			continue
		}
		creal, err := c.program(cand, depth+1)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", p, cand, err)
		}
		c.addNeed(real, creal)
		return nil
	}
	c.miss(real, cmd, "not found in PATH "+defaultEnv)
	return nil
}

// envCommand returns the command env(1) would run for the argument string
// of a "#!/usr/bin/env ..." line: options and VAR=value assignments are
// skipped ("-S" splits the rest, which the kernel passes as one argument).
func envCommand(arg string) string {
	fields := strings.Fields(arg)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		switch {
		case f == "-S" || f == "--split-string" || f == "-" || f == "-i" || f == "--ignore-environment":
		case f == "-u" || f == "-C" || f == "--unset" || f == "--chdir":
			i++ // takes a value
		case strings.HasPrefix(f, "-"):
		case strings.Contains(f, "="):
		default:
			return f
		}
	}
	return ""
}

// isAbsent tells errors meaning "this path leads nowhere" from I/O errors.
func isAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// rawDir is the origin ld.so computes from a path: everything before the
// last slash, without cleaning "..", which the kernel resolves later
// (physically), or "/" for a file in the root directory.
func rawDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
