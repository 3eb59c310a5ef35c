package ldso

import (
	"bytes"
	"encoding/binary"
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
