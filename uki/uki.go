// Package uki reads and writes unified kernel images: a PE/COFF EFI
// program (systemd-stub) that carries the kernel, the initrd, the command
// line and os-release in sections of its own (the UAPI group's Unified
// Kernel Image specification). It has one job: the PE layout. It parses
// the headers and the section table with nothing but the standard library
// and the project's countio (debug/pe serves the tests as an independent
// oracle), checks that every
// section lies inside the file and that none overlaps another or the
// headers, and writes a new image from an old one: the stub's own sections
// (.text, .data, .reloc, .sdmagic, .sbat, ...) kept byte for byte at their
// addresses, the UKI's payload sections replaced, dropped or added after
// them, with SectionAlignment, FileAlignment, SizeOfImage, SizeOfHeaders
// and NumberOfSections recomputed, and any Authenticode signature (the
// certificate table) removed, since it no longer matches.
package uki

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Section names of the UKI specification that systemd-stub reads.
const (
	Linux   = ".linux"
	Initrd  = ".initrd"
	Ucode   = ".ucode"
	Cmdline = ".cmdline"
	OSRel   = ".osrel"
	Uname   = ".uname"
	SBAT    = ".sbat"
	PCRSig  = ".pcrsig"
	PCRPKey = ".pcrpkey"
	Profile = ".profile"
	Splash  = ".splash"
	DTB     = ".dtb"
)

// payloadNames are the sections a UKI builder adds to the stub: the writer
// lays them out after the stub's own sections. .sbat is not among them: the
// stub has its own (ukify merges into it), and it stays where it is.
var payloadNames = []string{Linux, Initrd, Ucode, Cmdline, OSRel, Uname, PCRSig, PCRPKey, Profile,
	Splash, DTB, ".dtbauto", ".hwids", ".efifw"}

// IsPayload reports whether name is a section a UKI builder adds to the stub.
func IsPayload(name string) bool { return slices.Contains(payloadNames, name) }

// MaxSections bounds the section table (the PE format allows 96).
const MaxSections = 96

// Section is one entry of the section table.
type Section struct {
	Name            string `json:"name"`
	VirtualAddress  uint32 `json:"virtual_address"`
	VirtualSize     uint32 `json:"virtual_size"`
	Offset          uint32 `json:"offset"` // PointerToRawData
	RawSize         uint32 `json:"raw_size"`
	Characteristics uint32 `json:"characteristics"`
	// Profile is 0 for the base profile, n for the sections after the
	// n-th .profile section (multi-profile UKIs).
	Profile int `json:"profile"`
}

// Size is the number of bytes of the section's content: its VirtualSize,
// cut to what the file holds (the rest of a section in memory is zeros).
func (s *Section) Size() int64 { return int64(min(s.VirtualSize, s.RawSize)) }

// File is a parsed PE image with its UKI sections.
type File struct {
	r    io.ReaderAt
	size int64

	header       []byte // the file's first SizeOfHeaders bytes
	optOff       int    // offset of the optional header
	secOff       int    // offset of the section table
	pe32Plus     bool
	Machine      uint16 `json:"machine"`
	SectionAlign uint32 `json:"section_alignment"`
	FileAlign    uint32 `json:"file_alignment"`
	SizeOfImage  uint32 `json:"size_of_image"`
	SizeOfHeader uint32 `json:"size_of_headers"`
	// CertOffset and CertSize locate the certificate table (Authenticode
	// signatures); CertSize is 0 for an unsigned image.
	CertOffset uint32    `json:"cert_offset"`
	CertSize   uint32    `json:"cert_size"`
	Sections   []Section `json:"sections"`
}

// FormatError is a reason the file is not a UKI this package can use.
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return e.Msg }

func formatErr(format string, a ...any) error { return &FormatError{fmt.Sprintf(format, a...)} }

// ErrNotPE is returned (wrapped) for a file that does not start like a PE
// image: callers use it to tell a UKI from an initrd.
var ErrNotPE = errors.New("not a PE image (no MZ and PE signature)")

// IsPE reports whether head (the first bytes of a file, at least 64 of
// them) starts like a PE image: the MZ magic.
func IsPE(head []byte) bool { return len(head) >= 2 && head[0] == 'M' && head[1] == 'Z' }

// maxHeaders bounds how much of the file is read as headers.
const maxHeaders = 1 << 20

// Parse reads the PE headers and section table of r (size bytes) and
// checks them: every section inside the file, no two sections' file ranges
// or memory ranges overlapping, none over the headers, and a .linux
// section (a PE without one is not a UKI).
func Parse(r io.ReaderAt, size int64) (*File, error) {
	f, err := parsePE(r, size)
	if err != nil {
		return nil, err
	}
	if f.Lookup(Linux) == nil {
		return nil, formatErr("a PE image but not a unified kernel image: no %s section (sections: %s)", Linux, strings.Join(f.names(), " "))
	}
	return f, nil
}

