package ldso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout of /etc/ld.so.cache (glibc sysdeps/generic/dl-cache.h).
const (
	cacheMagicOld = "ld.so-1.7.0"
	cacheMagicNew = "glibc-ld.so.cache1.1"

	oldHeaderSize = 16 // magic[11], padding, nlibs
	oldEntrySize  = 12 // flags, key, value
	newHeaderSize = 48 // magic+version[20], nlibs, len_strings, flags, pad[3], extension_offset, unused[3]
	newEntrySize  = 24 // flags, key, value, osversion, hwcap

	extensionMagic  = 0xeaa42174 // (uint32_t) -358342284
	extTagHWCaps    = 1          // cache_extension_tag_glibc_hwcaps
	hwcapExtension  = 1 << 62    // DL_CACHE_HWCAP_EXTENSION
	hwcapISALevelMk = 0x3ff      // DL_CACHE_HWCAP_ISA_LEVEL_MASK, in the upper 32 bits
)

// ldCache is a parsed ld.so.cache: entries by library name in file order,
// which is the order ld.so's search_cache examines them in.
type ldCache struct {
	// order is the byte order the file declares; nil when it does not say
	// (old format or an old ldconfig), then it serves every ABI.
	order  binary.ByteOrder
	format string // "new", "old" or "compat" (old followed by new)
	byName map[string][]cacheEntry
	count  int
}

type cacheEntry struct {
	flags int32
	path  string
	// hwcaps is the glibc-hwcaps subdirectory of an entry marked with the
	// extension bit, "" otherwise. legacy is set for the pre-2.37 hwcap
	// bits, which ld.so skips.
	hwcaps   string
	hwcapExt bool
	legacy   bool
}

// parseCache decodes an ld.so.cache image. Every offset is checked against
// the size of the data before use; a structurally broken file is an error
// rather than half a cache.
func parseCache(b []byte) (*ldCache, error) {
	switch {
	case bytes.HasPrefix(b, []byte(cacheMagicNew)):
		c, err := parseNewCache(b, 0)
		if err == nil {
			c.format = "new"
		}
		return c, err
	case bytes.HasPrefix(b, []byte(cacheMagicOld)):
		return parseOldCache(b)
	}
	return nil, errors.New("not an ld.so.cache (unknown magic)")
}

// guessOrder picks the byte order under which a count of fixed-size
// records fits into the data, little-endian first, for files that do not
// declare their byte order.
func guessOrder(b []byte, at int, avail, size int) (binary.ByteOrder, uint32, bool) {
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		n := bo.Uint32(b[at:])
		if uint64(n)*uint64(size) <= uint64(avail) {
			return bo, n, true
		}
	}
	return nil, 0, false
}

