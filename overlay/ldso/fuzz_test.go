package ldso

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"testing"
)

// FuzzCache feeds arbitrary bytes to the ld.so.cache parser: it must never
// panic or read out of bounds, and whatever it accepts must answer lookups
// with strings that are in the file. The seed corpus in
// testdata/fuzz/FuzzCache holds caches written by ldconfig (new, old and
// compat formats, one with glibc-hwcaps entries) and crafted ones.
func FuzzCache(f *testing.F) {
	hw := []string{"x86-64-v2", "x86-64-v3"}
	f.Add(buildCache("new", binary.LittleEndian, 2, testCacheEntries(), hw))
	f.Add(buildCache("compat", binary.LittleEndian, 2, testCacheEntries(), hw))
	f.Add(buildCache("old", binary.BigEndian, 0, testCacheEntries(), nil))
	abis := []abi{testABI(abiX8664), testABI(abiI386), testABI(abiAArch64), testABI(abiS390X), testABI(abiARMHF)}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCache(b)
		if err != nil {
			return
		}
		n := 0
		for name, entries := range c.byName {
			n += len(entries)
			for _, e := range entries {
				if !bytes.Contains(b, []byte(e.path)) || !bytes.Contains(b, []byte(name)) {
					t.Fatalf("entry %q -> %q not in the input", name, e.path)
				}
			}
			for _, a := range abis {
				for _, h := range [][]string{nil, {"x86-64-v3"}, a.hwcapsSubdirs()} {
					if p, ok, _ := c.lookup(name, a, h); ok && !bytes.Contains(b, []byte(p)) {
						t.Fatalf("lookup %q -> %q not in the input", name, p)
					}
				}
			}
		}
		if n != c.count {
			t.Fatalf("count %d, entries %d", c.count, n)
		}
	})
}

// FuzzDlopenNote feeds arbitrary note areas to the .note.dlopen parser in
// both byte orders and both note alignments. The seed corpus in
// testdata/fuzz/FuzzDlopenNote holds real note sections.
func FuzzDlopenNote(f *testing.F) {
	arr := `[{"feature":"zstd","description":"zstd compression","priority":"recommended","soname":["libzstd.so.1"]}]`
	f.Add(noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", arr}), false, false)
	f.Add(noteBytes(binary.BigEndian, 8, [3]string{"GNU", "5", "x"}, [3]string{"FDO", "0x407c0c0a", `{"soname":"libx.so.1"}`}), true, true)
	f.Fuzz(func(t *testing.T, b []byte, big, align8 bool) {
		var bo binary.ByteOrder = binary.LittleEndian
		if big {
			bo = binary.BigEndian
		}
		align := uint64(4)
		if align8 {
			align = 8
		}
		deps, err := parseDlopenNotes(b, bo, align)
		if err != nil {
			return
		}
		for _, d := range deps {
			if len(d.Sonames) == 0 || d.Priority == "" {
				t.Fatalf("accepted %+v", d)
			}
			for _, s := range d.Sonames {
				if s == "" {
					t.Fatalf("empty soname in %+v", d)
				}
			}
		}
	})
}

// FuzzVersionRecords feeds arbitrary DT_VERNEED and DT_VERDEF chains and
// string tables to the version parsers in both byte orders: they must
// never panic, loop or allocate without bound, and every name they return
// must come from the string table. The seed corpus in
// testdata/fuzz/FuzzVersionRecords holds real .gnu.version_r and
// .gnu.version_d sections (with their .dynstr) of Debian 12's libc, libm
// and coreutils' ls, and crafted chains (a cycle, a record past the end).
func FuzzVersionRecords(f *testing.F) {
	rec := make([]byte, 32)
	binary.LittleEndian.PutUint16(rec[0:], 1)
	binary.LittleEndian.PutUint32(rec[8:], 16) // vn_aux
	binary.LittleEndian.PutUint32(rec[24:], 1) // vna_name
	binary.LittleEndian.PutUint32(rec[28:], 0) // vna_next
	binary.LittleEndian.PutUint32(rec[12:], 0) // vn_next
	f.Add(rec, []byte("\x00libc.so.6\x00"), uint64(0), false, false)
	cyc := append([]byte(nil), rec...)
	binary.LittleEndian.PutUint32(cyc[28:], 0xfffffff0) // a vna_next that wraps back
	f.Add(cyc, []byte("\x00GLIBC_2.38\x00"), uint64(0), false, false)
	f.Fuzz(func(t *testing.T, recs, strtab []byte, off uint64, big, def bool) {
		var bo binary.ByteOrder = binary.LittleEndian
		if big {
			bo = binary.BigEndian
		}
		str := func(o uint64) (string, error) { return readCString(bytes.NewReader(strtab), int64(min(o, 1<<40))) }
		var names []string
		if def {
			defs, err := readVerdef(bytes.NewReader(recs), bo, off, str)
			if err != nil {
				return
			}
			for _, d := range defs {
				names = append(names, d.name)
			}
		} else {
			needs, err := readVerneed(bytes.NewReader(recs), bo, off, str)
			if err != nil {
				return
			}
			if len(needs) > maxVersionRecords {
				t.Fatalf("%d needs accepted", len(needs))
			}
			for _, n := range needs {
				names = append(names, n.file, n.name)
			}
		}
		for _, n := range names {
			if !bytes.Contains(strtab, []byte(n)) {
				t.Fatalf("name %q not in the string table", n)
			}
		}
	})
}

// memFile is one file held in memory, for FuzzParseObject.
type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// oneFileFS is an FS holding a single regular file, /f.
type oneFileFS []byte

func (m oneFileFS) Lstat(string) (fs.FileMode, error) { return 0o755, nil }
func (m oneFileFS) Readlink(string) (string, error)   { return "", fs.ErrInvalid }
func (m oneFileFS) ReadDir(string) ([]string, error)  { return nil, fs.ErrInvalid }
func (m oneFileFS) Open(string) (FileReader, error)   { return memFile{bytes.NewReader(m)}, nil }

// FuzzParseObject feeds arbitrary files to the ELF reader (interpreter,
// dynamic section, DT_VERNEED and DT_VERDEF found through PT_LOAD, dlopen
// notes): it must end without hanging or allocating without bound, and
// every version name it returns must be in the file. The seed corpus in
// testdata/fuzz/FuzzParseObject holds small stripped objects built with
// gcc and a version script: a library defining GLIBC_2.2.5 to GLIBC_2.38
// and a program needing two of them.
func FuzzParseObject(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b[:min(len(b), 64)])
		if err != nil {
			return
		}
		o, err := parseObject(oneFileFS(b), "/f", h, nil)
		if err != nil {
			return
		}
		for _, n := range o.verneed {
			if !bytes.Contains(b, []byte(n.file)) || !bytes.Contains(b, []byte(n.name)) {
				t.Fatalf("need %+v not in the file", n)
			}
		}
		for _, d := range o.verdef {
			if !bytes.Contains(b, []byte(d.name)) {
				t.Fatalf("definition %+v not in the file", d)
			}
		}
	})
}
