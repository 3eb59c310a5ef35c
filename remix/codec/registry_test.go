package codec

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestRegistry checks the rules every registered format must follow, so a
// new codec file cannot break detection or parsing of the others.
func TestRegistry(t *testing.T) {
	seenName := map[string]Codec{"none": None, "cat": None, "uncompressed": None}
	var magics []string
	for _, f := range formats() {
		if f.open == nil || len(f.magics) == 0 {
			t.Errorf("%s: no reader or no magic", f.codec)
		}
		for _, n := range append([]string{string(f.codec)}, f.aliases...) {
			if c, ok := seenName[n]; ok {
				t.Errorf("name %q given to %s and %s", n, c, f.codec)
			}
			seenName[n] = f.codec
			if got, err := Parse(" " + strings.ToUpper(n) + " "); err != nil || got != f.codec {
				t.Errorf("Parse(%q) = %s, %v; want %s", n, got, err, f.codec)
			}
		}
		for _, m := range f.magics {
			// No magic may start another, or Detect's answer would
			// depend on the registry's order.
			for _, o := range magics {
				if strings.HasPrefix(m, o) || strings.HasPrefix(o, m) {
					t.Errorf("%s: magic % x overlaps % x", f.codec, m, o)
				}
			}
			magics = append(magics, m)
			if c, ok := Detect([]byte(m + "rest")); !ok || c != f.codec {
				t.Errorf("Detect(% x) = %s, %v; want %s", m, c, ok, f.codec)
			}
			if _, ok := Detect([]byte(m[:len(m)-1])); ok {
				t.Errorf("%s: Detect matched a magic cut short", f.codec)
			}
		}
		var buf bytes.Buffer
		w, err := NewWriter(f.codec, &buf, WriterOptions{Concurrency: 1})
		if writable := slices.Contains(Writable(), f.codec); writable != (f.newWriter != nil) {
			t.Errorf("%s: Writable() disagrees with the registry", f.codec)
		} else if writable {
			if err != nil {
				t.Fatalf("%s: NewWriter: %v", f.codec, err)
			}
			if _, err := w.Write([]byte("hello")); err != nil || w.Close() != nil {
				t.Fatalf("%s: writing: %v", f.codec, err)
			}
			if c, ok := Detect(buf.Bytes()); !ok || c != f.codec {
				t.Errorf("%s: its own output is detected as %s, %v", f.codec, c, ok)
			}
		} else if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: NewWriter of a read-only format: %v, want ErrUnsupported", f.codec, err)
		}
	}
	if TrailingZeros(LZ4) != 4 || TrailingZeros(Zstd) != 0 || TrailingZeros(None) != 0 {
		t.Errorf("TrailingZeros: lz4 %d, zstd %d, none %d", TrailingZeros(LZ4), TrailingZeros(Zstd), TrailingZeros(None))
	}
	_, err := Parse("brotli")
	if want := "valid names are none, gzip, zstd, xz, lz4 (writable) and bzip2, lzma, lzo (readable only)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Parse(brotli) = %v, want %q", err, want)
	}
}
