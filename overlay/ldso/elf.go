package ldso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds on what is read from one object, so that a corrupt or hostile file
// costs little: real values are far below these.
const (
	maxInterp    = 4096
	maxDynamic   = 1 << 20 // bytes of PT_DYNAMIC
	maxDynString = 1 << 16 // one DT_NEEDED/RPATH/RUNPATH/SONAME string
	maxStrtab    = 1 << 20 // a DT_STRTAB read whole (libc's is 25 KiB)
	maxNoteBytes = 1 << 20 // one note section or segment
	sniffSize    = 256     // the kernel's BINPRM_BUF_SIZE, enough for #! lines
)

// header is the part of the ELF header ld.so checks before it maps a file.
type header struct {
	class    elf.Class
	data     elf.Data
	identVer byte
	osabi    elf.OSABI
	abiVer   byte
	typ      elf.Type
	machine  elf.Machine
	version  uint32
	flags    uint32
}

func (h *header) order() binary.ByteOrder {
	if h.data == elf.ELFDATA2MSB {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// parseHeader decodes an ELF header from the first bytes of a file.
func parseHeader(b []byte) (*header, error) {
	if len(b) < 4 || string(b[:4]) != elf.ELFMAG {
		return nil, errors.New("invalid ELF header")
	}
	if len(b) < elf.EI_NIDENT+8 {
		return nil, errors.New("file too short")
	}
	h := &header{
		class:    elf.Class(b[elf.EI_CLASS]),
		data:     elf.Data(b[elf.EI_DATA]),
		identVer: b[elf.EI_VERSION],
		osabi:    elf.OSABI(b[elf.EI_OSABI]),
		abiVer:   b[elf.EI_ABIVERSION],
	}
	var bo binary.ByteOrder
	switch h.data {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("unknown ELF data encoding %d", h.data)
	}
	var size, flagsOff int
	switch h.class {
	case elf.ELFCLASS32:
		size, flagsOff = 52, 36
	case elf.ELFCLASS64:
		size, flagsOff = 64, 48
	default:
		return nil, fmt.Errorf("unknown ELF class %d", h.class)
	}
	if len(b) < size {
		return nil, errors.New("file too short")
	}
	h.typ = elf.Type(bo.Uint16(b[16:]))
	h.machine = elf.Machine(bo.Uint16(b[18:]))
	h.version = bo.Uint32(b[20:])
	h.flags = bo.Uint32(b[flagsOff:])
	return h, nil
}

// ELFKind reads only the ELF header and program headers of f: loadable
// reports an executable or shared object (not a relocatable file such as a
// kernel module, nor a core file), program one with PT_INTERP, which the
// kernel starts through a loader. Anything that is not such an ELF file is
// neither. It is much cheaper than parsing the file with debug/elf, which
// also reads the section table, for sorting the many files of an image.
func ELFKind(f io.ReaderAt) (loadable, program bool) {
	var b [64]byte
	n, _ := f.ReadAt(b[:], 0)
	h, err := parseHeader(b[:n])
	if err != nil || (h.typ != elf.ET_EXEC && h.typ != elf.ET_DYN) {
		return false, false
	}
	bo := h.order()
	var phoff uint64
	var phentsize, phnum uint16
	if h.class == elf.ELFCLASS32 {
		phoff, phentsize, phnum = uint64(bo.Uint32(b[28:])), bo.Uint16(b[42:]), bo.Uint16(b[44:])
	} else {
		phoff, phentsize, phnum = bo.Uint64(b[32:]), bo.Uint16(b[54:]), bo.Uint16(b[56:])
	}
	size := uint64(phentsize) * uint64(phnum)
	if phentsize < 8 || size > maxProgHeaders || phoff > 1<<40 {
		return true, false
	}
	ph := make([]byte, size)
	if _, err := f.ReadAt(ph, int64(phoff)); err != nil {
		return true, false
	}
	for i := uint64(0); i < size; i += uint64(phentsize) {
		if elf.ProgType(bo.Uint32(ph[i:])) == elf.PT_INTERP {
			return true, true
		}
	}
	return true, false
}

// maxProgHeaders bounds the program header table Kind reads.
const maxProgHeaders = 64 << 10

// verdict is what ld.so's open_verify makes of a candidate file.
type verdict uint8

const (
	accept     verdict = iota
	otherClass         // skipped, remembered for the error message
	otherMach          // skipped silently
	reject             // an error: the search stops
)

// check compares a candidate's header with the ABI of the loading process
// in the order open_verify does, returning the error text for reject.
func (a abi) check(h *header) (verdict, string) {
	switch {
	case h.class != a.class:
		return otherClass, ""
	case h.data != a.data:
		if a.data == elf.ELFDATA2MSB {
			return reject, "ELF file data encoding not big-endian"
		}
		return reject, "ELF file data encoding not little-endian"
	case h.identVer != byte(elf.EV_CURRENT):
		return reject, "ELF file version ident does not match current one"
	case h.osabi != elf.ELFOSABI_NONE && h.osabi != elf.ELFOSABI_LINUX:
		return reject, "ELF file OS ABI invalid"
	case h.osabi == elf.ELFOSABI_NONE && h.abiVer != 0:
		return reject, "ELF file ABI version invalid"
	case h.version != uint32(elf.EV_CURRENT):
		return reject, "ELF file version does not match current one"
	case !a.accepts(h):
		return otherMach, ""
	case h.typ != elf.ET_DYN && h.typ != elf.ET_EXEC:
		return reject, "only ET_DYN and ET_EXEC can be loaded"
	}
	return accept, ""
}

// object is what the closure needs from one ELF file.
type object struct {
	hdr        *header
	interp     string // PT_INTERP, "" when none
	needed     []string
	soname     string
	rpath      string // DT_RPATH, ignored by ld.so when DT_RUNPATH exists
	runpath    string
	hasRpath   bool
	hasRunpath bool
	nodeflib   bool
	dlopen     []dlopenDep
	verneed    []verNeed // DT_VERNEED
	verdef     []verDef  // DT_VERDEF
	hasVerdef  bool
}

// parseObject reads an ELF file's interpreter, dynamic section and dlopen
// notes. The dynamic section is found through PT_DYNAMIC and its strings
// through DT_STRTAB mapped by PT_LOAD, as ld.so does, so that files without
// section headers work too.
//
// pages, when not nil, is reused to read the file (and let go of it at
// the end); nil takes a new one.
func parseObject(fsys FS, phys string, hdr *header, pages *pagedReader) (o *object, err error) {
	file, err := fsys.Open(phys)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	f := pages
	if f == nil {
		f = newPagedReader(file, file.Size())
	} else {
		f.reset(file, file.Size())
	}
	defer f.reset(nil, 0)
	// Roots hold arbitrary files; a decoder bug on a hostile one must
	// become an error naming the file, not a crash of the whole build.
	defer func() {
		if p := recover(); p != nil {
			o, err = nil, fmt.Errorf("malformed ELF file: %v", p)
		}
	}()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, err
	}
	o = &object{hdr: hdr}
	var dyn *elf.Prog
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			if p.Filesz > maxInterp {
				return nil, fmt.Errorf("PT_INTERP of %d bytes", p.Filesz)
			}
			b := make([]byte, p.Filesz)
			if _, err := f.ReadAt(b, int64(p.Off)); err != nil {
				return nil, fmt.Errorf("reading PT_INTERP: %w", err)
			}
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			o.interp = string(b)
		case elf.PT_DYNAMIC:
			if dyn == nil {
				dyn = p
			}
		}
	}
	if dyn != nil {
		if err := o.readDynamic(f, ef, dyn); err != nil {
			return nil, err
		}
	}
	deps, err := readDlopenNotes(f, ef)
	if err != nil {
		return nil, err
	}
	o.dlopen = deps
	return o, nil
}

