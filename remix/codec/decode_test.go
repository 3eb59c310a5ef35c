package codec

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// cliStreams are the real tools' encodings of the formats the kernel reads.
// viaFile runs the tool on a file, which makes gzip record the name, zstd
// record the content size, and so on.
var cliStreams = []struct {
	name    string
	codec   Codec
	cmd     []string
	viaFile bool
	checked bool // the format checks its data, so corruption cannot pass unnoticed
}{
	{"gzip -n", Gzip, []string{"gzip", "-n", "-c"}, false, true},
	{"gzip -9 with name", Gzip, []string{"gzip", "-9", "-c"}, true, true},
	{"zstd", Zstd, []string{"zstd", "-q", "-c"}, false, true},
	{"zstd -9 --no-check", Zstd, []string{"zstd", "-q", "-c", "-9", "--no-check"}, false, false},
	{"zstd with content size", Zstd, []string{"zstd", "-q", "-c", "-1"}, true, true},
	{"xz crc32 dict 1MiB", XZ, []string{"xz", "-c", "--check=crc32", "--lzma2=dict=1MiB"}, false, true},
	{"xz crc64", XZ, []string{"xz", "-c"}, false, true},
	{"xz sha256", XZ, []string{"xz", "-c", "--check=sha256", "-1"}, false, true},
	{"xz no check", XZ, []string{"xz", "-c", "--check=none", "-1"}, false, false},
	{"xz blocks with sizes", XZ, []string{"xz", "-c", "-T2", "--block-size=200KiB", "--check=crc32", "-1"}, false, true},
	{"lz4 legacy", LZ4, []string{"lz4", "-l", "-c", "-q"}, false, false},
	{"lz4 legacy -9", LZ4, []string{"lz4", "-l", "-9", "-c", "-q"}, false, false},
	{"bzip2", Bzip2, []string{"bzip2", "-c"}, false, true},
	{"bzip2 -1", Bzip2, []string{"bzip2", "-1", "-c"}, false, true},
	{"lzma", LZMA, []string{"lzma", "-c"}, false, false},
	{"lzma -1", LZMA, []string{"lzma", "-1", "-c"}, false, false},
	{"lzop", LZO, []string{"lzop", "-c"}, false, true},
	{"lzop -9", LZO, []string{"lzop", "-9", "-c"}, false, true},
	{"lzop --crc32", LZO, []string{"lzop", "--crc32", "-c"}, false, true},
}

