package ldso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// testEntry is one ld.so.cache entry for buildCache.
type testEntry struct {
	key, value string
	flags      int32
	hwcap      uint64 // raw; use hwcapIndex for glibc-hwcaps entries
}

func hwcapIndex(i uint32) uint64 { return hwcapExtension | uint64(i) }

// buildCache writes a cache the way ldconfig lays it out: format "new",
// "old" or "compat" (old entries, then the new format hidden in their string
// table); endianFlag is the new header's flags byte (2 little, 3 big, 0
// unrecorded). hwcaps, if any, go into a glibc-hwcaps extension section.
func buildCache(format string, bo binary.ByteOrder, endianFlag byte, entries []testEntry, hwcaps []string) []byte {
	// The string table shared by both parts; offsets relative to its start.
	var strs bytes.Buffer
	intern := map[string]uint32{}
	str := func(s string) uint32 {
		if off, ok := intern[s]; ok {
			return off
		}
		off := uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		intern[s] = off
		return off
	}
	for _, e := range entries {
		str(e.key)
		str(e.value)
	}
	for _, h := range hwcaps {
		str(h)
	}
	u32 := func(b *bytes.Buffer, v uint32) { _ = binary.Write(b, bo, v) }

	var out bytes.Buffer
	newBase := 0
	if format != "new" {
		n := 0
		for _, e := range entries {
			if e.hwcap == 0 {
				n++
			}
		}
		oldEnd := oldHeaderSize + n*oldEntrySize
		// In compat files the strings come after the new part.
		strBase := 0
		if format == "compat" {
			newBase = (oldEnd + 7) &^ 7
			strBase = newBase - oldEnd + newHeaderSize + len(entries)*newEntrySize
		}
		out.WriteString(cacheMagicOld)
		out.WriteByte(0)
		u32(&out, uint32(n))
		for _, e := range entries {
			if e.hwcap != 0 {
				continue
			}
			u32(&out, uint32(e.flags))
			u32(&out, uint32(strBase)+str(e.key))
			u32(&out, uint32(strBase)+str(e.value))
		}
		if format == "old" {
			out.Write(strs.Bytes())
			return out.Bytes()
		}
		for out.Len() < newBase {
			out.WriteByte(0)
		}
	}
	strOff := uint32(newHeaderSize + len(entries)*newEntrySize)
	extOff := 0
	if hwcaps != nil {
		extOff = (newBase + int(strOff) + strs.Len() + 3) &^ 3
	}
	out.WriteString(cacheMagicNew)
	u32(&out, uint32(len(entries)))
	u32(&out, uint32(strs.Len()))
	out.Write([]byte{endianFlag, 0, 0, 0})
	u32(&out, uint32(extOff))
	out.Write(make([]byte, 12))
	for _, e := range entries {
		u32(&out, uint32(e.flags))
		u32(&out, strOff+str(e.key))
		u32(&out, strOff+str(e.value))
		u32(&out, 0)
		_ = binary.Write(&out, bo, e.hwcap)
	}
	out.Write(strs.Bytes())
	if hwcaps != nil {
		for out.Len() < extOff {
			out.WriteByte(0)
		}
		u32(&out, extensionMagic)
		u32(&out, 1)
		u32(&out, extTagHWCaps)
		u32(&out, 0)
		u32(&out, uint32(extOff+8+16))
		u32(&out, uint32(4*len(hwcaps)))
		for _, h := range hwcaps {
			u32(&out, strOff+str(h))
		}
	}
	return out.Bytes()
}

// ABIs used by the tests (constants in spirit).
const (
	abiX8664 = iota
	abiI386
	abiAArch64
	abiS390X
	abiARMHF
)

func testABI(which int) abi {
	switch which {
	case abiI386:
		return abi{class: elf.ELFCLASS32, data: elf.ELFDATA2LSB, machine: elf.EM_386}
	case abiAArch64:
		return abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_AARCH64}
	case abiS390X:
		return abi{class: elf.ELFCLASS64, data: elf.ELFDATA2MSB, machine: elf.EM_S390}
	case abiARMHF:
		return abi{class: elf.ELFCLASS32, data: elf.ELFDATA2LSB, machine: elf.EM_ARM, float: floatHard}
	}
	return abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_X86_64}
}

