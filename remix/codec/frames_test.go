package codec

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// encodeCut writes data as pieces of the given sizes, calling Cut after
// each piece, in writes of at most chunk bytes.
func encodeCut(t testing.TB, c Codec, data []byte, pieces []int, o WriterOptions, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(c, &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	cut := w.(Cutter)
	p := data
	for _, n := range pieces {
		piece := p[:n]
		p = p[n:]
		for len(piece) > 0 {
			k := min(chunk, len(piece))
			if _, err := w.Write(piece[:k]); err != nil {
				t.Fatal(err)
			}
			piece = piece[k:]
		}
		if err := cut.Cut(); err != nil {
			t.Fatal(err)
		}
	}
	if len(p) != 0 {
		t.Fatal("pieces do not cover the data")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// streams splits concatenated streams with the own decoder, which stops at
// the end of each one as the kernel does, and returns their contents.
func streams(t testing.TB, c Codec, in []byte) (contents [][]byte, encoded [][]byte) {
	t.Helper()
	for len(in) > 0 {
		got, rest, err := decode(c, in, 4096)
		if err != nil {
			t.Fatalf("stream %d: %v", len(contents), err)
		}
		contents = append(contents, got)
		encoded = append(encoded, in[:len(in)-len(rest)])
		in = rest
	}
	return contents, encoded
}

// pieceSizes cuts n bytes into pieces like cpio entries: mostly small, a few
// large.
func pieceSizes(n int) []int {
	var ps []int
	for i := 0; n > 0; i++ {
		s := min(n, []int{124, 3000, 500, 70000, 12, 9000, 250000}[i%7])
		ps = append(ps, s)
		n -= s
	}
	return ps
}

// TestCutterWritesIndependentStreams: with Cut calls, zstd and gzip output is
// a sequence of independent streams, each ending at a cut once it holds the
// frame size, the same bytes whatever the concurrency and write sizes, which
// the CLIs decode as one stream and the kernel-like decoder one by one.
func TestCutterWritesIndependentStreams(t *testing.T) {
	for _, c := range []Codec{Zstd, Gzip} {
		t.Run(string(c), func(t *testing.T) {
			data := initrdLike(3<<20, 5)
			pieces := pieceSizes(len(data))
			const frame = 256 << 10
			first := encodeCut(t, c, data, pieces, WriterOptions{Concurrency: 1, FrameSize: frame}, len(data))
			for _, v := range []struct{ threads, chunk int }{{2, 4096}, {4, 1000003}, {0, 77}} {
				if got := encodeCut(t, c, data, pieces, WriterOptions{Concurrency: v.threads, FrameSize: frame}, v.chunk); !bytes.Equal(got, first) {
					t.Fatalf("output with concurrency %d and writes of %d bytes differs", v.threads, v.chunk)
				}
			}
			contents, encoded := streams(t, c, first)
			if len(contents) < 8 {
				t.Fatalf("%d streams, want about %d", len(contents), len(data)/frame)
			}
			// Each stream ends at a cut, once it reached the frame size.
			cuts := map[int]bool{}
			off := 0
			for _, n := range pieces {
				off += n
				cuts[off] = true
			}
			off = 0
			for i, b := range contents {
				off += len(b)
				if !cuts[off] || (i < len(contents)-1 && len(b) < frame) {
					t.Fatalf("stream %d ends at %d (%d bytes): not at a cut past the frame size", i, off, len(b))
				}
				checkKernelSafe(t, c, encoded[i])
			}
			if !bytes.Equal(bytes.Join(contents, nil), data) {
				t.Fatal("the streams do not decode to the data")
			}
			if got := cli(t, first, cliDecoders[c][0], cliDecoders[c][1:]...); !bytes.Equal(got, data) {
				t.Fatalf("%s does not decode the streams as one", cliDecoders[c][0])
			}
			if c == Zstd {
				info := string(cliFile(t, first, "zstd", "-lv"))
				if !strings.Contains(info, fmt.Sprintf("# Zstandard Frames: %d", len(contents))) {
					t.Fatalf("zstd -lv does not count %d frames:\n%s", len(contents), info)
				}
			}
		})
	}
}

// TestCutterLargePieceGoesDirect: a piece far larger than the frame size is
// compressed straight to the output instead of being held in memory, with
// the same bytes as when it is held.
func TestCutterLargePieceGoesDirect(t *testing.T) {
	for _, c := range []Codec{Zstd, Gzip} {
		t.Run(string(c), func(t *testing.T) {
			data := initrdLike(3<<20, 9)
			pieces := []int{1000, 100, 5000, 2<<20 + 17, 300, len(data) - (1000 + 100 + 5000 + 2<<20 + 17 + 300)}
			held := encodeCut(t, c, data, pieces, WriterOptions{Concurrency: 2, FrameSize: 4 << 20}, 65536)
			for _, threads := range []int{1, 3} {
				// Frames of 4 KiB: the 2 MiB piece outgrows four frames.
				small := encodeCut(t, c, data, pieces, WriterOptions{Concurrency: threads, FrameSize: 4 << 10}, 65536)
				contents, encoded := streams(t, c, small)
				if len(contents) != 3 || len(contents[1]) != 2<<20+17 {
					t.Fatalf("%d streams, want 3 with the large piece alone in the second", len(contents))
				}
				// The large piece's stream is the one a held stream gives.
				alone := encodeCut(t, c, data[6100:6100+2<<20+17], []int{2<<20 + 17}, WriterOptions{FrameSize: 8 << 20}, 1<<20)
				if !bytes.Equal(encoded[1], alone) {
					t.Fatal("the stream written directly differs from the same stream held")
				}
			}
			if got, _ := streams(t, c, held); !bytes.Equal(bytes.Join(got, nil), data) {
				t.Fatal("held output does not decode")
			}
		})
	}
}

func TestCutterEmptyAndAfterClose(t *testing.T) {
	for _, c := range []Codec{Zstd, Gzip} {
		var buf bytes.Buffer
		w, err := NewWriter(c, &buf, WriterOptions{FrameSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		// Cuts before any data, and twice in a row, add no empty streams.
		cut := w.(Cutter)
		cut.Cut()
		w.Write([]byte(strings.Repeat("x", 20)))
		cut.Cut()
		cut.Cut()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := streams(t, c, buf.Bytes()); len(got) != 1 || string(got[0]) != strings.Repeat("x", 20) {
			t.Fatalf("%s: %q", c, got)
		}
		if err := cut.Cut(); err == nil {
			t.Errorf("%s: Cut after Close must fail", c)
		}
	}
}