func compressCLI(t testing.TB, cmd []string, viaFile bool, data []byte) []byte {
	t.Helper()
	if viaFile {
		return cliFile(t, data, cmd[0], cmd[1:]...)
	}
	return cli(t, data, cmd[0], cmd[1:]...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestDecodeIsExact decodes the real tools' streams followed by what may
// follow a stream in an initrd, and checks that the source is left exactly
// at the first byte after the stream.
func TestDecodeIsExact(t *testing.T) {
	data := initrdLike(300<<10, 1)
	data2 := initrdLike(5000, 2)
	tails := []struct {
		name string
		tail string
		lz4  bool // whether a legacy lz4 stream may be followed by it
	}{
		{"end of input", "", true},
		{"zero padding", "\x00\x00\x00\x00", true},
		{"one zero", "\x00", true},
		{"three bytes", "ab\x00", true}, // unlz4 stops before a tail shorter than a word
		{"cpio", "07070100000000", false},
		{"gzip", "\x1f\x8b\x08\x00rest", false},
		{"lz4 magic", "\x02\x21\x4c\x18", true}, // continues the lz4 stream, empty
	}
	for _, tc := range cliStreams {
		t.Run(tc.name, func(t *testing.T) {
			stream := compressCLI(t, tc.cmd, tc.viaFile, data)
			stream2 := compressCLI(t, tc.cmd, tc.viaFile, data2)
			if c, ok := Detect(stream); !ok || c != tc.codec {
				t.Fatalf("Detect = %q, %v", c, ok)
			}
			bufSizes := []int{16, 4096}
			if tc.codec == LZMA {
				// lzma decodes from a peeked window: 64 bytes at least.
				if _, _, err := decode(tc.codec, stream, 16); err == nil || !strings.Contains(err.Error(), "buffer under 64 bytes") {
					t.Fatalf("buffer 16: %v, want the buffer refused", err)
				}
				bufSizes[0] = 64
			}
			for _, bufSize := range bufSizes {
				for _, tail := range tails {
					out, rest, err := decode(tc.codec, cat(stream, []byte(tail.tail)), bufSize)
					if tc.codec == LZ4 && !tail.lz4 {
						// unlz4 reads the word after a chunk as the size of
						// the next one: only zero padding may follow.
						if err == nil {
							t.Errorf("%s, buffer %d: lz4 followed by %s decoded", tail.name, bufSize, tail.name)
						}
						continue
					}
					if err != nil {
						t.Fatalf("%s, buffer %d: %v", tail.name, bufSize, err)
					}
					if !bytes.Equal(out, data) {
						t.Fatalf("%s, buffer %d: decoded %d bytes, want %d", tail.name, bufSize, len(out), len(data))
					}
					wantRest := tail.tail
					if tc.codec == LZ4 && tail.name == "lz4 magic" {
						wantRest = ""
					}
					if string(rest) != wantRest {
						t.Fatalf("%s, buffer %d: the source holds %q after the stream, want %q", tail.name, bufSize, rest, wantRest)
					}
				}

				// Two streams back to back: each reader stops at its own end,
				// except lz4, where a repeated magic continues the stream.
				src := bufio.NewReaderSize(bytes.NewReader(cat(stream, stream2, []byte("\x00\x00\x00\x00"))), bufSize)
				want := [][]byte{data, data2}
				if tc.codec == LZ4 {
					want = [][]byte{cat(data, data2)}
				}
				for i, w := range want {
					r, err := NewReader(tc.codec, src)
					if err != nil {
						t.Fatalf("stream %d: %v", i, err)
					}
					got, err := io.ReadAll(r)
					r.Close()
					if err != nil || !bytes.Equal(got, w) {
						t.Fatalf("stream %d, buffer %d: %d bytes, %v; want %d bytes", i, bufSize, len(got), err, len(w))
					}
				}
				if rest, _ := io.ReadAll(src); string(rest) != "\x00\x00\x00\x00" {
					t.Fatalf("after two streams the source holds %q", rest)
				}
			}
		})
	}
}

// TestDecodeEmpty decodes the tools' streams of no data.
func TestDecodeEmpty(t *testing.T) {
	for _, tc := range cliStreams {
		t.Run(tc.name, func(t *testing.T) {
			stream := compressCLI(t, tc.cmd, tc.viaFile, nil)
			out, rest, err := decode(tc.codec, cat(stream, []byte("\x00\x00\x00\x00")), 4096)
			if err != nil || len(out) != 0 || string(rest) != "\x00\x00\x00\x00" {
				t.Fatalf("got %d bytes, rest %q, %v", len(out), rest, err)
			}
		})
	}
}

// TestBzip2EndsAtEveryBitAlignment: a bzip2 stream ends anywhere within a
// byte; decode streams of many sizes and contents, some concatenated.
func TestBzip2EndsAtEveryBitAlignment(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for i, size := range []int{0, 1, 2, 3, 7, 8, 9, 31, 100, 255, 1000, 4097, 40000, 99999, 100000, 100001, 250000} {
		data := initrdLike(size, int64(i))
		if i%3 == 0 {
			rng.Read(data)
		}
		level := fmt.Sprintf("-%d", 1+i%9)
		stream := cli(t, data, "bzip2", "-c", level)
		out, rest, err := decode(Bzip2, cat(stream, stream, []byte{0xff}), 16)
		if err != nil || !bytes.Equal(out, data) || !bytes.Equal(rest, cat(stream, []byte{0xff})) {
			t.Fatalf("size %d %s: %d bytes, %d left, %v", size, level, len(out), len(rest), err)
		}
	}
}

// TestLZ4Chunks decodes a multi-chunk legacy stream from the CLI.
func TestLZ4Chunks(t *testing.T) {
	data := initrdLike(17<<20+12345, 4)
	stream := cli(t, data, "lz4", "-l", "-c", "-q")
	out, rest, err := decode(LZ4, cat(stream, make([]byte, 8)), 4096)
	if err != nil || !bytes.Equal(out, data) || len(rest) != 8 {
		t.Fatalf("%d bytes, %d left, %v", len(out), len(rest), err)
	}
}

// TestTruncatedStreamsFail cuts streams short at many places: every cut
// must be an error (a legacy lz4 stream may also end cleanly where unlz4
// would stop, before a partial chunk-size word).
func TestTruncatedStreamsFail(t *testing.T) {
	data := initrdLike(40<<10, 5)
	for _, tc := range cliStreams {
		t.Run(tc.name, func(t *testing.T) {
			stream := compressCLI(t, tc.cmd, tc.viaFile, data)
			// Every cut in the headers and the trailer, some in between.
			step := max(1, len(stream)/20)
			for cut := 0; cut < len(stream); cut++ {
				if cut > 40 && cut < len(stream)-40 && cut%step != 0 {
					continue
				}
				out, _, err := decode(tc.codec, stream[:cut], 16)
				if err == nil {
					if tc.codec == LZ4 && cut >= 4 && cut < 8 && len(out) == 0 {
						continue
					}
					t.Fatalf("cut at %d of %d: decoded %d bytes without error", cut, len(stream), len(out))
				}
				var se *StreamError
				if cut > 0 && (!errors.As(err, &se) || se.Codec != tc.codec || se.Offset < 0 || se.Offset > int64(cut)) {
					t.Fatalf("cut at %d: error %v is not a StreamError of this stream", cut, err)
				}
			}
		})
	}
}

// TestCorruptStreamsFailCleanly flips bytes: decoding must end (no hang, no
// panic), and formats with checks must not return different data silently.
func TestCorruptStreamsFailCleanly(t *testing.T) {
	data := initrdLike(100<<10, 6)
	for _, tc := range cliStreams {
		t.Run(tc.name, func(t *testing.T) {
			stream := compressCLI(t, tc.cmd, tc.viaFile, data)
			rng := rand.New(rand.NewSource(int64(len(stream))))
			for i := 0; i < 25; i++ {
				bad := append([]byte{}, stream...)
				for n := 1 + rng.Intn(4); n > 0; n-- {
					bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
				}
				done := make(chan struct{})
				var out []byte
				var err error
				go func() {
					defer close(done)
					out, _, err = decode(tc.codec, bad, 4096)
				}()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					t.Fatal("decoding a corrupt stream hangs")
				}
				if err == nil && tc.checked && !bytes.Equal(out, data) {
					t.Fatalf("corruption %d decoded to different data without error", i)
				}
			}
		})
	}
}

func TestGzipHeaderFieldsTheKernelCannotSkip(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*gzip.Header)
		ok   bool
	}{
		{"plain", func(*gzip.Header) {}, true},
		{"name", func(h *gzip.Header) { h.Name = "initrd.cpio" }, true},
		{"extra", func(h *gzip.Header) { h.Extra = []byte("xx\x02\x00ab") }, false},
		{"comment", func(h *gzip.Header) { h.Comment = "hello" }, false},
	} {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		tc.set(&w.Header)
		w.Write([]byte("070701"))
		w.Close()
		out, _, err := decode(Gzip, b.Bytes(), 4096)
		if tc.ok != (err == nil) || (tc.ok && string(out) != "070701") {
			t.Errorf("%s: %q, %v", tc.name, out, err)
		}
		if !tc.ok && !strings.Contains(fmt.Sprint(err), "kernel") {
			t.Errorf("%s: error %v does not say why", tc.name, err)
		}
	}
	// A header CRC (FHCRC) neither.
	hc := []byte("\x1f\x8b\x08\x02\x00\x00\x00\x00\x00\x03\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	if _, _, err := decode(Gzip, hc, 4096); err == nil {
		t.Error("FHCRC accepted")
	}
}