func (o *object) readDynamic(f io.ReaderAt, ef *elf.File, dyn *elf.Prog) error {
	if dyn.Filesz > maxDynamic {
		return fmt.Errorf("PT_DYNAMIC of %d bytes", dyn.Filesz)
	}
	b := make([]byte, dyn.Filesz)
	if _, err := f.ReadAt(b, int64(dyn.Off)); err != nil && err != io.EOF {
		return fmt.Errorf("reading PT_DYNAMIC: %w", err)
	}
	bo := o.hdr.order()
	entSize := 16
	if o.hdr.class == elf.ELFCLASS32 {
		entSize = 8
	}
	var strtab, strsz uint64
	haveStrtab := false
	var needed []uint64
	var soname, rpath, runpath uint64
	haveSoname := false
	var verneed, verdef uint64
	haveVerneed := false
	for i := 0; i+entSize <= len(b); i += entSize {
		var tag int64
		var val uint64
		if entSize == 16 {
			tag, val = int64(bo.Uint64(b[i:])), bo.Uint64(b[i+8:])
		} else {
			tag, val = int64(int32(bo.Uint32(b[i:]))), uint64(bo.Uint32(b[i+4:]))
		}
		switch elf.DynTag(tag) {
		case elf.DT_NULL:
			i = len(b)
		case elf.DT_STRTAB:
			strtab, haveStrtab = val, true
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_NEEDED:
			needed = append(needed, val)
		case elf.DT_SONAME:
			soname, haveSoname = val, true
		case elf.DT_RPATH:
			// get-dynamic-info.h keeps the last entry of a tag.
			rpath, o.hasRpath = val, true
		case elf.DT_RUNPATH:
			runpath, o.hasRunpath = val, true
		case elf.DT_FLAGS_1:
			o.nodeflib = val&uint64(elf.DF_1_NODEFLIB) != 0
		case elf.DT_VERNEED:
			verneed, haveVerneed = val, true
		case elf.DT_VERDEF:
			verdef, o.hasVerdef = val, true
		}
	}
	if !haveStrtab {
		if len(needed) > 0 || o.hasRpath || o.hasRunpath || haveSoname || haveVerneed || o.hasVerdef {
			return errors.New("dynamic section without DT_STRTAB")
		}
		return nil
	}
	strOff, ok := vaddrToOffset(ef, strtab)
	if !ok {
		return fmt.Errorf("DT_STRTAB %#x is not in a PT_LOAD segment", strtab)
	}
	// With symbol versions there are tens of strings to read: the
	// table is read at once when it is of a reasonable size.
	var table []byte
	if (haveVerneed || o.hasVerdef) && strsz > 0 && strsz <= maxStrtab {
		table = make([]byte, strsz)
		if n, err := f.ReadAt(table, int64(strOff)); err != nil {
			table = table[:n]
		}
	}
	str := func(off uint64) (string, error) {
		if off < uint64(len(table)) {
			if i := bytes.IndexByte(table[off:], 0); i >= 0 && i <= maxDynString {
				return string(table[off : off+uint64(i)]), nil
			}
		}
		s, err := readCString(f, int64(strOff+off))
		if err != nil {
			return "", fmt.Errorf("dynamic string at %#x: %w", off, err)
		}
		return s, nil
	}
	for _, v := range needed {
		s, err := str(v)
		if err != nil {
			return err
		}
		o.needed = append(o.needed, s)
	}
	var err error
	if haveSoname {
		if o.soname, err = str(soname); err != nil {
			return err
		}
	}
	if o.hasRpath {
		if o.rpath, err = str(rpath); err != nil {
			return err
		}
	}
	if o.hasRunpath {
		if o.runpath, err = str(runpath); err != nil {
			return err
		}
	}
	if haveVerneed {
		off, ok := vaddrToOffset(ef, verneed)
		if !ok {
			return fmt.Errorf("DT_VERNEED %#x is not in a PT_LOAD segment", verneed)
		}
		if o.verneed, err = readVerneed(f, bo, off, str); err != nil {
			return err
		}
	}
	if o.hasVerdef {
		off, ok := vaddrToOffset(ef, verdef)
		if !ok {
			return fmt.Errorf("DT_VERDEF %#x is not in a PT_LOAD segment", verdef)
		}
		if o.verdef, err = readVerdef(f, bo, off, str); err != nil {
			return err
		}
	}
	return nil
}

