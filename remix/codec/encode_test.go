package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func encode(t testing.TB, c Codec, data []byte, o WriterOptions, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(c, &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var cliDecoders = map[Codec][]string{
	Gzip: {"gzip", "-dc"},
	Zstd: {"zstd", "-dc"},
	XZ:   {"xz", "-dc"},
	LZ4:  {"lz4", "-dc"},
}

// TestEncodersAreKernelSafe: the real tools decode our streams back, the
// streams have the properties the kernel needs, and the output is the
// same whatever the concurrency and the Write boundaries.
func TestEncodersAreKernelSafe(t *testing.T) {
	for _, c := range []Codec{Gzip, Zstd, XZ, LZ4} {
		t.Run(string(c), func(t *testing.T) {
			size := 1 << 20
			variants := []struct{ threads, chunk int }{{4, 4096}}
			if c == XZ {
				size = 7 << 20 // three blocks, the last one short
				variants = []struct{ threads, chunk int }{{3, 1000003}}
			}
			if c == LZ4 || c == Zstd {
				size = 17 << 20 // several 8 MiB lz4 chunks and zstd windows
				variants = []struct{ threads, chunk int }{{4, size}, {2, 1000003}, {0, 4096}}
			}
			data := initrdLike(size, 11)
			first := encode(t, c, data, WriterOptions{Concurrency: 1}, len(data))
			for _, o := range variants {
				if got := encode(t, c, data, WriterOptions{Concurrency: o.threads}, o.chunk); !bytes.Equal(got, first) {
					t.Fatalf("output with concurrency %d and writes of %d bytes differs", o.threads, o.chunk)
				}
			}
			if got := cli(t, first, cliDecoders[c][0], cliDecoders[c][1:]...); !bytes.Equal(got, data) {
				t.Fatalf("%s does not decode our output back", cliDecoders[c][0])
			}
			if got, rest, err := decode(c, cat(first, make([]byte, 4)), 4096); err != nil || !bytes.Equal(got, data) || len(rest) != 4 {
				t.Fatalf("own decoder: %v", err)
			}
			checkKernelSafe(t, c, first)
			if c == XZ {
				// Blocks of 3 MiB, compressed in parallel, as xz -T makes them.
				if info := string(cliFile(t, first, "xz", "--robot", "--list")); !regexp.MustCompile(`(?m)^file\t1\t3\t`).MatchString(info) {
					t.Fatalf("want one stream of three blocks:\n%s", info)
				}
			}
		})
	}
}

func checkKernelSafe(t *testing.T, c Codec, stream []byte) {
	t.Helper()
	switch c {
	case Gzip:
		// One member, no FNAME/FEXTRA/FCOMMENT/FHCRC, no time.
		if stream[3] != 0 || binary.LittleEndian.Uint32(stream[4:]) != 0 {
			t.Fatalf("gzip header % x has flags or a time", stream[:10])
		}
	case XZ:
		info := string(cliFile(t, stream, "xz", "--robot", "--list"))
		if !regexp.MustCompile(`(?m)^file\t1\t`).MatchString(info) || !strings.Contains(info, "\tCRC32\t") || strings.Contains(info, "CRC64") {
			t.Fatalf("want one stream with a CRC32 check:\n%s", info)
		}
		info = string(cliFile(t, stream, "xz", "--robot", "--list", "-vv"))
		if !strings.Contains(info, "--lzma2=") || strings.Contains(info, "--x86") {
			t.Fatalf("want a lone LZMA2 filter:\n%s", info)
		}
	case Zstd:
		info := string(cliFile(t, stream, "zstd", "-lv"))
		if !strings.Contains(info, "# Zstandard Frames: 1") || strings.Contains(info, "Skippable") {
			t.Fatalf("want exactly one frame:\n%s", info)
		}
		m := regexp.MustCompile(`Window Size: ([0-9.]+) (KiB|MiB)`).FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("no window size in:\n%s", info)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "MiB" && v > 8 {
			t.Fatalf("window %s %s, want at most 8 MiB", m[1], m[2])
		}
	case LZ4:
		if binary.LittleEndian.Uint32(stream) != lz4Magic {
			t.Fatal("lz4 output is not the legacy format")
		}
		// Every chunk decodes to at most 8 MiB and fits the kernel's bound.
		for p := stream[4:]; len(p) > 0; {
			n := binary.LittleEndian.Uint32(p)
			if n == 0 || n > lz4MaxCompressed || int(n) > len(p)-4 {
				t.Fatalf("bad chunk size %d", n)
			}
			p = p[4+n:]
		}
	}
}

func TestEncodeLevels(t *testing.T) {
	data := initrdLike(256<<10, 12)
	for _, tc := range []struct {
		c      Codec
		levels []int
	}{
		{Gzip, []int{1, 9}},
		{Zstd, []int{1, 3, 7, 15, 19, 22}},
		{LZ4, []int{1, 3, 9, 12}},
		{XZ, []int{9}},
	} {
		for _, l := range tc.levels {
			stream := encode(t, tc.c, data, WriterOptions{Level: l}, len(data))
			if got := cli(t, stream, cliDecoders[tc.c][0], cliDecoders[tc.c][1:]...); !bytes.Equal(got, data) {
				t.Fatalf("%s level %d: the CLI decodes something else", tc.c, l)
			}
			checkKernelSafe(t, tc.c, stream)
		}
	}
}

// TestEncodeEmptyAndTiny: an empty segment is still one stream the CLI and
// the kernel decode, never zero bytes.
func TestEncodeEmptyAndTiny(t *testing.T) {
	for _, c := range []Codec{Gzip, Zstd, XZ, LZ4} {
		for _, data := range [][]byte{nil, []byte("0"), bytes.Repeat([]byte{0}, 100)} {
			stream := encode(t, c, data, WriterOptions{}, 1)
			if len(stream) == 0 {
				t.Fatalf("%s of %d bytes: empty stream", c, len(data))
			}
			if got := cli(t, stream, cliDecoders[c][0], cliDecoders[c][1:]...); !bytes.Equal(got, data) {
				t.Fatalf("%s of %d bytes: the CLI decodes %q", c, len(data), got)
			}
			if got, rest, err := decode(c, cat(stream, make([]byte, 4)), 16); err != nil || !bytes.Equal(got, data) || len(rest) != 4 {
				t.Fatalf("%s of %d bytes: own decoder %q, %d left, %v", c, len(data), got, len(rest), err)
			}
		}
	}
}

// TestLZ4IncompressibleChunk: a chunk that does not compress is written as
// literals, within the kernel's bound.
func TestLZ4IncompressibleChunk(t *testing.T) {
	data := make([]byte, 9<<20)
	for i := range data {
		data[i] = byte(i*7919 + i>>8*31 + i>>16*131)
	}
	x := uint64(1)
	for i := range data { // xorshift noise: nothing to match
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] ^= byte(x)
	}
	stream := encode(t, LZ4, data, WriterOptions{}, len(data))
	checkKernelSafe(t, LZ4, stream)
	if got := cli(t, stream, "lz4", "-dc"); !bytes.Equal(got, data) {
		t.Fatal("lz4 -dc decodes something else")
	}
}

func TestWriterCloseIsFinal(t *testing.T) {
	for _, c := range Writable() {
		var buf bytes.Buffer
		w, err := NewWriter(c, &buf, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("abc"))
		if err := w.Close(); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if c == None {
			continue
		}
		n := buf.Len()
		if _, err := w.Write([]byte("more")); err == nil && buf.Len() != n {
			t.Errorf("%s: write after Close changed the stream", c)
		}
		if got, _, err := decode(c, buf.Bytes()[:n], 4096); err != nil || string(got) != "abc" {
			t.Errorf("%s: %q, %v", c, got, err)
		}
	}
}

var _ io.WriteCloser = nopWriteCloser{}

// TestZstdWindow: WriterOptions.Window is the window zstd -lv reads in the
// frame header, the data decodes back with the zstd CLI, and a window that
// is no power of two from 1 KiB to 8 MiB is refused.
func TestZstdWindow(t *testing.T) {
	data := initrdLike(3<<20, 5)
	for _, tc := range []struct {
		window int
		want   int // zstd -lv's window size; 0 for an error
	}{
		{0, 8 << 20},
		{2 << 20, 2 << 20},
		{1 << 20, 1 << 20},
		{64 << 10, 64 << 10},
		{3 << 20, 0},
		{16 << 20, 0},
		{512, 0},
		{-1, 0},
	} {
		t.Run(strconv.Itoa(tc.window), func(t *testing.T) {
			o := WriterOptions{Window: tc.window, Concurrency: 2}
			if tc.want == 0 {
				if _, err := NewWriter(Zstd, io.Discard, o); err == nil {
					t.Fatalf("window %d accepted", tc.window)
				}
				return
			}
			stream := encode(t, Zstd, data, o, len(data))
			info := string(cliFile(t, stream, "zstd", "-lv"))
			if want := fmt.Sprintf("(%d B)", tc.want); !regexp.MustCompile(`Window Size: .*` + regexp.QuoteMeta(want)).MatchString(info) {
				t.Fatalf("want a window of %d bytes:\n%s", tc.want, info)
			}
			if got := cli(t, stream, "zstd", "-dc"); !bytes.Equal(got, data) {
				t.Fatal("zstd -dc does not decode the data back")
			}
		})
	}
}