func TestXZFiltersOtherThanLZMA2AreUnsupported(t *testing.T) {
	stream := cli(t, initrdLike(10000, 7), "xz", "-c", "--check=crc32", "--x86", "--lzma2=preset=1")
	if _, _, err := decode(XZ, stream, 4096); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("xz with BCJ: %v, want ErrUnsupported", err)
	}
}

func TestLZOLayoutsTheKernelMisreads(t *testing.T) {
	data := initrdLike(300<<10, 8)
	// Compressed-data checksums (-F drops the data checksum, --adler32
	// with -9 adds ...): lzop writes a checksum layout the kernel's fixed
	// "one word" parsing would misread.
	stream := cli(t, data, "lzop", "-c")
	// Flip the flags in the header to ask for a compressed-data checksum,
	// and fix the header checksum: the layout changes, so refuse it.
	bad := append([]byte{}, stream...)
	flags := 9 + 2 + 2 + 2 + 1 + 1
	bad[flags+3] |= lzopAdler32C
	fixLZOPHeaderSum(t, bad)
	if _, _, err := decode(LZO, bad, 4096); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("lzop with compressed-data checksums: %v", err)
	}
	noSum := cli(t, data, "lzop", "-c", "-F")
	if _, _, err := decode(LZO, noSum, 4096); noSum[flags+3]&1 == 0 && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("lzop without checksum: %v", err)
	}
}

// fixLZOPHeaderSum recomputes the adler32 of an lzop header in place.
func fixLZOPHeaderSum(t *testing.T, b []byte) {
	t.Helper()
	nameLen := int(b[9+7+1+4+4+4+4])
	end := 9 + 7 + 1 + 4 + 4 + 4 + 4 + 1 + nameLen
	var a, s uint32 = 1, 0
	for _, c := range b[9:end] {
		a = (a + uint32(c)) % 65521
		s = (s + a) % 65521
	}
	binary.BigEndian.PutUint32(b[end:], s<<16|a)
}