func vaddrToOffset(ef *elf.File, addr uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr-p.Vaddr < p.Filesz {
			return p.Off + (addr - p.Vaddr), true
		}
	}
	return 0, false
}

// readCString reads a NUL-terminated string at off, in small steps because
// string tables of large libraries are megabytes and only a few strings are
// wanted.
func readCString(r io.ReaderAt, off int64) (string, error) {
	var out []byte
	buf := make([]byte, 256)
	for len(out) < maxDynString {
		n, err := r.ReadAt(buf, off+int64(len(out)))
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:n]...)
		if err != nil {
			if err == io.EOF {
				return "", errors.New("unterminated string")
			}
			return "", err
		}
	}
	return "", errors.New("string too long")
}

// readDlopenNotes collects the .note.dlopen entries of a file. Notes are
// looked for by owner and type in every note section (as the specification
// asks), or in PT_NOTE segments when the file has no section headers.
func readDlopenNotes(f io.ReaderAt, ef *elf.File) ([]dlopenDep, error) {
	bo := ef.ByteOrder
	var deps []dlopenDep
	read := func(off, size, align uint64) error {
		if size > maxNoteBytes {
			return fmt.Errorf("note area of %d bytes", size)
		}
		b := make([]byte, size)
		if _, err := f.ReadAt(b, int64(off)); err != nil {
			return fmt.Errorf("reading notes: %w", err)
		}
		d, err := parseDlopenNotes(b, bo, align)
		if err != nil {
			return err
		}
		deps = append(deps, d...)
		return nil
	}
	sawSections := false
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE {
			if s.Type != elf.SHT_NULL {
				sawSections = true
			}
			continue
		}
		sawSections = true
		if err := read(s.Offset, s.FileSize, s.Addralign); err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
	}
	if sawSections {
		return deps, nil
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_NOTE {
			if err := read(p.Off, p.Filesz, p.Align); err != nil {
				return nil, fmt.Errorf("PT_NOTE: %w", err)
			}
		}
	}
	return deps, nil
}

// kindOf classifies a file by its first bytes.
type fileKind uint8

const (
	kindOther fileKind = iota
	kindELF
	kindScript
)

func sniff(b []byte) fileKind {
	switch {
	case len(b) >= 4 && string(b[:4]) == elf.ELFMAG:
		return kindELF
	case len(b) >= 2 && b[0] == '#' && b[1] == '!':
		return kindScript
	}
	return kindOther
}

// parseShebang returns the interpreter and its optional argument from a
// "#!" line, split the way the kernel's binfmt_script does: the
// interpreter ends at the first blank, the rest of the line is one argument.
func parseShebang(b []byte) (interp, arg string, ok bool) {
	b = b[2:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	line := strings.TrimRight(string(b), " \t\r")
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return "", "", false
	}
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		return line[:i], strings.TrimLeft(line[i:], " \t"), true
	}
	return line, "", true
}
