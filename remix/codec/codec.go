// Package codec is the one place that knows the compressors the kernel
// accepts for initrd segments: it recognises them by their leading bytes as
// the kernel's decompress_method table does, decodes exactly one stream at
// a time (so the caller learns where each stream ends, which is where the
// next segment starts), and encodes streams the kernel boots: xz with a
// CRC32 check, zstd with a window of at most 8 MiB, lz4 in the legacy
// format, one gzip member, one zstd frame.
package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Codec names a compression format.
type Codec string

// The codecs the kernel knows.
const (
	None  Codec = "none"
	Gzip  Codec = "gzip"
	Zstd  Codec = "zstd"
	XZ    Codec = "xz"
	LZ4   Codec = "lz4"
	Bzip2 Codec = "bzip2"
	LZMA  Codec = "lzma"
	LZO   Codec = "lzo"
)

// MagicLen is how many leading bytes Detect needs at most.
const MagicLen = 6

// ErrUnsupported is returned for formats this package cannot read or write.
var ErrUnsupported = errors.New("not supported")

var magics = []struct {
	c     Codec
	magic string
}{
	{Gzip, "\x1f\x8b"},
	{Gzip, "\x1f\x9e"}, // old gzip, still in the kernel's table
	{Bzip2, "BZh"},
	{LZMA, "\x5d\x00\x00"},
	{XZ, "\xfd7zXZ\x00"},
	{LZO, "\x89LZO"},
	{LZ4, "\x02\x21\x4c\x18"},
	{Zstd, "\x28\xb5\x2f\xfd"},
}

// Detect names the codec whose magic starts b.
func Detect(b []byte) (Codec, bool) {
	for _, m := range magics {
		if strings.HasPrefix(string(b), m.magic) {
			return m.c, true
		}
	}
	return "", false
}

// Parse reads a codec name as given to --compress.
func Parse(name string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none", "cat", "uncompressed":
		return None, nil
	case "gzip", "gz":
		return Gzip, nil
	case "zstd", "zst":
		return Zstd, nil
	case "xz":
		return XZ, nil
	case "lz4":
		return LZ4, nil
	case "bzip2", "bz2":
		return Bzip2, nil
	case "lzma":
		return LZMA, nil
	case "lzo":
		return LZO, nil
	}
	return "", fmt.Errorf("unknown compression %q (valid: none, gzip, zstd, xz, lz4)", name)
}

// Writable lists the codecs NewWriter produces.
func Writable() []Codec { return []Codec{None, Gzip, Zstd, XZ, LZ4} }

// Source is the image as the segment scanner reads it: buffered, so that
// decoders can look ahead without consuming and give back one byte.
type Source interface {
	io.Reader
	io.ByteReader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

var _ Source = (*bufio.Reader)(nil)

// Memory bounds for hostile input. The kernel itself allocates the zstd
// window, so real initrds stay far below these.
const (
	maxZstdWindow = 128 << 20
	maxDictSize   = 128 << 20
)

// NewReader decodes exactly one compressed stream (one gzip member, zstd
// frame, xz stream, bzip2 stream, lzma stream or legacy lz4 stream) from the
// current position of src. Once the returned reader reports io.EOF, src is
// positioned just after the stream, as the kernel's decompressors report
// their consumed input.
func NewReader(c Codec, src Source) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		z, err := kgzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		z.Multistream(false)
		return z, nil
	case Zstd:
		fr := &zstdFrame{src: src}
		d, err := zstd.NewReader(fr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &zstdReader{d: d, fr: fr}, nil
	case XZ:
		return newXZReader(src)
	case LZ4:
		return newLZ4Reader(src)
	case Bzip2:
		return newBzip2Reader(src), nil
	case LZMA:
		return newLZMAReader(src)
	case LZO:
		return nil, fmt.Errorf("lzo is %w (recompress the initrd with gzip, zstd or xz)", ErrUnsupported)
	case None:
		return io.NopCloser(src), nil
	}
	return nil, fmt.Errorf("unknown codec %q", c)
}

// WriterOptions tune NewWriter.
type WriterOptions struct {
	Level       int // 0: the codec's default for initrds
	Concurrency int // 0: GOMAXPROCS (zstd only)
}

// NewWriter returns an encoder of one stream the kernel accepts. Close ends
// the stream without closing w. Output depends only on the input and the
// options, not on timing or the number of threads.
func NewWriter(c Codec, w io.Writer, o WriterOptions) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopWriteCloser{w}, nil
	case Gzip:
		level := o.Level
		if level == 0 {
			level = 6
		}
		// No name and no time in the header, like gzip -n.
		z, err := kgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return z, nil
	case Zstd:
		threads := o.Concurrency
		if threads <= 0 {
			threads = runtime.GOMAXPROCS(0)
		}
		level := zstd.SpeedDefault
		if o.Level != 0 {
			level = zstd.EncoderLevelFromZstd(o.Level)
		}
		// One frame, no skippable frames, a window the kernel can allocate.
		e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithWindowSize(8<<20),
			zstd.WithEncoderConcurrency(threads), zstd.WithZeroFrames(false), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return e, nil
	case XZ:
		// The kernel verifies only CRC32 or no check: the default CRC64
		// does not boot. A 1 MiB dictionary is what dracut uses.
		cfg := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 1 << 20}
		xw, err := cfg.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return xw, nil
	case LZ4:
		return newLZ4Writer(w, o.Level), nil
	}
	return nil, fmt.Errorf("writing %s is %w (choose one of none, gzip, zstd, xz, lz4)", c, ErrUnsupported)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