func (f *File) names() []string {
	var n []string
	for _, s := range f.Sections {
		n = append(n, s.Name)
	}
	return n
}

func parsePE(r io.ReaderAt, size int64) (*File, error) {
	head := make([]byte, min(size, 4096))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(head) < 64 || !IsPE(head) {
		return nil, ErrNotPE
	}
	le := binary.LittleEndian
	peOff := int64(le.Uint32(head[0x3c:]))
	if peOff+24 > size || peOff > maxHeaders {
		return nil, formatErr("truncated: the PE header offset %#x is past the end of the file (%d bytes)", peOff, size)
	}
	// Read enough for the COFF header and a maximal optional header; the
	// section table's size is known after.
	coff := make([]byte, 24)
	if _, err := r.ReadAt(coff, peOff); err != nil {
		return nil, truncated(err, "the COFF header")
	}
	if !bytes.Equal(coff[:4], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("%w: MZ header without the PE signature at %#x", ErrNotPE, peOff)
	}
	f := &File{r: r, size: size, Machine: le.Uint16(coff[4:])}
	nsec := int(le.Uint16(coff[6:]))
	optSize := int(le.Uint16(coff[20:]))
	if nsec == 0 || nsec > MaxSections {
		return nil, formatErr("%d sections (a PE image has 1 to %d)", nsec, MaxSections)
	}
	f.optOff = int(peOff) + 24
	f.secOff = f.optOff + optSize
	end := f.secOff + nsec*40
	if int64(end) > size {
		return nil, formatErr("truncated: the section table ends at %d, past the end of the file (%d bytes)", end, size)
	}
	hdr := make([]byte, end)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, truncated(err, "the headers")
	}
	opt := hdr[f.optOff:f.secOff]
	if len(opt) < 2 {
		return nil, formatErr("no optional header: not an executable image")
	}
	var dirOff int
	switch le.Uint16(opt) {
	case 0x10b:
		dirOff = 96
	case 0x20b:
		f.pe32Plus, dirOff = true, 112
	default:
		return nil, formatErr("optional header magic %#x is neither PE32 nor PE32+", le.Uint16(opt))
	}
	if len(opt) < dirOff {
		return nil, formatErr("optional header of %d bytes, shorter than its fixed fields (%d)", len(opt), dirOff)
	}
	f.SectionAlign, f.FileAlign = le.Uint32(opt[32:]), le.Uint32(opt[36:])
	f.SizeOfImage, f.SizeOfHeader = le.Uint32(opt[56:]), le.Uint32(opt[60:])
	if !pow2(f.FileAlign) || f.FileAlign < 512 || f.FileAlign > 64<<10 || !pow2(f.SectionAlign) || f.SectionAlign < f.FileAlign {
		return nil, formatErr("alignment: FileAlignment %#x, SectionAlignment %#x (the PE format wants powers of two, 512 to 64 KiB, and SectionAlignment >= FileAlignment)", f.FileAlign, f.SectionAlign)
	}
	if int(f.SizeOfHeader) < end || int64(f.SizeOfHeader) > size || f.SizeOfHeader > maxHeaders {
		return nil, formatErr("SizeOfHeaders %d does not hold the headers (%d bytes) inside the file (%d bytes)", f.SizeOfHeader, end, size)
	}
	ndirs := int(le.Uint32(opt[dirOff-4:]))
	if ndirs > 4 && len(opt) >= dirOff+5*8 {
		f.CertOffset, f.CertSize = le.Uint32(opt[dirOff+32:]), le.Uint32(opt[dirOff+36:])
		if f.CertSize > 0 && int64(f.CertOffset)+int64(f.CertSize) > size {
			return nil, formatErr("truncated: the certificate table (%d bytes at %d) ends past the end of the file (%d bytes)", f.CertSize, f.CertOffset, size)
		}
	}
	f.header = make([]byte, f.SizeOfHeader)
	if _, err := r.ReadAt(f.header, 0); err != nil {
		return nil, truncated(err, "the headers")
	}
	profile := 0
	for i := range nsec {
		b := f.header[f.secOff+i*40:]
		s := Section{Name: string(bytes.TrimRight(b[:8], "\x00")), VirtualSize: le.Uint32(b[8:]), VirtualAddress: le.Uint32(b[12:]),
			RawSize: le.Uint32(b[16:]), Offset: le.Uint32(b[20:]), Characteristics: le.Uint32(b[36:])}
		if s.Name == Profile {
			profile++
		}
		s.Profile = profile
		if err := f.checkSection(&s); err != nil {
			return nil, err
		}
		f.Sections = append(f.Sections, s)
	}
	if err := checkOverlaps(f.Sections); err != nil {
		return nil, err
	}
	return f, nil
}

func truncated(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("truncated: the file ends inside %s", what)
	}
	return err
}

func pow2(v uint32) bool { return v != 0 && v&(v-1) == 0 }

