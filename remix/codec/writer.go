package codec

import (
	"fmt"
	"io"
	"runtime"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// WriterOptions tune NewWriter.
type WriterOptions struct {
	// Level is the codec's compression level, 0 for its default here:
	//   gzip 1-9, default 6 (gzip's own default: `gzip -9`, which dracut
	//     uses, is several times slower for about 1% smaller initrds);
	//   zstd 1-22 as for the zstd CLI, mapped to klauspost/compress's four
	//     encoders, default comparable to `zstd -3`;
	//   lz4 1-12 as for the lz4 CLI: 1-2 fast, 3-12 high compression
	//     (dracut: `lz4 -l -9`), default fast;
	//   xz: ignored (ulikunitz/xz has no presets; dictionary 1 MiB).
	Level int
	// Concurrency bounds the goroutines of the zstd, gzip and xz
	// encoders; 0 means GOMAXPROCS. The output does not depend on it.
	Concurrency int
	// FrameSize is the uncompressed size from which a Cut ends the
	// current zstd frame or gzip member (see Cutter); 0 means
	// DefaultFrameSize.
	FrameSize int
}

// NewWriter returns an encoder that produces what the kernel boots:
//
//   - gzip: members without file name or time (as `gzip -n`), one unless
//     the caller cuts the data with Cut (the writer is a Cutter);
//   - zstd: frames with a window of 8 MiB (the kernel allocates the window),
//     no skippable frames, content checksum; one frame unless the caller
//     cuts the data with Cut (the writer is a Cutter); empty input still
//     gives a frame;
//   - xz: one stream with a CRC32 check (the kernel's unxz refuses CRC64,
//     the xz default) and one LZMA2 filter with a 1 MiB dictionary, as
//     dracut's `xz --check=crc32 --lzma2=dict=1MiB -T0`, cut into 3 MiB
//     blocks compressed in parallel;
//   - lz4: the legacy format (magic, then chunks of at most 8 MiB), which
//     is the only one the kernel reads; it has no end marker, so anything
//     appended after it must start with at least four zero bytes;
//   - none: the bytes as they are.
//
// Close finishes the stream and does not close w. The output depends only
// on the bytes written and the options (not on Write boundaries, timing
// or Concurrency). bzip2, lzma and lzo cannot be written: ErrUnsupported.
func NewWriter(c Codec, w io.Writer, o WriterOptions) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopWriteCloser{w}, nil
	case Gzip:
		level := o.Level
		if level == 0 {
			level = 6
		}
		if level < 1 || level > 9 {
			return nil, fmt.Errorf("gzip level %d out of range 1-9", o.Level)
		}
		if _, err := kgzip.NewWriterLevel(nil, level); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return newFramedWriter(w, o.FrameSize, threads(o), func() (frameEncoder, error) {
			zw, err := kgzip.NewWriterLevel(nil, level)
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			return &gzipMember{zw}, nil
		}), nil
	case Zstd:
		level := zstd.SpeedDefault
		if o.Level != 0 {
			if o.Level < 1 || o.Level > 22 {
				return nil, fmt.Errorf("zstd level %d out of range 1-22", o.Level)
			}
			level = zstd.EncoderLevelFromZstd(o.Level)
		}
		newEnc := func() (frameEncoder, error) {
			// One goroutine per encoder: the parallelism is across
			// frames, which share nothing, rather than within one.
			zw, err := zstd.NewWriter(nil,
				zstd.WithEncoderLevel(level),
				zstd.WithWindowSize(8<<20),
				zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(true),
				// An empty segment must still be a frame the kernel can
				// decode, not zero bytes that read as padding.
				zstd.WithZeroFrames(true))
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			return zw, nil
		}
		if _, err := newEnc(); err != nil {
			return nil, err
		}
		return newFramedWriter(w, o.FrameSize, threads(o), newEnc), nil
	case XZ:
		return newXZWriter(w, threads(o))
	case LZ4:
		lw, err := newLZ4Writer(w, o.Level)
		if err != nil {
			return nil, err
		}
		return lw, nil
	case Bzip2, LZMA, LZO:
		return nil, fmt.Errorf("writing %s is %w (choose one of none, gzip, zstd, xz, lz4)", c, ErrUnsupported)
	}
	return nil, fmt.Errorf("unknown codec %q", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func threads(o WriterOptions) int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// gzipMember writes one member per Reset, without name or time.
type gzipMember struct{ *kgzip.Writer }

func (g *gzipMember) Reset(w io.Writer) {
	g.Writer.Reset(w)
	// No name, and MTIME 0 ("no time"): klauspost writes the zero
	// time.Time as a garbage timestamp, the Unix epoch as 0. Reset
	// clears the header, so this is set for every member.
	g.ModTime = time.Unix(0, 0)
}
