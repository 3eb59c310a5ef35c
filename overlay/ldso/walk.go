package ldso

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// maxSymlinks is the number of symlinks the kernel follows while resolving
// one path before it gives up with ELOOP (MAXSYMLINKS).
const maxSymlinks = 40

// Kind is the type of a File.
type Kind uint8

// Kinds of File.
const (
	Regular Kind = iota + 1
	Symlink
)

func (k Kind) String() string {
	switch k {
	case Regular:
		return "regular"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// File is one entry to copy from the root. Path is absolute inside the root
// and physical: none of its parent components is a symlink.
type File struct {
	Path   string
	Kind   Kind
	Target string // for a Symlink: the target exactly as stored in the link
}

// LoopError reports a path whose symlinks never end. It unwraps to
// syscall.ELOOP.
type LoopError struct {
	Path  string   // the path being resolved, as given
	Chain []string // the links followed, "link -> target", in order
	Limit bool     // true: stopped at maxSymlinks rather than at a repeat
}

func (e *LoopError) Error() string {
	what := "symlink loop"
	if e.Limit {
		what = fmt.Sprintf("more than %d symlinks", maxSymlinks)
	}
	return fmt.Sprintf("%s: %s: %s", e.Path, what, strings.Join(e.Chain, ", "))
}

func (e *LoopError) Unwrap() error { return syscall.ELOOP }

// view reads a root directory as the kernel inside it would: every path is
// resolved component by component with symlinks interpreted relative to the
// root, so nothing ever reaches outside it. It caches lstat and readlink
// results and whole walks, because the same directories are probed for every
// library; it belongs to one Closure call and is not safe for concurrent use.
type view struct {
	fsys  FS
	nodes map[string]node
	walks map[string]walked
}

type node struct {
	mode   fs.FileMode
	target string // for symlinks
	err    error
}

// walked is the result of resolving one path.
type walked struct {
	phys  string      // physical path inside the root
	links []File      // every symlink followed, in order
	mode  fs.FileMode // of phys (never a symlink)
	err   error
}

func newView(fsys FS) *view {
	return &view{fsys: fsys, nodes: map[string]node{}, walks: map[string]walked{}}
}

func (v *view) lstat(phys string) node {
	if n, ok := v.nodes[phys]; ok {
		return n
	}
	var n node
	mode, err := v.fsys.Lstat(phys)
	switch {
	case err != nil:
		n.err = underlying(err)
	case mode&fs.ModeSymlink != 0:
		n.mode = mode
		n.target, err = v.fsys.Readlink(phys)
		if err != nil {
			n.err = underlying(err)
		}
	default:
		n.mode = mode
	}
	v.nodes[phys] = n
	return n
}

// underlying strips the *PathError so that the error can be re-wrapped with
// the path inside the root instead of the host path.
func underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// walk resolves p (absolute, inside the root) like the kernel's path lookup
// with the root as "/": ".." is physical and stops at the root, absolute
// link targets restart at the root.
func (v *view) walk(p string) walked {
	if w, ok := v.walks[p]; ok {
		return w
	}
	w := v.walkUncached(p)
	v.walks[p] = w
	return w
}

func (v *view) walkUncached(p string) walked {
	if !strings.HasPrefix(p, "/") {
		return walked{err: &fs.PathError{Op: "resolve", Path: p, Err: errors.New("path is not absolute")}}
	}
	rest := splitPath(p)
	cur := "/"
	var w walked
	var chain []string
	var seen map[string]int // link+remaining path -> index in chain
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case ".":
			continue
		case "..":
			cur = parentDir(cur)
			continue
		}
		next := joinPhys(cur, comp)
		n := v.lstat(next)
		if n.err != nil {
			return walked{err: &fs.PathError{Op: "resolve", Path: p, Err: fmt.Errorf("%s: %w", next, n.err)}}
		}
		switch {
		case n.mode&fs.ModeSymlink != 0:
			chain = append(chain, next+" -> "+n.target)
			// Following the same link with the same remaining path
			// again can only repeat forever: report the cycle itself.
			key := next + "\x00" + strings.Join(rest, "/")
			if i, ok := seen[key]; ok {
				return walked{err: &LoopError{Path: p, Chain: chain[i:]}}
			}
			if seen == nil {
				seen = map[string]int{}
			}
			seen[key] = len(chain) - 1
			if len(chain) > maxSymlinks {
				return walked{err: &LoopError{Path: p, Chain: chain, Limit: true}}
			}
			w.links = append(w.links, File{Path: next, Kind: Symlink, Target: n.target})
			if n.target == "" {
				return walked{err: &fs.PathError{Op: "resolve", Path: p, Err: fmt.Errorf("%s: empty symlink: %w", next, syscall.ENOENT)}}
			}
			if strings.HasPrefix(n.target, "/") {
				cur = "/"
			}
			rest = append(splitPath(n.target), rest...)
		case n.mode.IsDir():
			cur = next
		default:
			if len(rest) > 0 {
				return walked{err: &fs.PathError{Op: "resolve", Path: p, Err: fmt.Errorf("%s: %w", next, syscall.ENOTDIR)}}
			}
			cur = next
		}
	}
	w.phys = cur
	if cur == "/" {
		w.mode = fs.ModeDir
	} else {
		w.mode = v.lstat(cur).mode
	}
	return w
}

