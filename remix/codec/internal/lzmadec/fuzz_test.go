package lzmadec

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// FuzzDecode decodes arbitrary input as .lzma (first byte even) or as
// LZMA2 (odd), in memory and streamed: no panic, no hang, bounded output.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("\x00\x5d\x00\x10\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x01\x01\x00\x03abcd\x02\x00\x00e\x00"))
	f.Add([]byte("\x01\xe0\x00\x00\x00\x05\x5d\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		const limit = 1 << 20
		if in[0]%2 == 0 {
			br := bufio.NewReaderSize(bytes.NewReader(in[1:]), 64)
			r, err := NewReader(br, 1<<20)
			if err != nil {
				return
			}
			io.CopyN(io.Discard, r, limit)
			return
		}
		m := NewReader2Bytes(in[1:], 1<<16, -1)
		s := NewReader2(bytes.NewReader(in[1:]), 1<<16, -1)
		a, errA := io.ReadAll(io.LimitReader(m, limit))
		b, errB := io.ReadAll(io.LimitReader(s, limit))
		if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
			t.Fatalf("in memory %d bytes, %v; streamed %d bytes, %v", len(a), errA, len(b), errB)
		}
	})
}

// FuzzRoundTrip encodes the input with ulikunitz/xz's encoders (.lzma
// with and without size, LZMA2) and checks the decoder gives it back and
// consumes exactly the stream.
func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(0x5d), []byte("hello hello hello world"))
	f.Add(byte(0), bytes.Repeat([]byte{0}, 1000))
	f.Add(byte(44), sample(5000, 9))
	f.Fuzz(func(t *testing.T, pb byte, data []byte) {
		p, err := ParseProps(pb % 225)
		if err != nil {
			t.Fatal(err)
		}
		lp := lzma.Properties{LC: p.LC, LP: p.LP, PB: p.PB}
		for _, sized := range []bool{false, true} {
			if sized && len(data) == 0 {
				continue // ulikunitz/xz writes size 0 as unknown, without end marker
			}
			stream := encodeLZMA(t, lp, data, sized, !sized)
			out, rest, err := decodeLZMA(append(stream, "xyz"...), 64, 1<<16)
			if err != nil || !bytes.Equal(out, data) || string(rest) != "xyz" {
				t.Fatalf("lzma (sized %v): %d bytes of %d, rest %q, %v", sized, len(out), len(data), rest, err)
			}
		}
		if lp.LC+lp.LP > 4 {
			return
		}
		stream := encodeLZMA2(t, lp, data)
		r := NewReader2(bytes.NewReader(append(stream, "xyz"...)), 1<<16, -1)
		out, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(out, data) || r.InputOffset() != int64(len(stream)) {
			t.Fatalf("lzma2: %d bytes of %d, consumed %d of %d, %v", len(out), len(data), r.InputOffset(), len(stream), err)
		}
	})
}
