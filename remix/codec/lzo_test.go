package codec

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// TestLZOAgainstLzop decodes lzop's output for data that exercises every
// LZO1X instruction: long zero runs (extended lengths, distance 1),
// incompressible data (stored blocks), text and binary with matches near
// and far (up to the 48 KiB of LZO1X-999), across 256 KiB block limits.
func TestLZOAgainstLzop(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	random := make([]byte, 300<<10)
	rng.Read(random)
	kinds := map[string][]byte{
		"zeros":  make([]byte, 600<<10),
		"random": random,
		"initrd": initrdLike(700<<10, 14),
		"mixed":  cat(initrdLike(100<<10, 15), make([]byte, 70000), random[:50000], initrdLike(100<<10, 15)),
	}
	for name, data := range kinds {
		for _, size := range []int{0, 1, 3, 4, 17, 18, 255, 4000, 256<<10 - 1, 256 << 10, 256<<10 + 1, len(data)} {
			if size > len(data) {
				continue
			}
			for _, level := range []string{"-1", "-9"} {
				stream := cli(t, data[:size], "lzop", "-c", level)
				out, rest, err := decode(LZO, cat(stream, []byte("\x00tail")), 16)
				if err != nil || !bytes.Equal(out, data[:size]) || string(rest) != "\x00tail" {
					t.Fatalf("%s %d bytes lzop %s: %d bytes, rest %q, %v", name, size, level, len(out), rest, err)
				}
			}
		}
	}
}

func TestLZO1XBlocks(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
		err  bool
	}{
		{"empty", "\x11\x00\x00", "", false},
		{"first byte literal run", "\x16abcde\x11\x00\x00", "abcde", false},
		{"literal run from the loop", "\x01abcd\x11\x00\x00", "abcd", false},
		{"extended literal run", "\x00\x01" + string(bytes.Repeat([]byte("x"), 19)) + "\x11\x00\x00", string(bytes.Repeat([]byte("x"), 19)), false},
		// "ab", then a 6-byte match at distance 2: it overlaps itself.
		{"overlapping match", "\x13ab\xa4\x00\x11\x00\x00", "abababab", false},
		// After 1 literal (state 1), t < 16 is a 2-byte match.
		{"2-byte match", "\x12a\x00\x00\x11\x00\x00", "aaa", false},
		{"3-byte match after a literal run", farMatch(), string(farMatchWant()), false},
		{"match before the start", "\x13ab\xa8\x00\x11\x00\x00", "", true},
		{"garbage after the end", "\x16abcde\x11\x00\x00\x00", "", true},
		{"end with a length", "\x16abcde\x12\x00\x00", "", true},
		{"too short", "\x11\x00", "", true},
		{"literal run past the input", "\x16abc", "", true},
	}
	for _, tc := range tests {
		dst := make([]byte, len(tc.want))
		err := lzo1xDecompress([]byte(tc.src), dst)
		if tc.err != (err != nil) || (err == nil && string(dst) != tc.want) {
			t.Errorf("%s: %q, %v", tc.name, dst, err)
		}
	}
	// The right data into a buffer of the wrong size fails.
	for _, n := range []int{7, 9} {
		if err := lzo1xDecompress([]byte("\x13ab\xa4\x00\x11\x00\x00"), make([]byte, n)); err == nil {
			t.Errorf("decoding 8 bytes into %d succeeded", n)
		}
	}
	// Every proper prefix of a block fails.
	stream := cli(t, initrdLike(20000, 16), "lzop", "-c", "-9")
	if _, _, err := decode(LZO, stream, 4096); err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(stream); cut += 1 + cut/50 {
		if _, _, err := decode(LZO, stream[:cut], 16); err == nil {
			t.Fatalf("cut at %d decoded", cut)
		}
	}
}

// farMatch is a literal run of 2100 bytes (length extended by 8 zero
// bytes), then, in state 4, a 3-byte match at distance 2049.
func farMatch() string {
	b := []byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a")
	b = append(b, farLiterals()...)
	return string(append(b, "\x00\x00\x11\x00\x00"...))
}

func farLiterals() []byte {
	lit := make([]byte, 2100)
	for i := range lit {
		lit[i] = byte(i * 7)
	}
	return lit
}

func farMatchWant() []byte {
	lit := farLiterals()
	return append(lit, lit[2100-2049:2100-2049+3]...)
}

func TestLZOErrorsAreStreamErrors(t *testing.T) {
	stream := cli(t, initrdLike(50000, 17), "lzop", "-c")
	bad := append([]byte{}, stream...)
	bad[len(bad)/2] ^= 0x40
	_, _, err := decode(LZO, bad, 4096)
	var se *StreamError
	if !errors.As(err, &se) || se.Codec != LZO || se.Offset <= 0 {
		t.Fatalf("err = %v", err)
	}
}
