package kmodindex

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// lookup reads an index the way kmod's index_mm_search does, for exact
// keys, so the writer is checked against an independent reader.
func lookup(b []byte, key string) ([]Value, error) {
	if len(b) < headerBytes || binary.BigEndian.Uint32(b) != magic || binary.BigEndian.Uint32(b[4:]) != version {
		return nil, fmt.Errorf("bad header")
	}
	off := binary.BigEndian.Uint32(b[8:])
	for {
		pos := int(off & maxOffset)
		if pos == 0 || pos >= len(b) {
			return nil, nil
		}
		prefix := ""
		if off&flagPrefix != 0 {
			end := strings.IndexByte(string(b[pos:]), 0)
			if end < 0 {
				return nil, fmt.Errorf("unterminated prefix at %d", pos)
			}
			prefix = string(b[pos : pos+end])
			pos += end + 1
		}
		if !strings.HasPrefix(key, prefix) {
			return nil, nil
		}
		key = key[len(prefix):]
		var first, last int
		var childs int
		if off&flagChilds != 0 {
			first, last = int(b[pos]), int(b[pos+1])
			childs = pos + 2
			pos += 2 + 4*(last-first+1)
		}
		if key == "" {
			var vals []Value
			if off&flagValues != 0 {
				n := int(binary.BigEndian.Uint32(b[pos:]))
				pos += 4
				for i := 0; i < n; i++ {
					prio := binary.BigEndian.Uint32(b[pos:])
					pos += 4
					end := strings.IndexByte(string(b[pos:]), 0)
					vals = append(vals, Value{prio, string(b[pos : pos+end])})
					pos += end + 1
				}
			}
			return vals, nil
		}
		c := int(key[0])
		if childs == 0 || c < first || c > last {
			return nil, nil
		}
		off = binary.BigEndian.Uint32(b[childs+4*(c-first):])
		key = key[1:]
	}
}

func TestRoundTrip(t *testing.T) {
	ix := New()
	add := map[string][]Value{
		"btrfs": {{1, "kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko"}},
		"btr":   {{0, "x"}},
		"b":     {{5, "later"}, {2, "earlier"}},
		"ext4":  {{3, "kernel/fs/ext4/ext4.ko:"}},
		"":      {{9, "root"}},
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range add[k] {
			if err := ix.Add(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := ix.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range add {
		sort.SliceStable(want, func(i, j int) bool { return want[i].Priority < want[j].Priority })
		got, err := lookup(b, k)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: got %v (%v), want %v", k, got, err, want)
		}
	}
	for _, k := range []string{"bt", "btrfsx", "ext", "z"} {
		if got, _ := lookup(b, k); got != nil {
			t.Errorf("%q: got %v, want nothing", k, got)
		}
	}
	if err := ix.Add("caf\xe9", Value{}); err == nil {
		t.Error("8-bit key accepted")
	}
}

func FuzzIndex(f *testing.F) {
	f.Add("btrfs\x00btr\x00b\x00ext4")
	f.Fuzz(func(t *testing.T, keys string) {
		ix := New()
		want := map[string]int{}
		for i, k := range strings.Split(keys, "\x00") {
			if ix.Add(k, Value{uint32(i), fmt.Sprint(i)}) == nil {
				want[k]++
			}
		}
		b, err := ix.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range want {
			got, err := lookup(b, k)
			if err != nil || len(got) != n {
				t.Fatalf("%q: %d values (%v), want %d", k, len(got), err, n)
			}
		}
	})
}
