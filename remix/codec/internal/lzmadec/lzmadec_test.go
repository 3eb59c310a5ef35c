package lzmadec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/ulikunitz/xz/lzma"
)

// sample is initrd-like data: text, zero runs, repeated and random
// binary pieces, so literals, matched literals, short and long matches,
// rep matches and far distances all occur.
func sample(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	words := strings.Fields("the quick brown fox lib modules firmware udev rules systemd init console kernel module alias depends")
	var b bytes.Buffer
	for b.Len() < n {
		switch rng.Intn(6) {
		case 0:
			for i := rng.Intn(40); i > 0; i-- {
				b.WriteString(words[rng.Intn(len(words))])
				b.WriteByte(" \n/"[rng.Intn(3)])
			}
		case 1:
			b.Write(make([]byte, rng.Intn(3000)))
		case 2:
			r := make([]byte, rng.Intn(500))
			rng.Read(r)
			b.Write(r)
		case 3:
			if b.Len() > 0 {
				// A copy from far back.
				s := rng.Intn(b.Len())
				l := min(rng.Intn(2000), b.Len()-s)
				b.Write(append([]byte(nil), b.Bytes()[s:s+l]...))
			}
		case 4:
			pat := make([]byte, 1+rng.Intn(7))
			rng.Read(pat)
			for i := rng.Intn(100); i > 0; i-- {
				b.Write(pat)
			}
		case 5:
			for i := rng.Intn(64); i > 0; i-- {
				binary.Write(&b, binary.LittleEndian, uint32(rng.Intn(1<<12)))
			}
		}
	}
	return b.Bytes()[:n]
}

func run(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testtool.Require(t, name), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out
}

// decodeLZMA decodes a .lzma stream followed by trail from a buffer of
// bufSize bytes and returns the output and what the source still holds.
func decodeLZMA(stream []byte, bufSize int, maxDict int64) (out, rest []byte, err error) {
	br := bufio.NewReaderSize(bytes.NewReader(stream), bufSize)
	r, err := NewReader(br, maxDict)
	if err != nil {
		return nil, nil, err
	}
	out, err = io.ReadAll(r)
	rest, _ = io.ReadAll(br)
	return out, rest, err
}

// decodeLZMA2 decodes raw LZMA2 data both from memory and streamed, and
// checks that both agree and consume the same bytes.
func decodeLZMA2(t *testing.T, data []byte, dict int64) ([]byte, error) {
	t.Helper()
	r := NewReader2Bytes(data, dict, -1)
	out, err := io.ReadAll(r)
	src := bytes.NewReader(data)
	s := NewReader2(src, dict, -1)
	out2, err2 := io.ReadAll(s)
	if (err == nil) != (err2 == nil) || !bytes.Equal(out, out2) {
		t.Fatalf("in memory: %d bytes, %v; streamed: %d bytes, %v", len(out), err, len(out2), err2)
	}
	if err == nil && (r.InputOffset() != s.InputOffset() || int64(len(data))-int64(src.Len()) != s.InputOffset()) {
		t.Fatalf("consumed %d bytes in memory, %d streamed (%d read)", r.InputOffset(), s.InputOffset(), int64(len(data))-int64(src.Len()))
	}
	return out, err
}

// TestXZCLI decodes what the xz tool writes: .lzma streams and raw LZMA2
// with every preset and odd lc/lp/pb, followed by bytes that must stay in
// the source.
func TestXZCLI(t *testing.T) {
	data := sample(600<<10, 1)
	opts := []string{
		"preset=0", "preset=1", "preset=2", "preset=3", "preset=4", "preset=5",
		"preset=6", "preset=7", "preset=8", "preset=9", "preset=6e",
		"preset=1,lc=0,lp=0,pb=0", "preset=6,lc=4,lp=0,pb=4", "preset=6,lc=0,lp=4,pb=4",
		"preset=3,lc=1,lp=3,pb=1", "preset=6,lc=2,lp=2,pb=3", "preset=0,dict=4KiB",
		"preset=6,mf=hc4,mode=fast,nice=8", "preset=6,nice=273,depth=0",
	}
	// One reader decodes every stream in turn, from memory and streamed,
	// after a failed one as well: what it keeps of earlier streams (the
	// dictionary, the literal probabilities of other lc/lp) must not leak.
	reused := NewReader2Bytes(nil, 0, -1)
	for _, o := range opts {
		t.Run(o, func(t *testing.T) {
			stream := run(t, data, "xz", "--format=lzma", "--lzma1="+o, "-c")
			for _, bufSize := range []int{64, 4096, 1 << 20} {
				out, rest, err := decodeLZMA(append(stream, "TAIL"...), bufSize, 1<<30)
				if err != nil || !bytes.Equal(out, data) || string(rest) != "TAIL" {
					t.Fatalf("lzma, buffer %d: %d bytes (want %d), rest %q, %v", bufSize, len(out), len(data), rest, err)
				}
			}
			raw := run(t, data, "xz", "--format=raw", "--lzma2="+o, "-c")
			out, err := decodeLZMA2(t, append(raw, "TAIL"...), 64<<20)
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("lzma2: %d bytes (want %d), %v", len(out), len(data), err)
			}
			reused.ResetBytes(raw[:len(raw)/2], 64<<20, -1)
			if _, err := io.ReadAll(reused); err == nil {
				t.Fatal("lzma2, reused reader: half the data decoded without an error")
			}
			reused.ResetBytes(raw, 64<<20, -1)
			if out, err := io.ReadAll(reused); err != nil || !bytes.Equal(out, data) || reused.InputOffset() != int64(len(raw)) {
				t.Fatalf("lzma2, reused reader: %d bytes (want %d), %d of %d read, %v", len(out), len(data), reused.InputOffset(), len(raw), err)
			}
			reused.Reset(bytes.NewReader(raw), 1<<20, int64(len(data)))
			if out, err := io.ReadAll(reused); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("lzma2, reused reader, streamed: %d bytes (want %d), %v", len(out), len(data), err)
			}
		})
	}
}