// TestMemoryBounds checks that headers asking for more memory than the
// bounds are refused before anything is allocated.
func TestMemoryBounds(t *testing.T) {
	small := limits{window: 1 << 20, dict: 1 << 20}
	data := initrdLike(200<<10, 9)
	for _, tc := range []struct {
		codec Codec
		cmd   []string
	}{
		{Zstd, []string{"zstd", "-q", "-c", "-19"}}, // 8 MiB window
		{XZ, []string{"xz", "-c", "-1", "--check=crc32", "--lzma2=dict=4MiB"}},
		{LZMA, []string{"lzma", "-c", "-1", "--lzma1=dict=4MiB"}},
	} {
		stream := cli(t, data, tc.cmd[0], tc.cmd[1:]...)
		r, err := newReader(tc.codec, bufio.NewReader(bytes.NewReader(stream)), small, nil)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if err == nil || !strings.Contains(err.Error(), "exceeds") {
			t.Errorf("%s: %v, want an error naming the bound", tc.codec, err)
		}
		if _, _, err := decode(tc.codec, stream, 4096); err != nil {
			t.Errorf("%s with default bounds: %v", tc.codec, err)
		}
	}
	// Crafted headers against the default bounds.
	lzmaHuge := []byte("\x5d\x00\x00\x00\xf0\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00")
	zstdHuge := []byte("\x28\xb5\x2f\xfd\x00\xa8") // window 2^31
	xzHuge := xzHeaderWithDict(36)                 // 1 GiB LZMA2 dictionary
	for _, tc := range []struct {
		codec Codec
		in    []byte
	}{{LZMA, lzmaHuge}, {Zstd, zstdHuge}, {XZ, xzHuge}} {
		start := time.Now()
		_, _, err := decode(tc.codec, tc.in, 4096)
		if err == nil || time.Since(start) > time.Second {
			t.Errorf("%s with a huge dictionary or window: %v after %v", tc.codec, err, time.Since(start))
		}
	}
}

// xzHeaderWithDict builds an xz stream header and a block header whose
// LZMA2 filter names a dictionary of the given size code.
func xzHeaderWithDict(bits byte) []byte {
	h := []byte("\xfd7zXZ\x00\x00\x01")
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h[6:8]))
	bh := []byte{0x02, 0x00, 0x21, 0x01, bits, 0x00, 0x00, 0x00}
	bh = binary.LittleEndian.AppendUint32(bh, crc32.ChecksumIEEE(bh))
	return append(append(h, bh...), 0xe0, 0x00, 0x00)
}

// TestFramerDisagreement: a zstd frame whose last block is declared but
// the decoder fails inside it reports the walker's or decoder's error with
// the stream offset, never a clean end.
func TestStreamErrorCarriesOffset(t *testing.T) {
	data := initrdLike(300<<10, 10)
	stream := cli(t, data, "gzip", "-n", "-c")
	bad := append([]byte{}, stream...)
	at := len(bad) / 2
	for i := at; i < at+32; i++ {
		bad[i] = 0xff
	}
	_, _, err := decode(Gzip, bad, 4096)
	var se *StreamError
	if !errors.As(err, &se) || se.Codec != Gzip || se.Offset < int64(at) || se.Offset > int64(len(bad)) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("byte %d", se.Offset)) {
		t.Fatalf("message %q lacks the offset", err)
	}
}

// TestZstdChecksumIsChecked: the frame checksum is verified by the reader of
// the decoded bytes (the decoder skips it), so a wrong one fails the stream
// at its end, naming the offset, and a frame without one is accepted.
func TestZstdChecksumIsChecked(t *testing.T) {
	data := initrdLike(300<<10, 3)
	stream := compressCLI(t, []string{"zstd", "-q", "-c"}, false, data)
	out, _, err := decode(Zstd, stream, 4096)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("intact frame: %v", err)
	}
	bad := bytes.Clone(stream)
	bad[len(bad)-1] ^= 0x40 // the checksum's last byte
	_, _, err = decode(Zstd, bad, 4096)
	var se *StreamError
	if !errors.Is(err, zstd.ErrCRCMismatch) || !errors.As(err, &se) || se.Offset != int64(len(bad)) {
		t.Fatalf("wrong checksum: %v (want a StreamError at offset %d wrapping zstd.ErrCRCMismatch)", err, len(bad))
	}
	plain := compressCLI(t, []string{"zstd", "-q", "-c", "--no-check"}, false, data)
	if out, _, err := decode(Zstd, plain, 4096); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("frame without checksum: %v", err)
	}
}
