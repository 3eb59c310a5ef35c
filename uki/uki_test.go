package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/uki/ukitest"
)

// sec is a section of a synthetic image.
type sec = ukitest.Section

func ukiSecs(extra ...sec) []sec {
	s := append(ukitest.Stub(),
		sec{Name: OSRel, Data: []byte("NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")},
		sec{Name: Cmdline, Data: []byte("console=ttyS0 root=/dev/vda rw\x00")},
		sec{Name: Uname, Data: []byte("6.12.0-test")},
		sec{Name: PCRSig, Data: []byte(`{"sha256":[]}`)},
		sec{Name: PCRPKey, Data: []byte("-----BEGIN PUBLIC KEY-----\n")},
		sec{Name: Linux, Data: append([]byte("MZ"), bytes.Repeat([]byte{1}, 3000)...)},
		sec{Name: Ucode, Data: []byte("ucode-cpio-12345")},
		sec{Name: Initrd, Data: bytes.Repeat([]byte("07070100"), 1000)},
	)
	return append(s, extra...)
}

func parseBytes(t testing.TB, b []byte) (*File, error) {
	t.Helper()
	return Parse(bytes.NewReader(b), int64(len(b)))
}

func TestParseReadsSectionsAndInitrd(t *testing.T) {
	img := ukitest.Synth(t, ukiSecs(), []byte("signature!"))
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
		if secs[i].Name == Ucode {
			secs[i].Data = []byte("odd")
		}
	}
	f, err := parseBytes(t, ukitest.Synth(t, secs, nil))
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
	f, err := parseBytes(t, ukitest.Synth(t, ukiSecs(sec{Name: Profile, Data: []byte("ID=shell\n")}, sec{Name: Cmdline, Data: []byte("rd.break")}), nil))
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
	good := ukitest.Synth(t, ukiSecs(), nil)
	noInitrd := ukitest.Synth(t, ukitest.Stub(), nil)
	withLinux := ukitest.Synth(t, append(ukitest.Stub(), sec{Name: Linux, Data: []byte("MZ")}), nil)
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
		{"not a UKI", ukitest.Synth(t, ukitest.Stub(), nil), "no .linux section", false},
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
	img := ukitest.Synth(t, ukiSecs(sec{Name: Profile, Data: []byte("ID=x\n")}, sec{Name: Cmdline, Data: []byte("x")}), []byte("a signature"))
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
	f, err := parseBytes(t, ukitest.Synth(t, ukiSecs(), nil))
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
	f.Add(ukitest.Synth(f, ukiSecs(), []byte("sig")))
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

// TestWriteSizeOfInitializedData: the optional header's SizeOfCode and
// SizeOfInitializedData are the sums of the file sizes of the code and
// initialized data sections after an edit that grows, shrinks, drops and
// adds sections, read with debug/pe; and they are what objcopy writes when
// it copies the result (objcopy recomputes them from the section table).
func TestWriteSizeOfInitializedData(t *testing.T) {
	f, err := parseBytes(t, ukitest.Synth(t, ukiSecs(), nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit Edit
	}{
		{"grow initrd", Edit{Set: []Set{{Initrd, Bytes(bytes.Repeat([]byte("x"), 100000))}}}},
		{"shrink initrd, drop", Edit{Set: []Set{{Initrd, Bytes([]byte("tiny"))}}, Drop: []string{PCRSig, PCRPKey, Ucode}}},
		{"add", Edit{Set: []Set{{".extra", Bytes(make([]byte, 5000))}}}},
		{"unchanged", Edit{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := f.Write(&buf, tc.edit); err != nil {
				t.Fatal(err)
			}
			pf, err := pe.NewFile(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			oh := pf.OptionalHeader.(*pe.OptionalHeader64)
			var code, data uint32
			for _, s := range pf.Sections {
				if s.Characteristics&pe.IMAGE_SCN_CNT_CODE != 0 {
					code += s.Size
				}
				if s.Characteristics&pe.IMAGE_SCN_CNT_INITIALIZED_DATA != 0 {
					data += s.Size
				}
			}
			if oh.SizeOfInitializedData != data || oh.SizeOfCode != code {
				t.Errorf("SizeOfInitializedData %d SizeOfCode %d; the sections sum to %d and %d", oh.SizeOfInitializedData, oh.SizeOfCode, data, code)
			}
			if data == 0 || code == 0 {
				t.Errorf("no data (%d) or code (%d) sections", data, code)
			}
			objcopyAgrees(t, buf.Bytes(), oh)
		})
	}
}

// objcopyAgrees copies img with objcopy, when it is there, and compares
// the sizes it writes with ours.
func objcopyAgrees(t *testing.T, img []byte, oh *pe.OptionalHeader64) {
	t.Helper()
	if _, err := exec.LookPath("objcopy"); err != nil {
		t.Log("no objcopy: debug/pe alone")
		return
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.efi"), filepath.Join(dir, "out.efi")
	if err := os.WriteFile(in, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("objcopy", "--target", "pei-x86-64", in, out).CombinedOutput(); err != nil {
		t.Logf("objcopy cannot copy it (%v: %s): debug/pe alone", err, msg)
		return
	}
	of, err := pe.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	ooh := of.OptionalHeader.(*pe.OptionalHeader64)
	if ooh.SizeOfInitializedData != oh.SizeOfInitializedData || ooh.SizeOfCode != oh.SizeOfCode {
		t.Errorf("objcopy writes SizeOfInitializedData %d SizeOfCode %d, we wrote %d and %d", ooh.SizeOfInitializedData, ooh.SizeOfCode, oh.SizeOfInitializedData, oh.SizeOfCode)
	}
}