func testCacheEntries() []testEntry {
	return []testEntry{
		{key: "libx.so.1", value: "/v3/libx.so.1", flags: 0x303, hwcap: hwcapIndex(1)},
		{key: "libx.so.1", value: "/v2/libx.so.1", flags: 0x303, hwcap: hwcapIndex(0)},
		{key: "libx.so.1", value: "/legacy/libx.so.1", flags: 0x303, hwcap: 1 << 3},
		{key: "libx.so.1", value: "/lib64/libx.so.1", flags: 0x303},
		{key: "libx.so.1", value: "/lib/libx.so.1", flags: 0x003},
		{key: "libx.so.1", value: "/libhf/libx.so.1", flags: 0x903},
		{key: "libx.so.1", value: "/lib/aarch64/libx.so.1", flags: 0xa03},
		{key: "liby.so.2", value: "/lib/liby.so.2", flags: 0x001},
		{key: "liby.so.2", value: "/lib/liby-libc6.so.2", flags: 0x003},
	}
}

func TestCacheFormats(t *testing.T) {
	hw := []string{"x86-64-v2", "x86-64-v3"} // sorted, as ldconfig writes them
	for _, tc := range []struct {
		format string
		bo     binary.ByteOrder
		flag   byte
		hwcaps bool // whether the format carries hwcaps entries
	}{
		{"new", binary.LittleEndian, 2, true},
		{"new", binary.LittleEndian, 0, true},
		{"new", binary.BigEndian, 3, true},
		{"old", binary.LittleEndian, 0, false},
		{"old", binary.BigEndian, 0, false},
		{"compat", binary.LittleEndian, 2, true},
	} {
		name := tc.format + "/" + tc.bo.String() + "/" + string('0'+tc.flag)
		t.Run(name, func(t *testing.T) {
			b := buildCache(tc.format, tc.bo, tc.flag, testCacheEntries(), hw)
			c, err := parseCache(b)
			if err != nil {
				t.Fatal(err)
			}
			if c.format != tc.format {
				t.Errorf("format %q", c.format)
			}
			x8664 := testABI(abiX8664)
			if tc.bo == binary.BigEndian {
				// Pretend a big-endian x86_64 to exercise the same rules.
				x8664.data = elf.ELFDATA2MSB
			}
			look := func(a abi, name string, hwcaps []string) string {
				p, ok, _ := c.lookup(name, a, hwcaps)
				if !ok {
					return ""
				}
				return p
			}
			best := "/lib64/libx.so.1"
			if tc.hwcaps {
				best = "/v3/libx.so.1"
			}
			if got := look(x8664, "libx.so.1", []string{"x86-64-v4", "x86-64-v3", "x86-64-v2"}); got != best {
				t.Errorf("x86_64 best CPU: %q, want %q", got, best)
			}
			if tc.hwcaps {
				if got := look(x8664, "libx.so.1", []string{"x86-64-v2"}); got != "/v2/libx.so.1" {
					t.Errorf("x86_64 v2 CPU: %q", got)
				}
			}
			if got := look(x8664, "libx.so.1", nil); got != "/lib64/libx.so.1" {
				t.Errorf("x86_64 baseline CPU: %q", got)
			}
			if tc.bo == binary.BigEndian {
				return
			}
			if got := look(testABI(abiI386), "libx.so.1", nil); got != "/lib/libx.so.1" {
				t.Errorf("i386: %q", got)
			}
			if got := look(testABI(abiAArch64), "libx.so.1", nil); got != "/lib/aarch64/libx.so.1" {
				t.Errorf("aarch64: %q", got)
			}
			if got := look(testABI(abiARMHF), "libx.so.1", nil); got != "/lib/libx.so.1" {
				// Unmarked (0x003) entries are accepted by ARM and come first.
				t.Errorf("armhf: %q", got)
			}
			// Generic flags: the first accepted entry wins.
			if got := look(testABI(abiI386), "liby.so.2", nil); got != "/lib/liby.so.2" {
				t.Errorf("i386 liby: %q", got)
			}
			if got := look(x8664, "liby.so.2", nil); got != "" {
				t.Errorf("x86_64 took a 32-bit entry: %q", got)
			}
			if got := look(testABI(abiS390X), "libx.so.1", nil); got != "" && tc.flag != 0 && tc.format != "old" {
				t.Errorf("a little-endian cache served a big-endian ABI: %q", got)
			}
		})
	}
}

func TestCacheCorrupt(t *testing.T) {
	good := buildCache("new", binary.LittleEndian, 2, testCacheEntries(), []string{"x86-64-v2", "x86-64-v3"})
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	for name, b := range map[string][]byte{
		"empty":         {},
		"bad magic":     []byte("glibc-ld.so.cache9.9\x00\x00\x00\x00\x00\x00\x00\x00"),
		"truncated":     good[:40],
		"entries cut":   good[:newHeaderSize+3*newEntrySize],
		"huge nlibs":    mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 1<<30); return b }),
		"invalid flag":  mutate(func(b []byte) []byte { b[28] = 1; return b }),
		"key past end":  mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[newHeaderSize+4:], uint32(len(b))); return b }),
		"unterminated":  bytes.TrimSuffix(buildCache("new", binary.LittleEndian, 2, testCacheEntries(), nil), []byte{0}),
		"old truncated": []byte(cacheMagicOld),
		"old huge":      append([]byte(cacheMagicOld+"\x00\xff\xff\xff\x7f"), make([]byte, 20)...),
	} {
		if _, err := parseCache(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// A broken extension directory is ignored, as ld.so ignores it.
	b := mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[32:], 6); return b })
	c, err := parseCache(b)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.lookup("libx.so.1", testABI(abiX8664), []string{"x86-64-v3"}); p != "/lib64/libx.so.1" {
		t.Errorf("without hwcaps names: %q", p)
	}
}