// splitPath returns the non-empty components of p.
func splitPath(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, s := range parts {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parentDir(phys string) string {
	i := strings.LastIndexByte(phys, '/')
	if i <= 0 {
		return "/"
	}
	return phys[:i]
}

func joinPhys(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// readFile reads a file inside the root, following symlinks inside it.
// max bounds what is read, so a hostile root cannot exhaust memory.
func (v *view) readFile(p string, max int64) ([]byte, walked, error) {
	w := v.walk(p)
	if w.err != nil {
		return nil, w, w.err
	}
	if !w.mode.IsRegular() {
		return nil, w, &fs.PathError{Op: "read", Path: p, Err: errors.New("not a regular file")}
	}
	f, err := v.fsys.Open(w.phys)
	if err != nil {
		return nil, w, &fs.PathError{Op: "open", Path: p, Err: underlying(err)}
	}
	defer f.Close()
	if f.Size() > max {
		return nil, w, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("larger than %d bytes", max)}
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF && f.Size() > 0 {
		return nil, w, &fs.PathError{Op: "read", Path: p, Err: underlying(err)}
	}
	return b, w, nil
}

// isFile reports whether p resolves to a regular file inside the root.
func (v *view) isFile(p string) bool {
	w := v.walk(p)
	return w.err == nil && w.mode.IsRegular()
}

func (v *view) isDir(p string) bool {
	w := v.walk(p)
	return w.err == nil && w.mode.IsDir()
}

// glob expands a shell pattern inside the root (ldconfig's include lines),
// component by component so that symlinked directories stay inside the
// root. Matches are returned sorted, as glob(3) does, as logical paths.
func (v *view) glob(pattern string) []string {
	if !strings.HasPrefix(pattern, "/") {
		return nil
	}
	paths := []string{"/"}
	for _, comp := range splitPath(pattern) {
		var next []string
		for _, dir := range paths {
			if !hasMeta(comp) {
				p := joinPhys(dir, comp)
				if w := v.walk(p); w.err == nil {
					next = append(next, p)
				}
				continue
			}
			w := v.walk(dir)
			if w.err != nil || !w.mode.IsDir() {
				continue
			}
			ents, err := v.fsys.ReadDir(w.phys)
			if err != nil {
				continue
			}
			for _, name := range ents {
				if name == "" {
					continue
				}
				// glob(3) does not match a leading dot with a wildcard.
				if name[0] == '.' && comp[0] != '.' {
					continue
				}
				if ok, _ := filepath.Match(comp, name); ok {
					next = append(next, joinPhys(dir, name))
				}
			}
		}
		paths = next
	}
	sort.Strings(paths)
	return paths
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }
