package ldso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Symbol versioning (the GNU extension every glibc system uses): an object
// lists in DT_VERNEED, per library file name, the version names it needs
// from it (GLIBC_2.34, ...), and a library lists in DT_VERDEF the names it
// defines. After loading a process, ld.so checks every object's needs
// against the definitions of the object loaded for that file name
// (elf/dl-version.c, _dl_check_map_versions and match_symbol): a library
// without DT_VERDEF satisfies everything ("no version information
// available" is only a warning); a name it does not define is fatal
// ("version `GLIBC_2.38' not found (required by /init)") unless the need
// carries VER_FLG_WEAK. Matching compares the ELF hash and the name.

// Record layouts (the same for ELFCLASS32 and ELFCLASS64).
const (
	verneedSize = 16 // vn_version, vn_cnt, vn_file, vn_aux, vn_next
	vernauxSize = 16 // vna_hash, vna_flags, vna_other, vna_name, vna_next
	verdefSize  = 20 // vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next
	verdauxSize = 8  // vda_name, vda_next

	verFlagBase = 0x1 // VER_FLG_BASE: the definition naming the object itself
	verFlagWeak = 0x2 // VER_FLG_WEAK: a need whose absence is not fatal

	// maxVersionRecords bounds each chain of a hostile file; glibc's libc
	// defines about 50 versions and programs need a handful.
	maxVersionRecords = 4096
)

// verNeed is one version an object needs from a library file name.
type verNeed struct {
	file string // vn_file: the DT_NEEDED / soname of the library
	name string // vna_name, e.g. GLIBC_2.34
	hash uint32 // vna_hash
	weak bool
}

// verDef is one version an object defines.
type verDef struct {
	name string // the first vda_name of the record
	hash uint32 // vd_hash
	base bool
}

// elfHash is the SysV ELF hash the version records carry.
func elfHash(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h = h<<4 + uint32(s[i])
		if g := h & 0xf0000000; g != 0 {
			h ^= g >> 24
		}
		h &^= 0xf0000000
	}
	return h
}

// verChain walks one chain of version records starting at file offset off,
// calling each with the record's bytes and file offset; next returns the
// offset of the following record relative to this one (0 ends it), as ld.so
// follows vn_next and vd_next rather than the DT_*NUM counts.
func verChain(r io.ReaderAt, off uint64, size int, what string, each func(b []byte, at uint64) (next uint32, err error)) error {
	for n := 0; ; n++ {
		if n >= maxVersionRecords {
			return fmt.Errorf("%s: more than %d records", what, maxVersionRecords)
		}
		b := make([]byte, size)
		if _, err := r.ReadAt(b, int64(off)); err != nil {
			return fmt.Errorf("%s record at offset %#x: %w", what, off, eofIsShort(err))
		}
		next, err := each(b, off)
		if err != nil {
			return fmt.Errorf("%s record at offset %#x: %w", what, off, err)
		}
		if next == 0 {
			return nil
		}
		off += uint64(next)
		if off > 1<<40 {
			return fmt.Errorf("%s record offset %#x beyond any file", what, off)
		}
	}
}

func eofIsShort(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readVerneed parses the DT_VERNEED chain at file offset off.
func readVerneed(r io.ReaderAt, bo binary.ByteOrder, off uint64, str func(uint64) (string, error)) ([]verNeed, error) {
	var out []verNeed
	err := verChain(r, off, verneedSize, "DT_VERNEED", func(b []byte, at uint64) (uint32, error) {
		if v := bo.Uint16(b[0:]); v != 1 {
			return 0, fmt.Errorf("unsupported Verneed version %d", v)
		}
		file, err := str(uint64(bo.Uint32(b[4:])))
		if err != nil {
			return 0, err
		}
		aux := bo.Uint32(b[8:])
		if aux == 0 {
			return bo.Uint32(b[12:]), nil
		}
		err = verChain(r, at+uint64(aux), vernauxSize, "Vernaux", func(a []byte, _ uint64) (uint32, error) {
			name, err := str(uint64(bo.Uint32(a[8:])))
			if err != nil {
				return 0, err
			}
			out = append(out, verNeed{file: file, name: name, hash: bo.Uint32(a[0:]), weak: bo.Uint16(a[4:])&verFlagWeak != 0})
			if len(out) > maxVersionRecords {
				return 0, fmt.Errorf("more than %d needed versions", maxVersionRecords)
			}
			return bo.Uint32(a[12:]), nil
		})
		if err != nil {
			return 0, err
		}
		return bo.Uint32(b[12:]), nil
	})
	return out, err
}

// readVerdef parses the DT_VERDEF chain at file offset off.
func readVerdef(r io.ReaderAt, bo binary.ByteOrder, off uint64, str func(uint64) (string, error)) ([]verDef, error) {
	var out []verDef
	err := verChain(r, off, verdefSize, "DT_VERDEF", func(b []byte, at uint64) (uint32, error) {
		if v := bo.Uint16(b[0:]); v != 1 {
			return 0, fmt.Errorf("unsupported Verdef version %d", v)
		}
		d := verDef{hash: bo.Uint32(b[8:]), base: bo.Uint16(b[2:])&verFlagBase != 0}
		if bo.Uint16(b[6:]) > 0 { // vd_cnt: the record has a name
			a := make([]byte, verdauxSize)
			if _, err := r.ReadAt(a, int64(at+uint64(bo.Uint32(b[12:])))); err != nil {
				return 0, fmt.Errorf("Verdaux: %w", eofIsShort(err))
			}
			name, err := str(uint64(bo.Uint32(a[0:])))
			if err != nil {
				return 0, err
			}
			d.name = name
		}
		out = append(out, d)
		return bo.Uint32(b[16:]), nil
	})
	return out, err
}

// defines reports whether the object defines version name with hash, as
// match_symbol compares them.
func (o *object) defines(name string, hash uint32) bool {
	for _, d := range o.verdef {
		if d.hash == hash && d.name == name {
			return true
		}
	}
	return false
}

// VersionNeed is one symbol version an object needs (DT_VERNEED).
type VersionNeed struct {
	File    string // the library's file name as the object states it (libc.so.6)
	Version string // GLIBC_2.34
	Weak    bool   // VER_FLG_WEAK: ld.so only warns when it is missing
	// Library is the real path of the object that satisfies File in the
	// process, "" when the need was read from a file on its own.
	Library string
}

// VersionMissing is a version an object needs that the library loaded for
// it does not define: ld.so refuses to start the process.
type VersionMissing struct {
	Object  string // real path of the object that needs it
	Library string // real path of the library loaded for File, "" when none is
	File    string // the library's file name as the object states it
	Version string
	// Dlopen is set when the object is loaded only by dlopen(): then
	// the dlopen() call fails, not the program.
	Dlopen bool
}

func (m VersionMissing) String() string {
	if m.Library == "" {
		return fmt.Sprintf("%s: version `%s' of %s needed, but %s is not loaded", m.Object, m.Version, m.File, m.File)
	}
	return fmt.Sprintf("%s: version `%s' not found (required by %s)", m.Library, m.Version, m.Object)
}

// Versions is what one ELF file says about symbol versions.
type Versions struct {
	// Versioned is set when the file has DT_VERDEF; without it, ld.so
	// accepts any version needed of it.
	Versioned bool
	Defines   []string // version names defined, the base (the soname) included
	Needs     []VersionNeed
}

// Private reports whether a version name marks an interface private to
// one build of a package (GLIBC_PRIVATE): two objects that share one must
// come from the same build, which symbol versions cannot check.
func Private(version string) bool { return strings.HasSuffix(version, "_PRIVATE") }

func (o *object) versions() *Versions {
	v := &Versions{Versioned: o.hasVerdef}
	for _, d := range o.verdef {
		if d.name != "" {
			v.Defines = append(v.Defines, d.name)
		}
	}
	for _, n := range o.verneed {
		v.Needs = append(v.Needs, VersionNeed{File: n.file, Version: n.name, Weak: n.weak})
	}
	return v
}

// Versions reads the symbol versions of the ELF file at p (absolute,
// inside the root, symlinks followed). A file that is not a loadable ELF
// object is an error.
func (r *Resolver) Versions(p string) (*Versions, error) {
	o, err := r.objectAt(p)
	if err != nil {
		return nil, err
	}
	return o.versions(), nil
}

// objectAt parses the ELF object at p.
func (r *Resolver) objectAt(p string) (*object, error) {
	c := newClosure(r)
	w := c.v.walk(p)
	if w.err != nil {
		return nil, w.err
	}
	head, err := c.head(w.phys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	hdr, err := parseHeader(head)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	o, err := c.object(w.phys, hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return o, nil
}

// Find returns the real path of the file the loader of this root loads
// for a library name needed by an object with the given ELF header (its
// first 64 bytes: class, byte order and machine select the directories
// and cache entries) and no DT_RPATH or DT_RUNPATH: the root's
// ld.so.cache, then the default directories, preferring the best
// glibc-hwcaps level. It returns "" when nothing is found.
func (r *Resolver) Find(name string, header []byte) (string, error) {
	h, err := parseHeader(header)
	if err != nil {
		return "", err
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("%s: a path, not a library name", name)
	}
	c := newClosure(r)
	p := &process{c: c, cfg: c.configFor(abiOf(h)), byReal: map[string]*lm{}}
	p.main = &lm{obj: &object{hdr: h}}
	sr := p.search(p.main, name, 0)
	if sr.found == nil {
		return "", nil
	}
	return sr.found.w.phys, nil
}
