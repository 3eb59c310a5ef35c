package overlay

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/kmodindex"
)

// modDB is what depmod wrote for one kernel, as text: the files kmod's
// indexes are rebuilt from.
type modDB struct {
	deps    []modDep            // modules.dep lines, in order
	byName  map[string]int      // module name -> index in deps
	aliases []modLine           // modules.alias: alias pattern, module
	symbols []modLine           // modules.symbols: "symbol:NAME", module
	softdep map[string][]string // modules.softdep: module -> lines
	devname []modLine           // modules.devname: module, rest of the line
	// norm holds the aliases' patterns as lookup compares them ("" for
	// one aliasNormalize refuses), made on the first lookup: a driver
	// class looks up thousands of names against some 20,000 aliases.
	norm []string
}

type modDep struct {
	path string   // relative to lib/modules/KVER
	deps []string // paths
}

type modLine struct{ key, mod string }

// modName is the name kmod uses for a module file: the base name without
// .ko and compression suffix, with '-' as '_'.
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func newModDB() *modDB {
	return &modDB{byName: map[string]int{}, softdep: map[string][]string{}}
}

// parseModDep reads modules.dep: "PATH: DEP DEP...".
func (db *modDB) parseDep(name string, b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, rest, ok := strings.Cut(line, ":")
		if !ok || p == "" {
			return fmt.Errorf("%s:%d: want \"module.ko: deps\", got %q", name, n, line)
		}
		db.addDep(modDep{path: p, deps: strings.Fields(rest)})
	}
	return sc.Err()
}

func (db *modDB) addDep(d modDep) {
	m := modName(d.path)
	if i, ok := db.byName[m]; ok {
		db.deps[i] = d
		return
	}
	db.byName[m] = len(db.deps)
	db.deps = append(db.deps, d)
}

// parseAliasLike reads "alias KEY MODULE" lines (modules.alias,
// modules.symbols).
func parseAliasLike(name string, b []byte) ([]modLine, error) {
	var out []modLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("%s:%d: want \"alias KEY MODULE\", got %q", name, n, sc.Text())
		}
		out = append(out, modLine{key: f[1], mod: f[2]})
	}
	return out, sc.Err()
}

// parseSoftdep reads "softdep MODULE pre: A B post: C" lines.
func (db *modDB) parseSoftdep(b []byte) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			continue
		}
		m := strings.ReplaceAll(f[1], "-", "_")
		db.softdep[m] = append(db.softdep[m], line)
	}
}

// softdeps returns the modules a softdep line names (pre and post).
func softdeps(line string) []string {
	var out []string
	for _, f := range strings.Fields(line)[2:] {
		if f == "pre:" || f == "post:" {
			continue
		}
		out = append(out, f)
	}
	return out
}

func parseDevname(b []byte) []modLine {
	var out []modLine
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		out = append(out, modLine{key: f[0], mod: strings.Join(f[1:], " ")})
	}
	return out
}

// texts renders the text files.
func (db *modDB) texts() map[string][]byte {
	var dep, alias, sym, soft, dev bytes.Buffer
	for _, d := range db.deps {
		dep.WriteString(d.path + ":")
		for _, x := range d.deps {
			dep.WriteString(" " + x)
		}
		dep.WriteString("\n")
	}
	alias.WriteString("# Aliases extracted from modules themselves.\n")
	for _, a := range db.aliases {
		fmt.Fprintf(&alias, "alias %s %s\n", a.key, a.mod)
	}
	sym.WriteString("# Aliases for symbols, used by symbol_request().\n")
	for _, s := range db.symbols {
		fmt.Fprintf(&sym, "alias %s %s\n", s.key, s.mod)
	}
	soft.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, d := range db.deps {
		for _, l := range db.softdep[modName(d.path)] {
			soft.WriteString(l + "\n")
		}
	}
	dev.WriteString("# Device nodes to trigger on-demand module loading.\n")
	for _, d := range db.devname {
		fmt.Fprintf(&dev, "%s %s\n", d.key, d.mod)
	}
	return map[string][]byte{
		"modules.dep": dep.Bytes(), "modules.alias": alias.Bytes(), "modules.symbols": sym.Bytes(),
		"modules.softdep": soft.Bytes(), "modules.devname": dev.Bytes(),
	}
}

// indexes builds the binary indexes as depmod does: the priority of a
// value is the module's position in modules.dep.
func (db *modDB) indexes() (map[string][]byte, error) {
	dep, alias, sym := kmodindex.New(), kmodindex.New(), kmodindex.New()
	for i, d := range db.deps {
		line := d.path + ":"
		if len(d.deps) > 0 {
			line += " " + strings.Join(d.deps, " ")
		}
		if err := dep.Add(modName(d.path), kmodindex.Value{Priority: uint32(i), Text: line}); err != nil {
			return nil, err
		}
	}
	add := func(ix *kmodindex.Index, lines []modLine) error {
		for _, l := range lines {
			m := strings.ReplaceAll(l.mod, "-", "_")
			i, ok := db.byName[m]
			if !ok {
				continue // a module the image does not hold
			}
			if err := ix.Add(l.key, kmodindex.Value{Priority: uint32(i), Text: m}); err != nil {
				return err
			}
		}
		return nil
	}
	var normalized []modLine
	for _, a := range db.aliases {
		k, ok := aliasNormalize(a.key)
		if ok {
			normalized = append(normalized, modLine{key: k, mod: a.mod})
		}
	}
	if err := add(alias, normalized); err != nil {
		return nil, err
	}
	if err := add(sym, db.symbols); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for name, ix := range map[string]*kmodindex.Index{"modules.dep.bin": dep, "modules.alias.bin": alias, "modules.symbols.bin": sym} {
		b, err := ix.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

// aliasNormalize is kmod's alias_normalize: '-' becomes '_' outside
// bracket expressions, which are kept as they are; an unterminated bracket
// makes the alias unusable (depmod skips it).
func aliasNormalize(a string) (string, bool) {
	b := []byte(a)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '[':
			j := strings.IndexByte(a[i:], ']')
			if j < 0 {
				return "", false
			}
			i += j
		case ']':
			return "", false
		case '-':
			b[i] = '_'
		}
	}
	return string(b), true
}
