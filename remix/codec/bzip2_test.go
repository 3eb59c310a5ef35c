package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
)

// bzMagics returns the bit offsets of every block magic in a stream.
func bzMagics(stream []byte) []int64 {
	var out []int64
	b := append(bytes.Clone(stream), make([]byte, 8)...)
	for k := 0; k < len(stream); k++ {
		w := binary.BigEndian.Uint64(b[k:])
		for s := 0; s < 8; s++ {
			if w>>(16-s)&(1<<48-1) == bzBlockMagic {
				out = append(out, int64(k*8+s))
			}
		}
	}
	return out
}

// decodePlanted decodes one bzip2 stream of in with false magics planted.
func decodePlanted(in []byte, bufSize int, fakes []bzFake) (out, rest []byte, err error) {
	src := bufio.NewReaderSize(bytes.NewReader(in), bufSize)
	s := &stream{codec: Bzip2, cur: &cursor{src: src}}
	if err := s.openBzip2(); err != nil {
		return nil, nil, err
	}
	defer s.Close()
	s.dec.(*bzip2Reader).fakes = fakes
	out, err = io.ReadAll(s)
	rest, _ = io.ReadAll(src)
	return out, rest, err
}

// TestBzip2FalseMagics: magics inside block data (planted, since the real
// tools' streams rarely have one) cut blocks short; the reader appends the
// next stretches, decodes again and still ends exactly after the stream.
func TestBzip2FalseMagics(t *testing.T) {
	data := initrdLike(700000, 7)
	stream := cli(t, data, "bzip2", "-c", "-1")
	real := bzMagics(stream)
	if len(real) < 6 {
		t.Fatalf("%d blocks, want at least 6", len(real))
	}
	inside := func(i int, at int64) bzFake { return bzFake{bit: real[i] + 48 + at} }
	many := []bzFake{}
	for at := int64(100); at < 20000; at += 97 { // far more than doubling needs
		many = append(many, inside(2, at))
	}
	tests := []struct {
		name  string
		fakes []bzFake
	}{
		{"none", nil},
		{"one per block", []bzFake{inside(0, 1000), inside(1, 2001), inside(2, 3003), inside(3, 5), inside(4, 777)}},
		{"many in one block", many},
		// The decode with the stretches appended ends at the next real
		// magic, before the last stretch appended, which goes back.
		{"near a block's end", []bzFake{{bit: real[2] - 300}, {bit: real[4] - 100}}},
		{"false end of stream", []bzFake{{bit: real[len(real)-1] + 48 + 4000, final: true}}},
		{"false end after a false block", []bzFake{inside(len(real)-1, 2000), {bit: real[len(real)-1] + 48 + 4000, final: true}}},
	}
	for _, tc := range tests {
		for _, bufSize := range []int{16, 4096} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, bufSize), func(t *testing.T) {
				out, rest, err := decodePlanted(cat(stream, []byte("next")), bufSize, tc.fakes)
				if err != nil || !bytes.Equal(out, data) || string(rest) != "next" {
					t.Fatalf("%d bytes of %d, rest %q, %v", len(out), len(data), rest, err)
				}
			})
		}
	}
}

// TestBzip2Corrupt: corruption anywhere and truncation at every byte of
// a small multi-block stream give an error, never a panic, a hang or
// wrong data without an error.
func TestBzip2Corrupt(t *testing.T) {
	data := initrdLike(250000, 8)
	stream := cli(t, data, "bzip2", "-c", "-1")
	for n := 0; n < len(stream); n += 1 + n/64 {
		if out, _, err := decode(Bzip2, stream[:n], 16); err == nil {
			t.Fatalf("truncated at %d of %d: no error, %d bytes", n, len(stream), len(out))
		}
	}
	for i := 4; i < len(stream); i += 1 + i/32 {
		bad := bytes.Clone(stream)
		bad[i] ^= 0x10
		out, _, err := decode(Bzip2, bad, 4096)
		if err == nil && !bytes.Equal(out, data) {
			t.Fatalf("byte %d flipped: wrong data without an error", i)
		}
	}
	// The block CRC and the stream CRC are checked.
	last := len(stream) - 1
	for _, tc := range []struct {
		name string
		at   int
		want string
	}{
		{"block CRC", 10, "CRC"},
		{"stream CRC", last - 1, "stream CRC"},
	} {
		bad := bytes.Clone(stream)
		bad[tc.at] ^= 0x01
		if _, _, err := decode(Bzip2, bad, 4096); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestBzip2Levels: streams of every level of the CLI, of data that
// exercise the stages differently, agree with the data.
func TestBzip2Levels(t *testing.T) {
	runs := bytes.Repeat([]byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"), 20000)
	for level := 1; level <= 9; level++ {
		for name, data := range map[string][]byte{"initrd": initrdLike(1200000, int64(level)), "runs": runs} {
			stream := cli(t, data, "bzip2", "-c", fmt.Sprintf("-%d", level))
			out, rest, err := decode(Bzip2, cat(stream, stream), 4096)
			if err != nil || !bytes.Equal(out, data) || !bytes.Equal(rest, stream) {
				t.Fatalf("-%d %s: %d bytes of %d, %d left, %v", level, name, len(out), len(data), len(rest), err)
			}
		}
	}
}
