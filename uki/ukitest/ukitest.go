// Package ukitest builds synthetic unified kernel images for tests: a
// PE32+ image laid out the way a linker and ukify lay one out, with the
// sections a test gives it.
package ukitest

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// Section is a section of a synthetic image.
type Section struct {
	Name  string
	Data  []byte
	VSize uint32 // 0: len(Data)
}

func align(v, a uint32) uint32 { return (v + a - 1) / a * a }

// Synth builds a PE32+ EFI application: headers of one FileAlignment unit,
// the sections at ascending addresses each on a SectionAlignment
// boundary, raw data on FileAlignment boundaries (.text and .linux code,
// the others initialized data, with SizeOfCode and SizeOfInitializedData
// their sums), and, when cert is not nil, a certificate table at the end.
func Synth(t testing.TB, secs []Section, cert []byte) []byte {
	t.Helper()
	const fa, sa = 0x200, 0x1000
	const code, data = 0x60000020, 0x40000040
	le := binary.LittleEndian
	hdr := make([]byte, 0x400)
	if 0x98+240+40*len(secs) > len(hdr) {
		t.Fatalf("ukitest: %d sections do not fit the headers", len(secs))
	}
	copy(hdr, "MZ")
	le.PutUint32(hdr[0x3c:], 0x80)
	copy(hdr[0x80:], "PE\x00\x00")
	le.PutUint16(hdr[0x84:], 0x8664)
	le.PutUint16(hdr[0x86:], uint16(len(secs)))
	le.PutUint16(hdr[0x94:], 240)
	le.PutUint16(hdr[0x96:], 0x2022)
	opt := hdr[0x98:]
	le.PutUint16(opt, 0x20b)
	le.PutUint64(opt[24:], 0x140000000)
	le.PutUint32(opt[32:], sa)
	le.PutUint32(opt[36:], fa)
	le.PutUint32(opt[60:], uint32(len(hdr)))
	le.PutUint16(opt[68:], 10) // EFI application
	le.PutUint32(opt[108:], 16)
	var body []byte
	var codeSize, dataSize uint32
	pos, va := uint32(len(hdr)), uint32(sa)
	for i, s := range secs {
		vs := s.VSize
		if vs == 0 {
			vs = uint32(len(s.Data))
		}
		raw := align(uint32(len(s.Data)), fa)
		b := hdr[0x98+240+40*i:]
		copy(b, s.Name)
		le.PutUint32(b[8:], vs)
		le.PutUint32(b[12:], va)
		le.PutUint32(b[16:], raw)
		le.PutUint32(b[20:], pos)
		ch := uint32(data)
		if s.Name == ".text" || s.Name == ".linux" {
			ch = code
			codeSize += raw
		} else {
			dataSize += raw
		}
		le.PutUint32(b[36:], ch)
		d := make([]byte, raw)
		copy(d, s.Data)
		body = append(body, d...)
		pos += raw
		va = align(va+max(vs, 1), sa)
	}
	le.PutUint32(opt[4:], codeSize)
	le.PutUint32(opt[8:], dataSize)
	le.PutUint32(opt[56:], va)
	if cert != nil {
		le.PutUint32(opt[112+32:], uint32(len(hdr)+len(body)))
		le.PutUint32(opt[112+36:], uint32(len(cert)))
	}
	return slices.Concat(hdr, body, cert)
}

// Stub is the sections of a systemd-stub: code, data, SBAT, the stub's
// magic and relocations.
func Stub() []Section {
	return []Section{
		{Name: ".text", Data: bytes.Repeat([]byte{0xcc}, 700)},
		{Name: ".data", Data: []byte("stub data"), VSize: 0x1800},
		{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")},
		{Name: ".sdmagic", Data: []byte("#### LoaderInfo: systemd-stub 257 ####")},
		{Name: ".reloc", Data: make([]byte, 12)},
	}
}