// encodeLZMA writes data as a .lzma stream with ulikunitz/xz's encoder
// (dictionary 64 KiB), its size in the header or not, with an end marker
// or not.
func encodeLZMA(t testing.TB, p lzma.Properties, data []byte, sized, eos bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	cfg := lzma.WriterConfig{Properties: &p, DictCap: 1 << 16, EOSMarker: eos, SizeInHeader: sized, Size: -1}
	if sized {
		cfg.Size = int64(len(data))
	}
	w, err := cfg.NewWriter(&buf)
	writeAll(t, w, err, data)
	return buf.Bytes()
}

func writeAll(t testing.TB, w io.WriteCloser, err error, data []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// encodeLZMA2 writes data as LZMA2 with ulikunitz/xz's encoder.
func encodeLZMA2(t testing.TB, p lzma.Properties, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := lzma.Writer2Config{Properties: &p, DictCap: 1 << 16}.NewWriter2(&buf)
	writeAll(t, w, err, data)
	return buf.Bytes()
}

// TestULikunitz decodes what ulikunitz/xz's encoder writes, with known
// and unknown sizes, with and without end marker, and every lc/lp/pb
// corner (lc up to 8 in .lzma).
func TestULikunitz(t *testing.T) {
	data := sample(200<<10, 2)
	props := []lzma.Properties{{LC: 3, LP: 0, PB: 2}, {LC: 0, LP: 0, PB: 0}, {LC: 8, LP: 4, PB: 4}, {LC: 4, LP: 0, PB: 4}, {LC: 0, LP: 4, PB: 0}, {LC: 1, LP: 2, PB: 3}}
	for _, p := range props {
		for _, size := range []bool{false, true} {
			for _, eos := range []bool{false, true} {
				if !size && !eos {
					continue // an unknown size needs the end marker
				}
				t.Run(fmt.Sprintf("lc%d-lp%d-pb%d-size%v-eos%v", p.LC, p.LP, p.PB, size, eos), func(t *testing.T) {
					stream := encodeLZMA(t, p, data, size, eos)
					out, rest, err := decodeLZMA(append(stream, 0, 0, 0, 0), 4096, 1<<20)
					if err != nil || !bytes.Equal(out, data) || !bytes.Equal(rest, []byte{0, 0, 0, 0}) {
						t.Fatalf("%d bytes (want %d), rest %q, %v", len(out), len(data), rest, err)
					}
				})
			}
		}
		if p.LC+p.LP > 4 {
			continue
		}
		t.Run(fmt.Sprintf("lzma2-lc%d-lp%d-pb%d", p.LC, p.LP, p.PB), func(t *testing.T) {
			out, err := decodeLZMA2(t, encodeLZMA2(t, p, data), 1<<16)
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("%d bytes (want %d), %v", len(out), len(data), err)
			}
		})
	}
}

// lzma2Chunk builds an LZMA2 chunk of uncompressed data.
func rawChunk(reset bool, data []byte) []byte {
	ctl := byte(2)
	if reset {
		ctl = 1
	}
	return append([]byte{ctl, byte((len(data) - 1) >> 8), byte(len(data) - 1)}, data...)
}

// lzmaChunks compresses data with xz into raw LZMA2 and returns it
// without its end marker.
func lzmaChunks(t *testing.T, data []byte) []byte {
	raw := run(t, data, "xz", "--format=raw", "--lzma2=preset=1", "-c")
	if raw[len(raw)-1] != 0 {
		t.Fatal("no LZMA2 end marker")
	}
	return raw[:len(raw)-1]
}

