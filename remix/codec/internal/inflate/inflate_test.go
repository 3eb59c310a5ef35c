package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// sample returns n bytes mixing text-like runs, repeats at every distance
// class and random bytes, so every length and distance code occurs.
func sample(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, 0, n)
	words := []string{"initrd", "modules", "firmware", "/usr/lib/", "udev", "\x00\x00\x00\x00", "systemd"}
	for len(b) < n {
		switch rng.Intn(5) {
		case 0:
			b = append(b, words[rng.Intn(len(words))]...)
		case 1:
			k := rng.Intn(300)
			for range k {
				b = append(b, byte(rng.Intn(256)))
			}
		case 2:
			if len(b) > 0 {
				d := 1 + rng.Intn(min(len(b), 40000))
				l := 3 + rng.Intn(300)
				for range l {
					b = append(b, b[len(b)-d])
				}
			}
		case 3:
			c := byte(rng.Intn(256))
			for range rng.Intn(1000) {
				b = append(b, c)
			}
		default:
			b = append(b, byte('a'+rng.Intn(4)))
		}
	}
	return b[:n]
}

func deflate(t testing.TB, data []byte, level int) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// decodeAll decodes stream followed by tail and checks that exactly the
// stream was consumed.
func decodeAll(t *testing.T, stream, tail []byte, bufSize int) []byte {
	t.Helper()
	src := bufio.NewReaderSize(bytes.NewReader(append(append([]byte{}, stream...), tail...)), bufSize)
	r := NewReader(src)
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if c := r.Consumed(); c != int64(len(stream)) {
		t.Fatalf("consumed %d bytes, stream has %d", c, len(stream))
	}
	rest, _ := io.ReadAll(src)
	if !bytes.Equal(rest, tail) {
		t.Fatalf("source left at the wrong byte: %d bytes after, want %d", len(rest), len(tail))
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	tail := []byte("TRAILER!")
	for _, tc := range []struct {
		name  string
		size  int
		level int
		buf   int
	}{
		{"empty", 0, 6, 4096},
		{"stored", 100000, flate.NoCompression, 4096},
		{"huffman-only", 300000, flate.HuffmanOnly, 16},
		{"fastest", 1 << 20, flate.BestSpeed, 64 << 10},
		{"default", 3 << 20, flate.DefaultCompression, 256 << 10},
		{"best-small-buffer", 700000, flate.BestCompression, 16},
		{"one-byte", 1, 9, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := sample(tc.size, int64(tc.size))
			got := decodeAll(t, deflate(t, data, tc.level), tail, tc.buf)
			if !bytes.Equal(got, data) {
				t.Fatalf("decoded %d bytes differ from the %d written", len(got), len(data))
			}
		})
	}
}

// TestFixedAndRawBlocks covers hand-made streams: a fixed-Huffman block
// (what `gzip -1` writes for short input), an empty stored block, and a
// match reaching exactly to the start of the stream.
func TestFixedAndRawBlocks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		// "a" then length 3 distance 1 then EOB, fixed Huffman.
		{"fixed-run", []byte{0x4b, 0x04, 0x02, 0x00}, "aaaa"},
		{"empty-stored", []byte{0x01, 0x00, 0x00, 0xff, 0xff}, ""},
		{"stored-abc", []byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'}, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := io.ReadAll(flate.NewReader(bytes.NewReader(tc.stream)))
			if err != nil || string(want) != tc.want {
				t.Fatalf("bad test stream: compress/flate gives %q, %v", want, err)
			}
			if got := decodeAll(t, tc.stream, []byte{0xaa}, 16); string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		reason string
	}{
		{"block-type-3", []byte{0x07}, "invalid block type"},
		{"stored-complement", []byte{0x01, 0x03, 0x00, 0xfc, 0xfe}, "complement"},
		// Fixed block: literal 'a', then length 3 at distance 2.
		{"too-far-back", bitStream(1, 1, 1, 2, 0x91, -8, 1, -7, 1, -5, 0, -7), "too far back"},
		// Dynamic header asking for 287 literal/length codes (HLIT 30).
		{"too-many-codes", bitStream(1, 1, 2, 2, 30, 5, 0, 5, 0, 4), "too many"},
		// Dynamic header whose code length code is all zeros.
		{"empty-cl-code", bitStream(1, 1, 2, 2, 0, 5, 0, 5, 0, 4, 0, 12, 0, 7), "code length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(bytes.NewReader(tc.stream)))
			_, err := io.ReadAll(r)
			var ce *CorruptError
			if !errors.As(err, &ce) || !bytes.Contains([]byte(ce.Reason), []byte(tc.reason)) {
				t.Fatalf("got %v, want a CorruptError about %q", err, tc.reason)
			}
			if _, serr := io.ReadAll(flate.NewReader(bytes.NewReader(tc.stream))); serr == nil {
				t.Fatalf("compress/flate accepts the stream")
			}
		})
	}
}

// TestTruncated cuts a stream at every byte: always io.ErrUnexpectedEOF,
// never success, a panic or a hang.
func TestTruncated(t *testing.T) {
	stream := deflate(t, sample(5000, 7), 6)
	for n := range len(stream) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream[:n]), 16))
		_, err := io.ReadAll(r)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: %v, want io.ErrUnexpectedEOF", n, len(stream), err)
		}
	}
}

// bitStream packs value, width pairs as DEFLATE does: a positive width is
// a field written least significant bit first, a negative one a Huffman
// code of -width bits written most significant bit first.
func bitStream(pairs ...int) []byte {
	var out []byte
	var acc, n uint
	for i := 0; i < len(pairs); i += 2 {
		v, w := uint(pairs[i]), pairs[i+1]
		if w < 0 {
			w = -w
			r := uint(0)
			for range w {
				r = r<<1 | v&1
				v >>= 1
			}
			v = r
		}
		acc |= v << n
		n += uint(w)
		for n >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	if n > 0 {
		out = append(out, byte(acc))
	}
	return out
}

// FuzzInflate decodes arbitrary input and compares with compress/flate:
// both accept it with the same output, or both refuse it.
func FuzzInflate(f *testing.F) {
	for _, s := range [][]byte{
		deflate(f, sample(2000, 1), 1), deflate(f, sample(3000, 2), 9),
		deflate(f, sample(500, 3), flate.HuffmanOnly), deflate(f, sample(100, 4), 0),
		{0x4b, 0x04, 0x02, 0x00}, {0x07},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), 1<<24))
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
		got, err := io.ReadAll(io.LimitReader(r, 1<<24))
		if (err == nil) != (werr == nil) {
			t.Fatalf("inflate: %v; compress/flate: %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("output differs from compress/flate (%d vs %d bytes)", len(got), len(want))
		}
		if err == nil && r.Consumed() > int64(len(in)) {
			t.Fatalf("consumed %d of %d bytes", r.Consumed(), len(in))
		}
	})
}

func BenchmarkInflate(b *testing.B) {
	data := sample(16<<20, 1)
	stream := deflate(b, data, 6)
	b.Run("inflate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 256<<10))
			io.Copy(io.Discard, r)
		}
	})
	b.Run("klauspost-flate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			r := kflate.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 256<<10))
			io.Copy(io.Discard, r)
		}
	})
	b.Run("compress-flate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			r := flate.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 256<<10))
			io.Copy(io.Discard, r)
		}
	})
}
