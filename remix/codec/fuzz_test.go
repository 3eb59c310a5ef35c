package codec

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Fuzzing runs with small bounds so that no input makes an iteration
// allocate more than a few MiB, and decoding stops after fuzzOutCap bytes.
func fuzzLimits() limits { return limits{window: 1 << 20, dict: 1 << 20} }

const fuzzOutCap = 16 << 20

// decodeCapped decodes one stream of in and reports what it decoded and
// how many bytes of in it consumed; capped is set when the output reached
// the cap, which leaves the stream unfinished.
func decodeCapped(c Codec, in []byte) (out []byte, consumed int, capped bool, err error) {
	br := bytes.NewReader(in)
	src := bufio.NewReaderSize(br, 64)
	r, err := newReader(c, src, fuzzLimits(), nil)
	if err != nil {
		return nil, 0, false, err
	}
	defer r.Close()
	out, err = io.ReadAll(io.LimitReader(r, fuzzOutCap+1))
	if len(out) > fuzzOutCap {
		return out, 0, true, err
	}
	return out, len(in) - br.Len() - src.Buffered(), false, err
}

// checkDecode is the property every decoder must have on any input: no
// panic, and when it decodes a stream, the stream's end depends only on
// the stream: the same bytes followed by something else decode to the
// same data and stop at the same place.
func checkDecode(t *testing.T, c Codec, in []byte) {
	out, n, capped, err := decodeCapped(c, in)
	if err != nil || capped {
		if err != nil && c == Gzip {
			checkGzipAgrees(t, in)
		}
		return
	}
	if n < 0 || n > len(in) {
		t.Fatalf("consumed %d of %d bytes", n, len(in))
	}
	tail := "\x00\x00\x00\x00" // what may follow an lz4 stream
	if c != LZ4 {
		tail = "\x1f\x8b\x08\x00junk"
	}
	again := append(in[:n:n], tail...)
	out2, n2, _, err2 := decodeCapped(c, again)
	if err2 != nil || n2 != n || !bytes.Equal(out, out2) {
		t.Fatalf("the stream's end depends on what follows it: %d bytes then %d, %v", n, n2, err2)
	}
	switch c {
	case Gzip:
		// The standard library's decoder agrees on the data and the end.
		out3, n3, err3 := stdGzip(in)
		if err3 != nil || n3 != n || !bytes.Equal(out, out3) {
			t.Fatalf("compress/gzip: %d bytes consumed, %v; we consumed %d", n3, err3, n)
		}
	case Bzip2:
		// The walker handed compress/bzip2 the bytes it reads up to
		// the end of the stream.
		out3, err3 := io.ReadAll(bzip2.NewReader(bytes.NewReader(in[:n])))
		if err3 != nil || !bytes.Equal(out, out3) {
			t.Fatalf("compress/bzip2 on the stream's bytes: %v", err3)
		}
	}
}

// stdGzip decodes one member with compress/gzip, which reads a
// ByteReader source exactly.
func stdGzip(in []byte) ([]byte, int, error) {
	br := bytes.NewReader(in)
	z, err := gzip.NewReader(br)
	if err != nil {
		return nil, 0, err
	}
	z.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(z, fuzzOutCap+1))
	return out, len(in) - br.Len(), err
}

// checkGzipAgrees: when we refuse a member, compress/gzip must refuse it
// too, unless it has the header fields the kernel cannot skip.
func checkGzipAgrees(t *testing.T, in []byte) {
	if len(in) > 3 && in[3]&0x16 != 0 {
		return
	}
	if out, _, err := stdGzip(in); err == nil && len(out) <= fuzzOutCap {
		_, _, _, ourErr := decodeCapped(Gzip, in)
		t.Fatalf("compress/gzip decodes what we refuse: %v", ourErr)
	}
}

// ownSeeds are streams of the package's own writers.
func ownSeeds(f *testing.F, c Codec) {
	for _, data := range [][]byte{nil, []byte("070701"), initrdLike(3000, 20)} {
		f.Add(encode(f, c, data, WriterOptions{Concurrency: 1}, len(data)+1))
	}
}

