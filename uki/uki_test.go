package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// sec is a section of a synthetic image.
type sec struct {
	name  string
	data  []byte
	vsize uint32 // 0: len(data)
}

// synth builds a PE32+ image the way a linker and ukify lay one out:
// headers of one FileAlignment unit, sections at ascending addresses each on
// a SectionAlignment boundary, raw data on FileAlignment boundaries, and
// optionally a certificate table at the end.
func synth(t testing.TB, secs []sec, cert []byte) []byte {
	t.Helper()
	const fa, sa = 0x200, 0x1000
	le := binary.LittleEndian
	hdr := make([]byte, 0x400)
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
	pos, va := uint32(len(hdr)), uint32(sa)
	for i, s := range secs {
		vs := s.vsize
		if vs == 0 {
			vs = uint32(len(s.data))
		}
		raw := uint32(align(int64(len(s.data)), fa))
		b := hdr[0x98+240+40*i:]
		copy(b, s.name)
		le.PutUint32(b[8:], vs)
		le.PutUint32(b[12:], va)
		le.PutUint32(b[16:], raw)
		le.PutUint32(b[20:], pos)
		ch := uint32(dataRead)
		if s.name == ".text" || s.name == Linux {
			ch = 0x60000020
		}
		le.PutUint32(b[36:], ch)
		d := make([]byte, raw)
		copy(d, s.data)
		body = append(body, d...)
		pos += raw
		va = uint32(align(int64(va)+int64(max(vs, 1)), sa))
	}
	le.PutUint32(opt[56:], va)
	if cert != nil {
		le.PutUint32(opt[112+32:], uint32(len(hdr)+len(body)))
		le.PutUint32(opt[112+36:], uint32(len(cert)))
	}
	return slices.Concat(hdr, body, cert)
}

