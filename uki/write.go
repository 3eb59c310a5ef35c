package uki

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/initrd-remix/initrd-remix/internal/countio"
)

// Content is the new content of a section.
type Content struct {
	R    io.ReaderAt
	Size int64
}

// Bytes is a Content held in memory.
func Bytes(b []byte) Content { return Content{R: bytes.NewReader(b), Size: int64(len(b))} }

// Set gives a section of the base profile new content; a section the image
// lacks is added after the others.
type Set struct {
	Name string
	Content
}

// Edit says what Write changes; everything else is copied.
type Edit struct {
	Set []Set
	// Drop removes these sections from the base profile.
	Drop []string
	// BaseOnly removes every .profile section and the sections of its
	// profile: the result has the base profile alone.
	BaseOnly bool
}

// dataRead is the characteristics of a section Write adds: initialized
// data, readable (as ukify and objcopy add them).
const dataRead = 0x00000040 | 0x40000000

type outSection struct {
	Section
	src Content
}

// Layout is the plan of a Write: the new section table and sizes.
type Layout struct {
	Sections     []Section
	SizeOfImage  uint32
	SizeOfHeader uint32
	Size         int64 // bytes of the file
}

func (f *File) plan(e Edit) (*Layout, []outSection, error) {
	sets := map[string]*Set{}
	for i := range e.Set {
		s := &e.Set[i]
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, nil, fmt.Errorf("section name %q: 1 to 8 bytes", s.Name)
		}
		if s.Size < 0 || s.Size > math.MaxUint32 {
			return nil, nil, fmt.Errorf("section %s: %d bytes do not fit a PE section", s.Name, s.Size)
		}
		sets[s.Name] = s
	}
	var stub, payload []outSection
	done := map[string]bool{}
	for _, s := range f.Sections {
		if s.Profile > 0 && e.BaseOnly {
			continue
		}
		if strings.HasPrefix(s.Name, "/") {
			return nil, nil, formatErr("section %q has a long name from the COFF string table, which a rewrite would lose", s.Name)
		}
		o := outSection{Section: s, src: Content{R: io.NewSectionReader(f.r, int64(s.Offset), int64(s.RawSize)), Size: int64(s.RawSize)}}
		if s.Profile == 0 {
			if slices.Contains(e.Drop, s.Name) {
				continue
			}
			if set, ok := sets[s.Name]; ok && !done[s.Name] {
				done[s.Name] = true
				o.src = set.Content
				o.VirtualSize = uint32(set.Size)
			} else if ok {
				return nil, nil, formatErr("section %q occurs twice in the base profile", s.Name)
			}
		}
		if IsPayload(s.Name) || s.Profile > 0 {
			payload = append(payload, o)
		} else {
			stub = append(stub, o)
		}
	}
	for _, s := range e.Set {
		if !done[s.Name] {
			payload = append(payload, outSection{Section: Section{Name: s.Name, VirtualSize: uint32(s.Size), Characteristics: dataRead}, src: s.Content})
		}
	}
	if len(stub) == 0 {
		return nil, nil, formatErr("no stub sections (only UKI payload): nothing to boot")
	}
	// The stub keeps its addresses (its code and relocations refer to
	// them), in ascending order as the PE format requires; the payload
	// follows, adjacent, each at the next SectionAlignment boundary.
	slices.SortStableFunc(stub, func(a, b outSection) int { return cmp.Compare(a.VirtualAddress, b.VirtualAddress) })
	out := append(stub, payload...)
	if len(out) > MaxSections {
		return nil, nil, formatErr("%d sections, more than the %d of the PE format", len(out), MaxSections)
	}
	hdr := uint32(align(int64(f.secOff+40*len(out)), int64(f.FileAlign)))
	hdr = max(hdr, f.SizeOfHeader)
	if hdr > stub[0].VirtualAddress {
		return nil, nil, formatErr("no room for the section table: %d headers bytes would overlap the stub's first section at address %#x", hdr, stub[0].VirtualAddress)
	}
	va := uint64(0)
	for _, s := range stub {
		va = max(va, uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, 1)))
	}
	pos := uint64(hdr)
	for i := range out {
		s := &out[i]
		if i >= len(stub) {
			va = align(va, uint64(f.SectionAlign))
			s.VirtualAddress = uint32(va)
			s.RawSize = uint32(align(uint64(s.src.Size), uint64(f.FileAlign)))
			va += uint64(max(s.VirtualSize, 1))
		} else {
			s.RawSize = uint32(align(uint64(s.RawSize), uint64(f.FileAlign)))
		}
		if s.RawSize == 0 {
			s.Offset = 0
			continue
		}
		pos = align(pos, uint64(f.FileAlign))
		s.Offset = uint32(pos)
		pos += uint64(s.RawSize)
		if pos > math.MaxUint32 || va > math.MaxUint32 {
			return nil, nil, formatErr("the image would pass 4 GiB, the limit of PE offsets")
		}
	}
	l := &Layout{SizeOfImage: uint32(align(va, uint64(f.SectionAlign))), SizeOfHeader: hdr, Size: int64(pos)}
	for _, s := range out {
		l.Sections = append(l.Sections, s.Section)
	}
	return l, out, nil
}