func (f *File) checkSection(s *Section) error {
	if s.RawSize > 0 {
		if int64(s.Offset)+int64(s.RawSize) > f.size {
			return formatErr("truncated: section %q (%d bytes at %d) ends past the end of the file (%d bytes)", s.Name, s.RawSize, s.Offset, f.size)
		}
		if s.Offset < f.SizeOfHeader {
			return formatErr("section %q at file offset %d overlaps the headers (%d bytes)", s.Name, s.Offset, f.SizeOfHeader)
		}
	}
	if s.VirtualAddress < f.SizeOfHeader {
		return formatErr("section %q at address %#x overlaps the headers (%d bytes)", s.Name, s.VirtualAddress, f.SizeOfHeader)
	}
	if uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, 1)) > uint64(f.SizeOfImage) {
		return formatErr("section %q (%#x bytes at address %#x) ends past SizeOfImage %#x", s.Name, s.VirtualSize, s.VirtualAddress, f.SizeOfImage)
	}
	return nil
}

// checkOverlaps refuses two sections sharing file bytes or memory.
func checkOverlaps(secs []Section) error {
	for i := range secs {
		a := &secs[i]
		for j := i + 1; j < len(secs); j++ {
			b := &secs[j]
			if a.RawSize > 0 && b.RawSize > 0 && overlap(a.Offset, a.RawSize, b.Offset, b.RawSize) {
				return formatErr("overlapping sections: %q (file bytes %d+%d) and %q (file bytes %d+%d)", a.Name, a.Offset, a.RawSize, b.Name, b.Offset, b.RawSize)
			}
			if overlap(a.VirtualAddress, max(a.VirtualSize, 1), b.VirtualAddress, max(b.VirtualSize, 1)) {
				return formatErr("overlapping sections: %q (address %#x+%#x) and %q (address %#x+%#x)", a.Name, a.VirtualAddress, a.VirtualSize, b.Name, b.VirtualAddress, b.VirtualSize)
			}
		}
	}
	return nil
}

func overlap(a, alen, b, blen uint32) bool {
	return uint64(a) < uint64(b)+uint64(blen) && uint64(b) < uint64(a)+uint64(alen)
}

// Lookup returns the section name of the base profile (the one systemd-stub
// boots by default), or nil.
func (f *File) Lookup(name string) *Section {
	for i := range f.Sections {
		if s := &f.Sections[i]; s.Name == name && s.Profile == 0 {
			return s
		}
	}
	return nil
}

// Profiles is the number of .profile sections (0 for a single-profile UKI).
func (f *File) Profiles() int {
	if len(f.Sections) == 0 {
		return 0
	}
	return f.Sections[len(f.Sections)-1].Profile
}

// Signed reports whether the image carries a certificate table.
func (f *File) Signed() bool { return f.CertSize > 0 }

// Open returns a reader of the section's content.
func (f *File) Open(s *Section) *io.SectionReader {
	return io.NewSectionReader(f.r, int64(s.Offset), s.Size())
}

// MaxText bounds what ReadText reads: .cmdline, .osrel and .uname are a
// few hundred bytes.
const MaxText = 64 << 10

// ReadText returns the content of a small text section of the base profile
// (.cmdline, .osrel, .uname, .sbat), without trailing NUL bytes; "" and
// false when there is none.
func (f *File) ReadText(name string) (string, bool, error) {
	s := f.Lookup(name)
	if s == nil {
		return "", false, nil
	}
	if s.Size() > MaxText {
		return "", true, formatErr("section %q is %d bytes, more than the %d a text section may have", name, s.Size(), MaxText)
	}
	b := make([]byte, s.Size())
	if _, err := f.Open(s).ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", true, err
	}
	return string(bytes.TrimRight(b, "\x00")), true, nil
}

// Initrd returns what systemd-stub hands the kernel as its initrd: the
// .ucode section, then .initrd, each starting 4-byte aligned (as the kernel
// wants its cpio archives), and the total length. It fails for a UKI with
// no .initrd: there is nothing to remix.
func (f *File) Initrd() (io.Reader, int64, error) {
	init := f.Lookup(Initrd)
	if init == nil || init.Size() == 0 {
		return nil, 0, formatErr("no %s section: this unified kernel image carries no initrd to remix (sections: %s)", Initrd, strings.Join(f.names(), " "))
	}
	var parts []io.Reader
	var n int64
	if uc := f.Lookup(Ucode); uc != nil && uc.Size() > 0 {
		parts = append(parts, f.Open(uc))
		n = uc.Size()
		if pad := align(n, 4) - n; pad > 0 {
			parts = append(parts, bytes.NewReader(make([]byte, pad)))
			n += pad
		}
	}
	parts = append(parts, f.Open(init))
	return io.MultiReader(parts...), n + init.Size(), nil
}

func align[T int64 | uint32 | uint64](v, a T) T { return (v + a - 1) / a * a }