func stubSecs() []sec {
	return []sec{
		{name: ".text", data: bytes.Repeat([]byte{0xcc}, 700)},
		{name: ".data", data: []byte("stub data"), vsize: 0x1800},
		{name: ".sbat", data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")},
		{name: ".sdmagic", data: []byte("#### LoaderInfo: systemd-stub 257 ####")},
		{name: ".reloc", data: make([]byte, 12)},
	}
}

func ukiSecs(extra ...sec) []sec {
	s := append(stubSecs(),
		sec{name: OSRel, data: []byte("NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")},
		sec{name: Cmdline, data: []byte("console=ttyS0 root=/dev/vda rw\x00")},
		sec{name: Uname, data: []byte("6.12.0-test")},
		sec{name: PCRSig, data: []byte(`{"sha256":[]}`)},
		sec{name: PCRPKey, data: []byte("-----BEGIN PUBLIC KEY-----\n")},
		sec{name: Linux, data: append([]byte("MZ"), bytes.Repeat([]byte{1}, 3000)...)},
		sec{name: Ucode, data: []byte("ucode-cpio-12345")},
		sec{name: Initrd, data: bytes.Repeat([]byte("07070100"), 1000)},
	)
	return append(s, extra...)
}

func parseBytes(t testing.TB, b []byte) (*File, error) {
	t.Helper()
	return Parse(bytes.NewReader(b), int64(len(b)))
}

func TestParseReadsSectionsAndInitrd(t *testing.T) {
	img := synth(t, ukiSecs(), []byte("signature!"))
	f, err := parseBytes(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Signed() || f.Profiles() != 0 {
		t.Errorf("signed %v profiles %d", f.Signed(), f.Profiles())
	}
	cmd, ok, err := f.ReadText(Cmdline)
	if err != nil || !ok || cmd != "console=ttyS0 root=/dev/vda rw" {
		t.Errorf("cmdline %q %v %v", cmd, ok, err)
	}
	r, n, err := f.Initrd()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	want := append([]byte("ucode-cpio-12345"), bytes.Repeat([]byte("07070100"), 1000)...)
	if int64(len(got)) != n || !bytes.Equal(got, want) {
		t.Errorf("initrd: %d bytes (said %d), want %d", len(got), n, len(want))
	}
	// debug/pe agrees on every section.
	pf, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Sections) != len(f.Sections) {
		t.Fatalf("debug/pe: %d sections, we %d", len(pf.Sections), len(f.Sections))
	}
	for i, s := range pf.Sections {
		o := f.Sections[i]
		if s.Name != o.Name || s.VirtualAddress != o.VirtualAddress || s.Offset != o.Offset || s.Size != o.RawSize || s.VirtualSize != o.VirtualSize {
			t.Errorf("section %d: debug/pe %+v, we %+v", i, s.SectionHeader, o)
		}
	}
}

func TestUcodePaddedToFour(t *testing.T) {
	secs := ukiSecs()
	for i := range secs {
		if secs[i].name == Ucode {
			secs[i].data = []byte("odd")
		}
	}
	f, err := parseBytes(t, synth(t, secs, nil))
	if err != nil {
		t.Fatal(err)
	}
	r, n, _ := f.Initrd()
	got, _ := io.ReadAll(r)
	if n != int64(len(got)) || !bytes.HasPrefix(got, []byte("odd\x0007070100")) {
		t.Errorf("initrd starts %q", got[:12])
	}
}

func TestProfiles(t *testing.T) {
	f, err := parseBytes(t, synth(t, ukiSecs(sec{name: Profile, data: []byte("ID=shell\n")}, sec{name: Cmdline, data: []byte("rd.break")}), nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.Profiles() != 1 {
		t.Errorf("profiles %d", f.Profiles())
	}
	if c, _, _ := f.ReadText(Cmdline); c != "console=ttyS0 root=/dev/vda rw" {
		t.Errorf("base cmdline %q", c)
	}
}

func TestBadInput(t *testing.T) {
	good := synth(t, ukiSecs(), nil)
	noInitrd := synth(t, stubSecs(), nil)
	withLinux := synth(t, append(stubSecs(), sec{name: Linux, data: []byte("MZ")}), nil)
	overlapping := bytes.Clone(good)
	// Point .cmdline's raw data at .osrel's.
	le := binary.LittleEndian
	osrelOff := le.Uint32(overlapping[0x98+240+40*5+20:])
	le.PutUint32(overlapping[0x98+240+40*6+20:], osrelOff)
	overlapVA := bytes.Clone(good)
	le.PutUint32(overlapVA[0x98+240+40*6+12:], le.Uint32(overlapVA[0x98+240+40*5+12:]))
	overHeaders := bytes.Clone(good)
	le.PutUint32(overHeaders[0x98+240+20:], 0x100)
	for _, tc := range []struct {
		name  string
		in    []byte
		want  string
		notPE bool
	}{
		{"empty", nil, "not a PE", true},
		{"cpio", []byte("070701" + strings.Repeat("0", 200)), "not a PE", true},
		{"MZ only", append([]byte("MZ"), make([]byte, 100)...), "not a PE", true},
		{"not a UKI", synth(t, stubSecs(), nil), "no .linux section", false},
		{"truncated", good[:len(good)-100], "truncated", false},
		{"truncated headers", good[:0x100], "truncated", false},
		{"overlapping file ranges", overlapping, "overlapping sections", false},
		{"overlapping addresses", overlapVA, "overlapping sections", false},
		{"section over headers", overHeaders, "overlaps the headers", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBytes(t, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrNotPE) != tc.notPE {
				t.Errorf("ErrNotPE %v", errors.Is(err, ErrNotPE))
			}
		})
	}
	_ = noInitrd
	f, err := parseBytes(t, withLinux)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Initrd(); err == nil || !strings.Contains(err.Error(), "no .initrd section") {
		t.Errorf("no .initrd: %v", err)
	}
}

func TestWriteRescueLayout(t *testing.T) {
	img := synth(t, ukiSecs(sec{name: Profile, data: []byte("ID=x\n")}, sec{name: Cmdline, data: []byte("x")}), []byte("a signature"))
	f, err := parseBytes(t, img)
	if err != nil {
		t.Fatal(err)
	}
	initrd := bytes.Repeat([]byte("rescue!!"), 5000)
	var buf bytes.Buffer
	n, err := f.Write(&buf, Edit{
		Set:      []Set{{Initrd, Bytes(initrd)}, {Cmdline, Bytes([]byte("console=ttyS0 rd.lvm=0"))}, {".extra", Bytes([]byte("added"))}},
		Drop:     []string{PCRSig, PCRPKey, Ucode},
		BaseOnly: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("wrote %d, buffer %d", n, buf.Len())
	}
	out := buf.Bytes()
	g, err := parseBytes(t, out)
	if err != nil {
		t.Fatalf("our own reader: %v", err)
	}
	var names []string
	for _, s := range g.Sections {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != ".text .data .sbat .sdmagic .reloc .osrel .cmdline .uname .linux .initrd .extra" {
		t.Errorf("sections %s", got)
	}
	if g.Signed() || g.Profiles() != 0 {
		t.Errorf("signed %v profiles %d", g.Signed(), g.Profiles())
	}
	// Stub sections keep address and bytes.
	for _, name := range []string{".text", ".data", ".sbat", ".sdmagic", ".reloc"} {
		a, b := f.Lookup(name), g.Lookup(name)
		da, _ := io.ReadAll(f.Open(a))
		db, _ := io.ReadAll(g.Open(b))
		if a.VirtualAddress != b.VirtualAddress || a.VirtualSize != b.VirtualSize || !bytes.Equal(da, db) {
			t.Errorf("%s moved or changed: %+v -> %+v", name, *a, *b)
		}
	}
	r, _, err := g.Initrd()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, initrd) {
		t.Errorf("initrd not the replacement (%d bytes)", len(got))
	}
	if c, _, _ := g.ReadText(Cmdline); c != "console=ttyS0 rd.lvm=0" {
		t.Errorf("cmdline %q", c)
	}
	lin, _ := io.ReadAll(g.Open(g.Lookup(Linux)))
	lin0, _ := io.ReadAll(f.Open(f.Lookup(Linux)))
	if !bytes.Equal(lin, lin0) {
		t.Error(".linux changed")
	}
	// The independent oracle: debug/pe reads the same table and contents,
	// and the headers add up.
	pf, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	oh := pf.OptionalHeader.(*pe.OptionalHeader64)
	if oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].Size != 0 {
		t.Error("certificate table kept")
	}
	prevEnd := uint32(0)
	for i, s := range pf.Sections {
		if s.VirtualAddress%oh.SectionAlignment != 0 || (s.Size > 0 && s.Offset%oh.FileAlignment != 0) || s.Size%oh.FileAlignment != 0 {
			t.Errorf("%s misaligned: %+v", s.Name, s.SectionHeader)
		}
		if s.VirtualAddress < prevEnd {
			t.Errorf("%s not in ascending address order", s.Name)
		}
		prevEnd = s.VirtualAddress + s.VirtualSize
		if s.Offset < oh.SizeOfHeaders || s.VirtualAddress < oh.SizeOfHeaders {
			t.Errorf("%s over the headers", s.Name)
		}
		if s.Name != g.Sections[i].Name {
			t.Errorf("debug/pe section %d is %s", i, s.Name)
		}
	}
	if last := pf.Sections[len(pf.Sections)-1]; oh.SizeOfImage != uint32(align(int64(last.VirtualAddress+last.VirtualSize), int64(oh.SectionAlignment))) {
		t.Errorf("SizeOfImage %#x, last section ends %#x", oh.SizeOfImage, last.VirtualAddress+last.VirtualSize)
	}
	d, err := pf.Section(Initrd).Data()
	if err != nil || !bytes.HasPrefix(d, initrd) {
		t.Errorf("debug/pe .initrd: %v", err)
	}
}

// TestWriteGrowsHeaders adds more sections than the headers have room for:
// the layout is rebuilt with larger headers when the stub's first section
// leaves room, and refused when it does not.
func TestWriteGrowsHeaders(t *testing.T) {
	f, err := parseBytes(t, synth(t, ukiSecs(), nil))
	if err != nil {
		t.Fatal(err)
	}
	var e Edit
	for i := range 20 {
		e.Set = append(e.Set, Set{Name: ".x" + string(rune('a'+i)), Content: Bytes([]byte{byte(i)})})
	}
	var buf bytes.Buffer
	if _, err := f.Write(&buf, e); err != nil {
		t.Fatal(err)
	}
	g, err := parseBytes(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if g.SizeOfHeader <= f.SizeOfHeader || len(g.Sections) != len(f.Sections)+20 {
		t.Errorf("headers %d -> %d, sections %d", f.SizeOfHeader, g.SizeOfHeader, len(g.Sections))
	}
	for i := range 80 {
		e.Set = append(e.Set, Set{Name: ".y" + string(rune('a'+i)), Content: Bytes([]byte{byte(i)})})
	}
	if _, err := f.Write(io.Discard, e); err == nil || !strings.Contains(err.Error(), "more than the 96") {
		t.Errorf("100+ sections: %v", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts with an initrd can be
// written and read back with the same sections, by us and by debug/pe.
func FuzzParse(f *testing.F) {
	// The corpus in testdata/fuzz/FuzzParse holds synthetic images of
	// every shape; this one is made here so it follows synth.
	f.Add(synth(f, ukiSecs(), []byte("sig")))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := u.Write(&buf, Edit{Set: []Set{{Cmdline, Bytes([]byte("x"))}}, Drop: []string{PCRSig}, BaseOnly: true}); err != nil {
			return
		}
		g, err := Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("our output does not parse: %v", err)
		}
		if c, _, _ := g.ReadText(Cmdline); c != "x" {
			t.Fatalf("cmdline %q", c)
		}
		if _, err := pe.NewFile(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("debug/pe: %v", err)
		}
	})
}
