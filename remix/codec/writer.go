package codec

import (
	"fmt"
	"io"
	"runtime"
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
	// Window is the zstd window, a power of two from 1 KiB to 8 MiB; 0
	// means 8 MiB. Frames cut small need no larger one; the encoders'
	// history and the memory the kernel allocates to decode shrink with
	// it.
	Window int
}

// NewWriter returns an encoder that produces what the kernel boots:
//
//   - gzip: members without file name or time (as `gzip -n`), one unless
//     the caller cuts the data with Cut (the writer is a Cutter);
//   - zstd: frames with a window of 8 MiB or Window (the kernel allocates
//     the window),
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
	if c == None {
		return nopWriteCloser{w}, nil
	}
	f, ok := lookup(c)
	if !ok {
		return nil, fmt.Errorf("unknown codec %q", c)
	}
	if f.newWriter == nil {
		return nil, fmt.Errorf("writing %s is %w (choose one of %s)", c, ErrUnsupported, joinCodecs(Writable()))
	}
	return f.newWriter(w, o)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func threads(o WriterOptions) int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}