func FuzzGzip(f *testing.F) {
	ownSeeds(f, Gzip)
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, Gzip, in) })
}

func FuzzZstd(f *testing.F) {
	ownSeeds(f, Zstd)
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, Zstd, in) })
}

func FuzzXZ(f *testing.F) {
	ownSeeds(f, XZ)
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, XZ, in) })
}

func FuzzLZ4(f *testing.F) {
	ownSeeds(f, LZ4)
	f.Add([]byte("\x02\x21\x4c\x18\x02\x21\x4c\x18\x05\x00\x00\x00\x40abcd\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, LZ4, in) })
}

// The bzip2, lzma and lzo seeds come from the real tools and are committed
// under testdata/fuzz (see TestWriteFuzzCorpus).

func FuzzBzip2(f *testing.F) {
	f.Add([]byte("BZh91AY&SY"))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, Bzip2, in) })
}

func FuzzLZMA(f *testing.F) {
	f.Add([]byte("\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00"))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, LZMA, in) })
}

func FuzzLZO(f *testing.F) {
	f.Add([]byte(lzopMagic))
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, LZO, in) })
}

// FuzzLZO1X drives the block decoder directly: it must never read or
// write out of bounds, and succeeds only by filling dst exactly.
func FuzzLZO1X(f *testing.F) {
	f.Add(uint16(0), []byte("\x11\x00\x00"))
	f.Add(uint16(8), []byte("\x13ab\xa4\x00\x11\x00\x00"))
	f.Fuzz(func(t *testing.T, size uint16, src []byte) {
		dst := make([]byte, size)
		if err := lzo1xDecompress(src, dst); err == nil && len(src) < 3 {
			t.Fatal("a block shorter than the end marker decoded")
		}
	})
}

// FuzzDecode is the segment scanner's view: the magic picks the decoder.
func FuzzDecode(f *testing.F) {
	for _, c := range []Codec{Gzip, Zstd, XZ, LZ4} {
		ownSeeds(f, c)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if c, ok := Detect(in); ok {
			checkDecode(t, c, in)
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus from the real
// tools: CODEC_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./remix/codec/
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CODEC_WRITE_CORPUS") == "" {
		t.Skip("set CODEC_WRITE_CORPUS=1 to regenerate testdata/fuzz from the CLI tools")
	}
	data := initrdLike(4000, 21)
	for _, s := range []struct {
		fuzz string
		cmd  []string
	}{
		{"FuzzGzip", []string{"gzip", "-c", "-9"}},
		{"FuzzZstd", []string{"zstd", "-q", "-c", "-19", "--zstd=wlog=16"}},
		{"FuzzZstd", []string{"zstd", "-q", "-c", "-1", "--no-check", "--zstd=wlog=12"}},
		{"FuzzXZ", []string{"xz", "-c", "--check=crc32", "--lzma2=dict=64KiB"}},
		{"FuzzXZ", []string{"xz", "-c", "-T2", "--block-size=1000", "--check=sha256", "--lzma2=dict=64KiB"}},
		{"FuzzLZ4", []string{"lz4", "-l", "-9", "-c", "-q"}},
		{"FuzzBzip2", []string{"bzip2", "-c", "-1"}},
		{"FuzzLZMA", []string{"lzma", "-c", "--lzma1=dict=64KiB"}},
		{"FuzzLZO", []string{"lzop", "-c", "-9"}},
		{"FuzzLZO", []string{"lzop", "-c", "--crc32"}},
	} {
		stream := cli(t, data, s.cmd[0], s.cmd[1:]...)
		for _, fuzz := range []string{s.fuzz, "FuzzDecode"} {
			dir := filepath.Join("testdata", "fuzz", fuzz)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, "cli-"+s.cmd[0]+"-"+fmt.Sprintf("%08x", crc(stream)))
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", stream)
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func crc(b []byte) uint32 {
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}
