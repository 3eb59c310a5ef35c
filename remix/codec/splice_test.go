package codec

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// spliceBody is compressible data of n bytes, different for each seed.
func spliceBody(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := []string{"ELF", "GLIBC_2.34", "lib", ".so.6", "\x00\x00\x00\x00", "main", "init"}
	var b bytes.Buffer
	for b.Len() < n {
		if rng.IntN(4) == 0 {
			b.WriteByte(byte(rng.Uint32()))
			continue
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// splicePiece is what a test writes: pieces of plain data, with
// bodies spliced after some of them.
type splicePiece struct {
	head, body, tail []byte
	splice           bool
}

// writeSpliced writes pieces through a zstd writer of o, cutting before
// each piece, and returns the output and the bytes it must decode to.
func writeSpliced(t *testing.T, o WriterOptions, pieces []splicePiece, spool *SpliceSpool) (out, plain []byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(Zstd, &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	sw := w.(Splicer)
	enc, err := NewSpliceEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, p := range pieces {
		if p.splice {
			s, err := enc.Encode(bytes.NewReader(p.body), int64(len(p.body)), spool)
			if err != nil {
				t.Fatal(err)
			}
			if err := sw.Splice(s); err != nil {
				t.Fatal(err)
			}
		} else if err := sw.Cut(); err != nil {
			t.Fatal(err)
		}
		w.Write(p.head)
		if p.splice {
			if err := sw.SpliceBody(); err != nil {
				t.Fatal(err)
			}
		}
		// In pieces, as a copy loop writes them.
		for b := p.body; len(b) > 0; {
			n := min(len(b), 1000)
			if _, err := w.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		w.Write(p.tail)
		plain = append(plain, p.head...)
		plain = append(plain, p.body...)
		plain = append(plain, p.tail...)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), plain
}

func TestSplice(t *testing.T) {
	big := func(n int, seed uint64) []byte { return spliceBody(n, seed) }
	tests := []struct {
		name   string
		o      WriterOptions
		pieces []splicePiece
	}{
		{"one body, no head or tail", WriterOptions{Level: 1, Window: 2 << 20}, []splicePiece{
			{body: big(300<<10, 1), splice: true}}},
		{"entries between bodies", WriterOptions{Level: 1, Window: 2 << 20, FrameSize: 64 << 10}, []splicePiece{
			{head: []byte("header one"), body: big(50<<10, 2)},
			{head: []byte("header two!!"), body: big(700<<10, 3), tail: []byte{0, 0}, splice: true},
			{head: []byte("small"), body: big(100, 4), tail: []byte{0}},
			{head: []byte("header four"), body: big(200<<10, 5), tail: []byte{0, 0, 0}, splice: true},
			{head: []byte("header five"), body: big(129<<10, 6), splice: true},
			{head: []byte("trailer")}}},
		{"default level, 8 MiB window, a body larger than a block", WriterOptions{}, []splicePiece{
			{head: bytes.Repeat([]byte("h"), 200<<10), body: big(3<<20, 7), tail: bytes.Repeat([]byte("t"), 150<<10), splice: true}}},
		{"small window: raw blocks no larger than it", WriterOptions{Level: 1, Window: 64 << 10}, []splicePiece{
			{head: bytes.Repeat([]byte("h"), 100<<10), body: big(500<<10, 8), tail: []byte("x"), splice: true}}},
		{"an empty body", WriterOptions{Level: 1}, []splicePiece{
			{head: []byte("h"), body: nil, tail: []byte("t"), splice: true}}},
	}
	_, zstdErr := exec.LookPath("zstd")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var outs [][]byte
			spool, err := NewSpliceSpool(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer spool.Close()
			// In memory or in a spool, one or several workers: the
			// same output.
			for _, run := range []struct {
				conc  int
				spool *SpliceSpool
			}{{1, nil}, {4, nil}, {2, spool}} {
				o := tc.o
				o.Concurrency = run.conc
				out, plain := writeSpliced(t, o, tc.pieces, run.spool)
				// klauspost's decoder, which checks every frame's
				// checksum (this package's reader reads one frame).
				d, err := zstd.NewReader(bytes.NewReader(out), zstd.WithDecoderConcurrency(1))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(d)
				d.Close()
				if err != nil {
					t.Fatalf("decoding: %v", err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("decoded %d bytes, not the %d written", len(got), len(plain))
				}
				// The reference implementation (the kernel's decoder is
				// the same library).
				if zstdErr == nil {
					cmd := exec.Command("zstd", "-dc", "--no-progress")
					cmd.Stdin = bytes.NewReader(out)
					ref, err := cmd.Output()
					if err != nil {
						t.Fatalf("zstd -dc: %v", err)
					}
					if !bytes.Equal(ref, plain) {
						t.Fatalf("zstd -dc decoded %d bytes, not the %d written", len(ref), len(plain))
					}
				}
				outs = append(outs, out)
			}
			for i := range outs {
				if !bytes.Equal(outs[i], outs[0]) {
					t.Errorf("run %d: output differs from the first run", i)
				}
			}
		})
	}
	if zstdErr != nil {
		t.Logf("zstd CLI not found: checked with this package's decoder only")
	}
}

// A spliced frame whose body bytes are not the size the blocks hold, or a
// body of other options, is an error.
func TestSpliceErrors(t *testing.T) {
	o := WriterOptions{Level: 1, Window: 2 << 20}
	enc, err := NewSpliceEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	body := spliceBody(10<<10, 9)
	s, err := enc.Encode(bytes.NewReader(body), int64(len(body)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(bytes.NewReader(body), int64(len(body))+1, nil); err == nil {
		t.Errorf("Encode of a body shorter than its size: no error")
	}
	tests := []struct {
		name string
		o    WriterOptions
		run  func(w io.Writer, sw Splicer) error
	}{
		{"short body", o, func(w io.Writer, sw Splicer) error {
			sw.Splice(s)
			sw.SpliceBody()
			w.Write(body[:100])
			return sw.Cut()
		}},
		{"no SpliceBody", o, func(w io.Writer, sw Splicer) error {
			sw.Splice(s)
			w.Write(body)
			return sw.Cut()
		}},
		{"SpliceBody without Splice", o, func(w io.Writer, sw Splicer) error { return sw.SpliceBody() }},
		{"other level", WriterOptions{Level: 19, Window: 2 << 20}, func(w io.Writer, sw Splicer) error { return sw.Splice(s) }},
		{"other window", WriterOptions{Level: 1}, func(w io.Writer, sw Splicer) error { return sw.Splice(s) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(Zstd, io.Discard, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.run(w, w.(Splicer))
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				t.Fatal("no error")
			}
		})
	}
	// gzip members cannot be spliced.
	w, err := NewWriter(Gzip, io.Discard, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if sw, ok := w.(Splicer); ok && sw.Splice(s) == nil {
		t.Errorf("gzip writer spliced a zstd body")
	}
}

// zstdFrameBlocks on frames the encoder writes, and on what it must refuse.
func TestZstdFrameBlocks(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	enc.Reset(&frame)
	enc.Write(spliceBody(500<<10, 10))
	enc.Close()
	good := frame.Bytes()
	blocks, window, err := zstdFrameBlocks(good)
	if err != nil {
		t.Fatal(err)
	}
	if window != 1<<20 {
		t.Errorf("window %d, want %d", window, 1<<20)
	}
	if len(blocks) != len(good)-6 {
		t.Errorf("%d bytes of blocks in a frame of %d", len(blocks), len(good))
	}
	withCRC, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	crcFrame := withCRC.EncodeAll([]byte("hello"), nil)
	bad := []struct {
		name  string
		frame []byte
	}{
		{"empty", nil},
		{"not zstd", []byte("\x1f\x8b\x08\x00\x00\x00")},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(bytes.Clone(good), 0)},
		{"checksum or single segment", crcFrame},
		{"reserved block type", append(bytes.Clone(good[:6]), 0x07, 0, 0)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := zstdFrameBlocks(tc.frame); err == nil {
				t.Errorf("no error")
			}
		})
	}
}

// FuzzZstdFrameBlocks: no input panics, and the blocks of a frame that
// decodes, put in a spliced frame, decode to the same bytes.
func FuzzZstdFrameBlocks(f *testing.F) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<16))
	for i, n := range []int{0, 1, 1000, 70 << 10} {
		var b bytes.Buffer
		enc.Reset(&b)
		enc.Write(spliceBody(n, uint64(i)))
		enc.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		blocks, window, err := zstdFrameBlocks(frame)
		if err != nil {
			return
		}
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		want, err := d.DecodeAll(frame, nil)
		if err != nil || window < 1<<10 || window > 1<<20 || window&(window-1) != 0 {
			return
		}
		sp := &splice{s: &Spliced{blocks: blocks, size: int64(len(want)), window: window}, h: xxhash.New(), inBody: true}
		sp.write(want)
		parts, err := sp.frame()
		if err != nil {
			t.Fatal(err)
		}
		var spliced []byte
		for _, p := range parts {
			spliced = append(spliced, p.b...)
		}
		got, err := d.DecodeAll(spliced, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("spliced frame: %v; %d bytes, want %d", err, len(got), len(want))
		}
	})
}
