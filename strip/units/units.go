// Package units finds systemd units in an initrd tree the way systemd's
// unit search path does: the file that defines a name (etc over the vendor
// directories, a template for an instance, an alias link), its drop-ins,
// its .wants/.requires/.upholds links, and whether it is masked. It says
// nothing about what is allowed; strip and strip/audit decide that.
package units

import (
	"path"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/unitfile"
)

// Dirs is systemd's unit search path in an initrd, highest priority first.
var Dirs = []string{"etc/systemd/system.control", "etc/systemd/system", "etc/systemd/system.attached",
	"usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

// GeneratorDirs hold the generators systemd runs before loading units,
// highest priority first.
var GeneratorDirs = []string{"etc/systemd/system-generators", "usr/local/lib/systemd/system-generators", "usr/lib/systemd/system-generators", "lib/systemd/system-generators"}

// EnvGeneratorDirs hold the environment generators systemd runs at start.
var EnvGeneratorDirs = []string{"etc/systemd/system-environment-generators", "usr/local/lib/systemd/system-environment-generators", "usr/lib/systemd/system-environment-generators", "lib/systemd/system-environment-generators"}

// ShutdownDirs hold the programs systemd-shutdown runs last.
var ShutdownDirs = []string{"etc/systemd/system-shutdown", "usr/lib/systemd/system-shutdown", "lib/systemd/system-shutdown"}

// Set is a tree's units.
type Set struct {
	t    *remix.Tree
	dirs []string // Dirs that exist, resolved, duplicates (usr-merge) dropped
}

// New reads the unit directories of t.
func New(t *remix.Tree) *Set {
	return &Set{t: t, dirs: Unique(t, Dirs...)}
}

// Unique resolves each directory through the image's links and drops
// duplicates (lib/x and usr/lib/x are one directory in a usr-merged image)
// and missing ones, keeping the order.
func Unique(t *remix.Tree, dirs ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		c, n, err := t.Resolve(d, true)
		if err != nil || n == nil || !n.IsDir() || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out
}

// Below returns every name under the directory dir (already resolved),
// at any depth, sorted by path; links are listed, not followed.
func Below(t *remix.Tree, dir string) []*remix.Node {
	var out []*remix.Node
	var walk func(string)
	walk = func(d string) {
		kids, _ := t.ReadDir(d)
		for _, k := range kids {
			out = append(out, k)
			if k.IsDir() {
				walk(k.Path)
			}
		}
	}
	walk(dir)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// list returns the names directly inside dir, sorted; none when dir is
// not a directory.
func list(t *remix.Tree, dir string) []*remix.Node {
	kids, _ := t.ReadDir(dir)
	return kids
}

func (s *Set) list(dir string) []*remix.Node { return list(s.t, dir) }

// Names lists every unit name the tree defines or links from a
// .wants/.requires/.upholds directory, sorted.
func (s *Set) Names() []string {
	seen := map[string]bool{}
	for _, d := range s.dirs {
		for _, n := range s.list(d) {
			b := path.Base(n.Path)
			if n.IsDir() {
				if isDepDir(b) {
					for _, l := range s.list(n.Path) {
						seen[path.Base(l.Path)] = true
					}
				}
				continue
			}
			if isUnitName(b) {
				seen[b] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var unitTypes = map[string]bool{"service": true, "socket": true, "target": true, "mount": true, "automount": true, "swap": true,
	"path": true, "timer": true, "slice": true, "scope": true, "device": true}

func isUnitName(b string) bool {
	i := strings.LastIndexByte(b, '.')
	return i > 0 && unitTypes[b[i+1:]]
}

func isDepDir(b string) bool {
	return strings.HasSuffix(b, ".wants") || strings.HasSuffix(b, ".requires") || strings.HasSuffix(b, ".upholds")
}

// Node returns the node that defines name: the highest-priority file of
// that name, else of its template; nil if none.
func (s *Set) Node(name string) (string, *remix.Node) {
	for _, cand := range []string{name, unitfile.Template(name)} {
		if cand == "" {
			continue
		}
		for _, d := range s.dirs {
			p := d + "/" + cand
			// Not followed: a link is an alias or a mask, and a dangling
			// one (to /dev/null on a tree without /dev) still masks.
			if _, n, err := s.t.Resolve(p, false); err == nil && n != nil {
				return p, n
			}
		}
	}
	return "", nil
}

// Masked reports whether n masks a unit, generator, rules file or drop-in:
// a link to /dev/null, an empty or comment-only file, or /dev/null itself.
func Masked(n *remix.Node) bool {
	if n == nil {
		return true
	}
	switch {
	case n.IsSymlink():
		return n.Inode.Target == "/dev/null"
	case n.IsRegular():
		if n.Inode.Size() == 0 {
			return true
		}
		for _, line := range strings.Split(string(Read(n)), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, ";") {
				return false
			}
		}
		return true
	case n.IsCharDev():
		return n.Inode.RDevMajor == 1 && n.Inode.RDevMinor == 3
	}
	return false
}

// Masked reports whether name is masked (or absent).
func (s *Set) Masked(name string) bool {
	p, n := s.Node(name)
	if n != nil && n.IsSymlink() {
		if n.Inode.Target == "/dev/null" {
			return true
		}
		_, tn, err := s.t.Resolve(p, true)
		if err != nil || tn == nil {
			return true // a dangling link defines nothing systemd can load
		}
		return Masked(tn)
	}
	return Masked(n)
}

// Alias returns the name a unit is loaded as: when the file defining name
// is a link to a unit file of another name (default.target ->
// initrd.target), that name; else name.
func (s *Set) Alias(name string) string {
	p, n := s.Node(name)
	if n == nil || !n.IsSymlink() || n.Inode.Target == "/dev/null" {
		return name
	}
	b := path.Base(n.Inode.Target)
	if isUnitName(b) && b != path.Base(p) {
		return b
	}
	return name
}

// Read returns a regular file's content (nil for anything else or past
// unitfile.MaxSize).
func Read(n *remix.Node) []byte {
	if n == nil || !n.IsRegular() || n.Inode.Content == nil || n.Inode.Size() > unitfile.MaxSize {
		return nil
	}
	return remix.Head(n.Inode.Content, int(n.Inode.Size()))
}

// Dropin is one drop-in file of a unit.
type Dropin struct {
	Path string // where it is
	Name string // its file name, which a higher-priority one overrides
	Node *remix.Node
}

// Dropins returns the drop-ins systemd applies to name, in the order it
// applies them (by file name): name.d, its template's, its type's
// (service.d) and its prefixes' (foo-.service.d for foo-bar.service); a
// file in a higher-priority directory overrides a same-named one.
func (s *Set) Dropins(name string) []Dropin {
	var dirs []string
	typ := ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		typ = name[i+1:]
		base := name[:i]
		dirs = append(dirs, typ+".d")
		for j := 0; j < len(base); j++ {
			if base[j] == '-' {
				dirs = append(dirs, base[:j+1]+"."+typ+".d")
			}
		}
	}
	if t := unitfile.Template(name); t != "" {
		dirs = append(dirs, t+".d")
	}
	dirs = append(dirs, name+".d")
	byName := map[string]Dropin{}
	for _, sub := range dirs {
		// Lower-priority directories first, so higher ones override.
		for i := len(s.dirs) - 1; i >= 0; i-- {
			dir := s.dirs[i] + "/" + sub
			if n := s.t.Get(dir); n == nil || !n.IsDir() {
				continue
			}
			for _, f := range s.list(dir) {
				b := path.Base(f.Path)
				if strings.HasSuffix(b, ".conf") {
					byName[b] = Dropin{Path: f.Path, Name: b, Node: f}
				}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for k := range byName {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]Dropin, 0, len(names))
	for _, k := range names {
		out = append(out, byName[k])
	}
	return out
}

// Main returns the file that defines name, parsed, without drop-ins.
func (s *Set) Main(name string) (*unitfile.File, error) {
	p, n := s.Node(name)
	return Parse(s.t, p, n)
}

// Load returns the unit as systemd loads it, its file merged with the
// drop-ins that are not masked; an unreadable file or drop-in is an error
// naming it.
func (s *Set) Load(name string) (*unitfile.File, error) {
	p, n := s.Node(name)
	main, err := Parse(s.t, p, n)
	if err != nil {
		return nil, err
	}
	var drops []*unitfile.File
	for _, d := range s.Dropins(name) {
		if Masked(d.Node) {
			continue
		}
		f, err := Parse(s.t, d.Path, d.Node)
		if err != nil {
			return nil, err
		}
		drops = append(drops, f)
	}
	return unitfile.Merge(main, drops...), nil
}

// Parse reads the unit file or drop-in n at p, following a link; an
// absent one is empty.
func Parse(t *remix.Tree, p string, n *remix.Node) (*unitfile.File, error) {
	if n == nil {
		return &unitfile.File{}, nil
	}
	if n.IsSymlink() {
		_, n, _ = t.Resolve(p, true)
		if n == nil {
			return &unitfile.File{}, nil
		}
	}
	if !n.IsRegular() {
		return nil, &ParseError{Path: p, Err: errNotFile}
	}
	f, err := unitfile.Parse(Read(n))
	if err != nil {
		return nil, &ParseError{Path: p, Err: err}
	}
	return f, nil
}

// Links returns the units linked from name's .wants, .requires and
// .upholds directories (and its template's) in every unit directory.
func (s *Set) Links(name string) []string {
	seen := map[string]bool{}
	var out []string
	for _, base := range []string{name, unitfile.Template(name)} {
		if base == "" {
			continue
		}
		for _, suf := range []string{".wants", ".requires", ".upholds"} {
			for _, d := range s.dirs {
				dir := d + "/" + base + suf
				if n := s.t.Get(dir); n == nil || !n.IsDir() {
					continue
				}
				for _, l := range s.list(dir) {
					b := path.Base(l.Path)
					if !seen[b] {
						seen[b] = true
						out = append(out, b)
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// Executables lists the programs in dirs (generators, shutdown programs)
// that would run, by name with the node of the highest-priority one.
func Executables(t *remix.Tree, dirs []string) map[string]*remix.Node {
	out := map[string]*remix.Node{}
	ds := Unique(t, dirs...)
	for i := len(ds) - 1; i >= 0; i-- {
		for _, n := range list(t, ds[i]) {
			if n.IsDir() {
				continue
			}
			out[path.Base(n.Path)] = n
		}
	}
	return out
}

// Effective returns, by file name, the file that wins among the files
// ending in suffix in dirs (lowest priority first): a file in a later
// directory overrides a same-named one, as udev, tmpfiles.d and
// modprobe.d read their configuration.
func Effective(t *remix.Tree, dirs []string, suffix string) map[string]*remix.Node {
	eff := map[string]*remix.Node{}
	for _, d := range Unique(t, dirs...) {
		for _, n := range list(t, d) {
			if strings.HasSuffix(n.Path, suffix) {
				eff[path.Base(n.Path)] = n
			}
		}
	}
	return eff
}