func TestCacheFlags(t *testing.T) {
	for _, tc := range []struct {
		a     abi
		flags int32
		ok    bool
	}{
		{testABI(abiX8664), 0x303, true},
		{testABI(abiX8664), 0x003, false},
		{abi{class: elf.ELFCLASS32, data: elf.ELFDATA2LSB, machine: elf.EM_X86_64}, 0x803, true},
		{testABI(abiI386), 0x001, true},
		{testABI(abiI386), 0x003, true},
		{testABI(abiI386), 0x303, false},
		{testABI(abiAArch64), 0xa03, true},
		{testABI(abiARMHF), 0x903, true},
		{testABI(abiARMHF), 0xb03, false},
		{testABI(abiARMHF), 0x003, true},
		{abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_RISCV, float: floatHard}, 0x1003, true},
		{abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_RISCV, float: floatSoft}, 0x1003, false},
		{abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_PPC64}, 0x503, true},
		{testABI(abiS390X), 0x403, true},
		{abi{class: elf.ELFCLASS64, data: elf.ELFDATA2LSB, machine: elf.EM_MIPS}, 0x703, true}, // not modelled: any ELF entry
	} {
		if got := tc.a.cacheAccepts(tc.flags); got != tc.ok {
			t.Errorf("%v/%v accepts %#x = %v", tc.a.machine, tc.a.class, tc.flags, got)
		}
	}
}

// The host's cache, written by the host's ldconfig, gives for every x86-64
// name the path `ldconfig -p` lists first for it.
func TestHostCacheMatchesLdconfigP(t *testing.T) {
	ldconfig := testtool.Require(t, "ldconfig")
	out, err := exec.Command(ldconfig, "-p").Output()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver("/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.cache == nil {
		t.Fatal("ldconfig -p works but the resolver found no cache")
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		// "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " (")
		if !ok {
			continue
		}
		flags, p, ok := strings.Cut(rest, ") => ")
		if !ok || flags != "libc6,x86-64" {
			continue // other ABIs, or glibc-hwcaps entries ("..., hwcap: ...")
		}
		if _, seen := want[name]; !seen {
			want[name] = p
		}
	}
	if len(want) < 10 {
		t.Fatalf("only %d x86-64 entries in ldconfig -p", len(want))
	}
	for name, p := range want {
		got, ok, _ := r.cache.lookup(name, testABI(abiX8664), nil)
		if !ok || got != p {
			t.Errorf("%s: %q, ldconfig -p says %q", name, got, p)
		}
	}
	t.Logf("%d names compared with ldconfig -p", len(want))
}

// The committed seed caches were written by the real ldconfig (glibc 2.36)
// from a root with a glibc-hwcaps library; each format must parse to the
// same answers.
func TestLdconfigSeedCaches(t *testing.T) {
	for _, format := range []string{"new", "old", "compat"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzCache", "ldconfig-"+format))
		if err != nil {
			t.Fatal(err)
		}
		_, lit, _ := strings.Cut(string(raw), "[]byte(")
		data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(lit), ")"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseCache([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if c.format != format {
			t.Errorf("%s: parsed as %s", format, c.format)
		}
		best, baseline := "/opt/c/glibc-hwcaps/x86-64-v3/libhw.so.1", "/opt/c/libhw.so.1"
		if format == "old" {
			// The old format cannot mark glibc-hwcaps entries: ldconfig
			// writes them as plain entries, first, so a loader reading
			// it takes the x86-64-v3 build on any CPU.
			baseline = best
		}
		x := testABI(abiX8664)
		if p, _, _ := c.lookup("libhw.so.1", x, x.hwcapsSubdirs()); p != best {
			t.Errorf("%s: libhw.so.1 -> %q, want %q", format, p, best)
		}
		if p, _, _ := c.lookup("libhw.so.1", x, nil); p != baseline {
			t.Errorf("%s: baseline libhw.so.1 -> %q, want %q", format, p, baseline)
		}
		if p, _, _ := c.lookup("libc.so.6", x, nil); p != "/lib/x86_64-linux-gnu/libc.so.6" {
			t.Errorf("%s: libc.so.6 -> %q", format, p)
		}
	}
}