// Write writes the image f edited by e to w and returns the bytes written.
// The result has no certificate table (a signature over the old image does
// not match the new one) and no COFF symbol table, CheckSum 0 (EFI loaders
// do not check it; Authenticode leaves it out).
func (f *File) Write(w io.Writer, e Edit) (int64, error) {
	l, out, err := f.plan(e)
	if err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	hdr := make([]byte, l.SizeOfHeader)
	copy(hdr, f.header)
	clear(hdr[f.secOff:])
	peOff := f.optOff - 24
	le.PutUint32(hdr[peOff+12:], 0) // PointerToSymbolTable
	le.PutUint32(hdr[peOff+16:], 0) // NumberOfSymbols
	le.PutUint16(hdr[peOff+6:], uint16(len(out)))
	opt := hdr[f.optOff:f.secOff]
	le.PutUint32(opt[56:], l.SizeOfImage)
	le.PutUint32(opt[60:], l.SizeOfHeader)
	le.PutUint32(opt[64:], 0) // CheckSum
	dirOff := 96
	if f.pe32Plus {
		dirOff = 112
	}
	if int(le.Uint32(opt[dirOff-4:])) > 4 && len(opt) >= dirOff+40 {
		clear(opt[dirOff+32 : dirOff+40]) // the certificate table
	}
	for i, s := range out {
		b := hdr[f.secOff+40*i:]
		copy(b[:8], s.Name)
		le.PutUint32(b[8:], s.VirtualSize)
		le.PutUint32(b[12:], s.VirtualAddress)
		le.PutUint32(b[16:], s.RawSize)
		le.PutUint32(b[20:], s.Offset)
		le.PutUint32(b[36:], s.Characteristics)
	}
	cw := &countio.Writer{W: w}
	if _, err := cw.Write(hdr); err != nil {
		return cw.N, err
	}
	for _, s := range out {
		if s.RawSize == 0 {
			continue
		}
		if err := zeros(cw, int64(s.Offset)-cw.N); err != nil {
			return cw.N, err
		}
		n, err := io.Copy(cw, io.NewSectionReader(s.src.R, 0, s.src.Size))
		if err != nil {
			return cw.N, fmt.Errorf("section %s: %w", s.Name, err)
		}
		if n != s.src.Size {
			return cw.N, fmt.Errorf("section %s: %d of %d bytes", s.Name, n, s.src.Size)
		}
		if err := zeros(cw, int64(s.Offset)+int64(s.RawSize)-cw.N); err != nil {
			return cw.N, err
		}
	}
	if cw.N != l.Size {
		return cw.N, fmt.Errorf("wrote %d bytes, the layout has %d", cw.N, l.Size)
	}
	return cw.N, nil
}

// zeros writes n zero bytes to w, which has written w.N so far.
func zeros(w *countio.Writer, n int64) error {
	if n < 0 {
		return fmt.Errorf("layout: at %d, %d bytes behind", w.N, -n)
	}
	_, err := io.CopyN(w, zeroReader{}, n)
	return err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