func parseOldCache(b []byte) (*ldCache, error) {
	if len(b) < oldHeaderSize {
		return nil, errors.New("old-format header truncated")
	}
	bo, nlibs, ok := guessOrder(b, 12, len(b)-oldHeaderSize, oldEntrySize)
	if !ok {
		return nil, errors.New("old-format entry count exceeds the file")
	}
	end := oldHeaderSize + int(nlibs)*oldEntrySize
	// A new-format cache may follow, aligned for struct cache_file_new:
	// 8 bytes where uint64_t is 8-aligned, 4 on i386 and other ABIs.
	for _, align := range []int{8, 4} {
		at := (end + align - 1) &^ (align - 1)
		if at+len(cacheMagicNew) <= len(b) && string(b[at:at+len(cacheMagicNew)]) == cacheMagicNew {
			c, err := parseNewCache(b, at)
			if err != nil {
				return nil, fmt.Errorf("new-format part at offset %d: %w", at, err)
			}
			c.format = "compat"
			return c, nil
		}
	}
	// Old format only: string offsets count from the end of the entries.
	c := &ldCache{format: "old", byName: map[string][]cacheEntry{}}
	strs := b[end:]
	for i := 0; i < int(nlibs); i++ {
		e := b[oldHeaderSize+i*oldEntrySize:]
		flags := int32(bo.Uint32(e))
		key, err := cString(strs, bo.Uint32(e[4:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d name: %w", i, err)
		}
		val, err := cString(strs, bo.Uint32(e[8:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d path: %w", i, err)
		}
		c.add(key, cacheEntry{flags: flags, path: val})
	}
	return c, nil
}

// parseNewCache decodes the new format starting at base. String offsets
// count from base (ldconfig hides the new format inside the old format's
// string table and writes offsets relative to the new header); the
// extension directory offset counts from the start of the file.
func parseNewCache(b []byte, base int) (*ldCache, error) {
	if len(b)-base < newHeaderSize {
		return nil, errors.New("header truncated")
	}
	h := b[base:]
	c := &ldCache{byName: map[string][]cacheEntry{}}
	avail := len(h) - newHeaderSize
	var bo binary.ByteOrder
	switch h[28] & 3 {
	case 0:
		// Written by an ldconfig that did not record the byte order:
		// guess it for parsing, and let the cache serve every ABI, as
		// each loader would assume its own.
		var ok bool
		if bo, _, ok = guessOrder(h, 20, avail, newEntrySize); !ok {
			return nil, errors.New("entry count exceeds the file")
		}
	case 1:
		return nil, errors.New("marked invalid by ldconfig (endianness flag 1)")
	case 2:
		bo, c.order = binary.LittleEndian, binary.LittleEndian
	case 3:
		bo, c.order = binary.BigEndian, binary.BigEndian
	}
	nlibs := bo.Uint32(h[20:])
	if uint64(nlibs)*newEntrySize > uint64(avail) {
		return nil, fmt.Errorf("%d entries exceed the file", nlibs)
	}
	extOff := bo.Uint32(h[32:])
	hwcaps, err := parseCacheExtensions(b, base, extOff, bo)
	if err != nil {
		return nil, err
	}
	for i := 0; i < int(nlibs); i++ {
		e := h[newHeaderSize+i*newEntrySize:]
		flags := int32(bo.Uint32(e))
		key, err := cString(h, bo.Uint32(e[4:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d name: %w", i, err)
		}
		val, err := cString(h, bo.Uint32(e[8:]))
		if err != nil {
			return nil, fmt.Errorf("entry %d path: %w", i, err)
		}
		hw := bo.Uint64(e[16:])
		ce := cacheEntry{flags: flags, path: val}
		switch {
		case (hw>>32)&^hwcapISALevelMk == hwcapExtension>>32:
			ce.hwcapExt = true
			if idx := uint32(hw); int64(idx) < int64(len(hwcaps)) {
				ce.hwcaps = hwcaps[idx]
			}
			// An index outside the table names no usable subdirectory;
			// ld.so gives such an entry priority 0 and skips it.
		case hw != 0:
			ce.legacy = true
		}
		c.add(key, ce)
	}
	return c, nil
}

// parseCacheExtensions returns the glibc-hwcaps subdirectory names, indexed
// as the entries' hwcap values index them. Extension sections with a
// bad magic, offset or size are ignored as ld.so ignores them.
func parseCacheExtensions(b []byte, base int, extOff uint32, bo binary.ByteOrder) ([]string, error) {
	if extOff == 0 || extOff%4 != 0 || uint64(extOff)+8 > uint64(len(b)) {
		return nil, nil
	}
	x := b[extOff:]
	if bo.Uint32(x) != extensionMagic {
		return nil, nil
	}
	count := uint64(bo.Uint32(x[4:]))
	if count*16 > uint64(len(x)-8) {
		return nil, nil
	}
	var names []string
	for i := uint64(0); i < count; i++ {
		s := x[8+i*16:]
		tag, off, size := bo.Uint32(s), uint64(bo.Uint32(s[8:])), uint64(bo.Uint32(s[12:]))
		if tag != extTagHWCaps || size == 0 || off%4 != 0 || size%4 != 0 || off+size > uint64(len(b)) {
			continue
		}
		names = names[:0]
		for j := uint64(0); j < size; j += 4 {
			name, err := cString(b[base:], bo.Uint32(b[off+j:]))
			if err != nil {
				return nil, fmt.Errorf("glibc-hwcaps name %d: %w", j/4, err)
			}
			names = append(names, name)
		}
	}
	return names, nil
}

func (c *ldCache) add(key string, e cacheEntry) {
	c.byName[key] = append(c.byName[key], e)
	c.count++
}

// cString returns the NUL-terminated string at off in b.
func cString(b []byte, off uint32) (string, error) {
	if uint64(off) >= uint64(len(b)) {
		return "", fmt.Errorf("string offset %d outside the file", off)
	}
	s := b[off:]
	i := bytes.IndexByte(s, 0)
	if i < 0 {
		return "", fmt.Errorf("string at %d not terminated", off)
	}
	return string(s[:i]), nil
}

// lookup is ld.so's search_cache for one name: among the entries whose
// flags suit the ABI, an entry for a supported glibc-hwcaps subdirectory
// wins by priority (hwcaps lists the supported ones, best first); otherwise
// the first plain entry, skipping legacy-hwcap entries. It also reports
// whether any usable glibc-hwcaps entry exists for the name, in which case
// a less capable CPU may get another answer.
func (c *ldCache) lookup(name string, a abi, hwcaps []string) (path string, found, hwcapsSeen bool) {
	if c.order != nil && c.order != a.order() {
		return "", false, false
	}
	best, bestPrio := "", 0
	for _, e := range c.byName[name] {
		if !a.cacheAccepts(e.flags) {
			continue
		}
		if e.hwcapExt {
			if e.hwcaps != "" {
				hwcapsSeen = true
			}
			prio := 0
			for i, h := range hwcaps {
				if h == e.hwcaps {
					prio = i + 1
					break
				}
			}
			if prio == 0 {
				continue
			}
			if !found || prio < bestPrio {
				best, bestPrio, found = e.path, prio, true
			}
			continue
		}
		if found {
			break
		}
		if e.legacy {
			continue
		}
		best, found = e.path, true
		if a.cacheDefault(e.flags) {
			break
		}
	}
	return best, found, hwcapsSeen
}

func (a abi) order() binary.ByteOrder {
	if a.data == elf.ELFDATA2MSB {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