// TestLZMA2Chunks covers the chunk rules: dictionary and state resets,
// uncompressed chunks, properties, sizes.
func TestLZMA2Chunks(t *testing.T) {
	a := []byte("uncompressed chunk, then the same again: ")
	comp := lzmaChunks(t, bytes.Repeat([]byte("compressed "), 50))
	tests := []struct {
		name    string
		in      []byte
		want    string // output, when no error
		wantErr string
	}{
		{"end only", []byte{0}, "", ""},
		{"uncompressed", cat(rawChunk(true, a), rawChunk(false, a), []byte{0}), string(a) + string(a), ""},
		{"compressed after uncompressed", cat(rawChunk(true, a), comp, []byte{0}), string(a) + strings.Repeat("compressed ", 50), ""},
		{"first chunk without dictionary reset", cat(rawChunk(false, a), []byte{0}), "", "first LZMA2 chunk"},
		{"LZMA chunk without properties after a reset", cat(rawChunk(true, a), []byte{0x80, 0, 0, 0, 4, 0, 0, 0, 0, 0}, []byte{0}), "", "without properties"},
		{"control byte 3", cat(rawChunk(true, a), []byte{3, 0, 0}), "", "control byte"},
		{"lc+lp > 4", cat([]byte{0xe0, 0, 0, 0, 4, 3 + 9*2}, make([]byte, 5), []byte{0}), "", "lc + lp"},
		{"properties byte 225", cat([]byte{0xe0, 0, 0, 0, 4, 225}, make([]byte, 5), []byte{0}), "", "properties byte"},
		{"chunk shorter than 5 bytes", []byte{0xe0, 0, 0, 0, 3, 0x5d, 0, 0, 0, 0, 0}, "", "shorter"},
		{"no end marker", rawChunk(true, a), "", "unexpected EOF"},
		{"compressed size too large", func() []byte {
			c := append([]byte(nil), comp...)
			binary.BigEndian.PutUint16(c[3:], binary.BigEndian.Uint16(c[3:])+1)
			return cat(c, []byte{0, 0})
		}(), "", "size does not match"},
		{"uncompressed size too large", func() []byte {
			c := append([]byte(nil), comp...)
			binary.BigEndian.PutUint16(c[1:], binary.BigEndian.Uint16(c[1:])+1)
			return cat(c, []byte{0})
		}(), "", "LZMA"},
		{"two dictionary resets", cat(rawChunk(true, a), comp, rawChunk(true, a), []byte{0}), string(a) + strings.Repeat("compressed ", 50) + string(a), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := decodeLZMA2(t, tc.in, 1<<20)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("%q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestLZMAHeader covers the .lzma header: dictionary bound, sizes,
// properties.
func TestLZMAHeader(t *testing.T) {
	hdr := func(props byte, dict uint32, size uint64) []byte {
		h := []byte{props, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(h[1:], dict)
		binary.LittleEndian.PutUint64(h[5:], size)
		return h
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"dictionary over the bound", hdr(0x5d, 1<<27, 1<<64-1), "exceeds"},
		{"properties byte 225", hdr(225, 1<<16, 1<<64-1), "properties byte"},
		{"huge size", hdr(0x5d, 1<<16, 1<<62), "uncompressed size"},
		{"short header", hdr(0x5d, 1<<16, 0)[:12], "unexpected EOF"},
		{"empty with size 0", cat(hdr(0x5d, 1<<16, 0), make([]byte, 5)), ""},
		{"range coder not starting with 0", cat(hdr(0x5d, 1<<16, 10), []byte{1, 0, 0, 0, 0}), "zero byte"},
		{"no range coder bytes", hdr(0x5d, 1<<16, 10), "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeLZMA(tc.in, 4096, 1<<26)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTruncated cuts small streams at every byte: each cut is an error,
// never a panic, a hang or success.
func TestTruncated(t *testing.T) {
	data := sample(3000, 3)
	stream := run(t, data, "xz", "--format=lzma", "--lzma1=preset=6,dict=4KiB", "-c")
	for n := 0; n < len(stream); n++ {
		if _, _, err := decodeLZMA(stream[:n], 64, 1<<26); err == nil {
			t.Fatalf("lzma cut at %d of %d bytes decoded", n, len(stream))
		} else if n >= 18 && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("lzma cut at %d: %v", n, err)
		}
	}
	raw := run(t, data, "xz", "--format=raw", "--lzma2=preset=6", "-c")
	for n := 0; n < len(raw); n++ {
		if _, err := decodeLZMA2(t, raw[:n], 4096); err == nil {
			t.Fatalf("lzma2 cut at %d of %d bytes decoded", n, len(raw))
		}
	}
}

// TestCorruptBits flips every bit of a small stream's data: decoding ends
// (error or output) without a panic and within bounded output.
func TestCorruptBits(t *testing.T) {
	data := sample(8000, 7)
	stream := run(t, data, "xz", "--format=lzma", "--lzma1=preset=6,dict=4KiB", "-c")
	raw := run(t, data, "xz", "--format=raw", "--lzma2=preset=6", "-c")
	errs := 0
	for i := 13 * 8; i < len(stream)*8; i++ {
		c := append([]byte(nil), stream...)
		c[i/8] ^= 1 << (i % 8)
		out, _, err := decodeLZMA(c, 64, 1<<26)
		if err != nil {
			errs++
		}
		_ = out
	}
	for i := 0; i < len(raw)*8; i++ {
		c := append([]byte(nil), raw...)
		c[i/8] ^= 1 << (i % 8)
		if _, err := decodeLZMA2(t, c, 4096); err != nil {
			errs++
		}
	}
	t.Logf("%d of %d flipped bits noticed", errs, (len(stream)-13+len(raw))*8)
	if errs == 0 {
		t.Fatal("no corruption was noticed")
	}
}
