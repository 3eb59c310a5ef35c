package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// zstdWalker delimits one zstd frame (RFC 8878 section 3.1.1): the frame
// header, then blocks whose 3-byte headers carry their sizes, then an
// optional 4-byte checksum. The decoder reads the frame through it, so it
// cannot run into the next segment, and the frame ends where the kernel's
// unzstd stops (it decodes a single frame and leaves the rest to
// init/initramfs.c).
type zstdWalker struct {
	maxWindow int64
	state     int
	checksum  bool
	sum       uint32 // the frame's checksum, once read
}

const (
	zstdHeader = iota
	zstdBlocks
	zstdChecksum
	zstdEnd
)

// maxZstdBlock is the format's Block_Maximum_Size ceiling.
const maxZstdBlock = 128 << 10

// zstdWindowSize decodes a frame header's Window_Descriptor.
func zstdWindowSize(wd byte) uint64 {
	base := uint64(1) << (10 + wd>>3)
	return base + base/8*uint64(wd&7)
}

// zstdBlockHeader decodes a 3-byte block header: how many bytes of the
// block follow it (1 for an RLE block) and whether it is the frame's
// last. Reserved types and sizes over the format's ceiling are refused.
func zstdBlockHeader(h []byte) (size int64, last bool, err error) {
	bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	size, last = int64(bh>>3), bh&1 != 0
	if size > maxZstdBlock {
		return 0, false, fmt.Errorf("block of %d bytes exceeds the format's 128 KiB", size)
	}
	switch (bh >> 1) & 3 {
	case 1: // RLE: one byte, repeated size times
		size = 1
	case 3:
		return 0, false, errors.New("reserved block type")
	}
	return size, last, nil
}

func (z *zstdWalker) step(f *framer) (int64, error) {
	switch z.state {
	case zstdHeader:
		h, err := f.take(5)
		if err != nil {
			return 0, fmt.Errorf("frame header: %w", err)
		}
		if binary.LittleEndian.Uint32(h) != 0xfd2fb528 {
			return 0, errors.New("not a zstd frame (bad magic)")
		}
		fhd := h[4]
		if fhd&0x08 != 0 {
			return 0, errors.New("reserved bit set in the frame header descriptor")
		}
		single := fhd&0x20 != 0
		dictLen := [4]int{0, 1, 2, 4}[fhd&3]
		fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
		if fhd>>6 == 0 && single {
			fcsLen = 1
		}
		wdLen := 1
		if single {
			wdLen = 0
		}
		rest, err := f.take(wdLen + dictLen + fcsLen)
		if err != nil {
			return 0, fmt.Errorf("frame header: %w", err)
		}
		// The decoder checks the window too, but checking here names
		// the bound and stops before any allocation.
		var window uint64
		if single {
			var b [8]byte
			copy(b[:], rest[dictLen:])
			window = binary.LittleEndian.Uint64(b[:])
			if fcsLen == 2 {
				window += 256
			}
		} else {
			window = zstdWindowSize(rest[0])
		}
		if window > uint64(z.maxWindow) {
			return 0, fmt.Errorf("frame window of %d bytes exceeds the %d-byte bound", window, z.maxWindow)
		}
		z.checksum = fhd&0x04 != 0
		z.state = zstdBlocks
		return 0, nil
	case zstdBlocks:
		h, err := f.take(3)
		if err != nil {
			return 0, fmt.Errorf("block header: %w", err)
		}
		size, last, err := zstdBlockHeader(h)
		if err != nil {
			return 0, err
		}
		if last {
			z.state = zstdEnd
			if z.checksum {
				z.state = zstdChecksum
			}
		}
		return size, nil
	case zstdChecksum:
		z.state = zstdEnd
		b, err := f.take(4)
		if err != nil {
			return 0, fmt.Errorf("frame checksum: %w", err)
		}
		z.sum = binary.LittleEndian.Uint32(b)
		return 0, io.EOF
	}
	return 0, io.EOF
}

// zstdCheck verifies a frame's checksum (the low 32 bits of the XXH64 of
// its content) on the goroutine that reads the decoded bytes, not on the
// decoder's: decoding one frame is sequential and sets the pace of every
// read, while the reader has time to spare. The decoder skips the check
// (zstd.IgnoreChecksum).
type zstdCheck struct {
	walker *zstdWalker
	cur    *cursor
	h      *xxhash.Digest
}

// Write hashes decoded bytes, unless the frame has no checksum (the walker
// read its header before the decoder produced any byte).
func (c *zstdCheck) Write(p []byte) (int, error) {
	if !c.walker.checksum {
		return len(p), nil
	}
	return c.h.Write(p)
}

// done checks the sum once the stream has ended (the walker has read the
// checksum then).
func (c *zstdCheck) done() error {
	if !c.walker.checksum || uint32(c.h.Sum64()) == c.walker.sum {
		return nil
	}
	return &StreamError{Codec: Zstd, Offset: c.cur.n,
		Err: fmt.Errorf("frame checksum %08x does not match the content's %08x: %w", c.walker.sum, uint32(c.h.Sum64()), zstd.ErrCRCMismatch)}
}

// zstd: magic 28 b5 2f fd. Frames are written with a window of at most
// 8 MiB, which the kernel allocates.
func zstdFormat() format {
	return format{
		codec:     Zstd,
		aliases:   []string{"zst"},
		magics:    []string{"\x28\xb5\x2f\xfd"},
		open:      func(s *stream, lim limits, cache *Decoders) error { return s.openZstd(lim, cache) },
		newWriter: newZstdWriter,
	}
}

// newZstdWriter writes frames cut by Cut, with a window of 8 MiB, no
// skippable frames and a content checksum; it is a Splicer.
func newZstdWriter(w io.Writer, o WriterOptions) (io.WriteCloser, error) {
	level, window, err := zstdParams(o)
	if err != nil {
		return nil, err
	}
	newEnc := func() (frameEncoder, error) { return newZstdEncoder(level, window, true) }
	if _, err := newEnc(); err != nil {
		return nil, err
	}
	f := newFramedWriter(w, o.FrameSize, threads(o), newEnc)
	f.zstdLevel, f.zstdWindow = level, window
	return f, nil
}

// zstdParams checks o's level and window for zstd.
func zstdParams(o WriterOptions) (zstd.EncoderLevel, int, error) {
	level := zstd.SpeedDefault
	if o.Level != 0 {
		if o.Level < 1 || o.Level > 22 {
			return 0, 0, fmt.Errorf("zstd level %d out of range 1-22", o.Level)
		}
		level = zstd.EncoderLevelFromZstd(o.Level)
	}
	window := 8 << 20
	if o.Window != 0 {
		if o.Window < 1<<10 || o.Window > window || o.Window&(o.Window-1) != 0 {
			return 0, 0, fmt.Errorf("zstd window %d is not a power of two from 1 KiB to 8 MiB", o.Window)
		}
		window = o.Window
	}
	return level, window, nil
}

// newZstdEncoder returns one encoder of frames; crc adds the content
// checksum (the frames written), its absence makes bodies for splicing.
func newZstdEncoder(level zstd.EncoderLevel, window int, crc bool) (*zstd.Encoder, error) {
	// One goroutine per encoder: the parallelism is across frames,
	// which share nothing, rather than within one.
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithWindowSize(window),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(crc),
		// History of the window, not twice it: the output is the same,
		// the memory half.
		zstd.WithLowerEncoderMem(true),
		// An empty segment must still be a frame the kernel can decode,
		// not zero bytes that read as padding.
		zstd.WithZeroFrames(true)}
	if !crc {
		// A body for splicing (SpliceEncoder): never a single segment,
		// whose window would be the body's size.
		opts = append(opts, zstd.WithSingleSegment(false))
	}
	zw, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return zw, nil
}

func (s *stream) openZstd(lim limits, cache *Decoders) error {
	walker := &zstdWalker{maxWindow: lim.window}
	s.fr = newFramer(s.cur, walker)
	s.check = &zstdCheck{walker: walker, cur: s.cur, h: xxhash.New()}
	if cache != nil && cache.zstd != nil {
		d := cache.zstd
		cache.zstd = nil
		if err := d.Reset(s.fr); err != nil {
			d.Close()
			return err
		}
		s.dec, s.release = d, func() { cache.keepZstd(d) }
		return nil
	}
	// Concurrency 1: one synchronous decoder, which NewReader's readahead
	// runs on a goroutine of its own. klauspost's concurrency 2 splits a
	// frame between goroutines that wait on each other: measured 40%
	// slower on the lab's images (0.26 s against 0.18 s for 139 MiB). The
	// window bound limits what the decoder allocates. Checksums are
	// verified (the kernel verifies them too), by zstdCheck.
	d, err := zstd.NewReader(s.fr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false),
		zstd.WithDecoderMaxWindow(uint64(lim.window)), zstd.IgnoreChecksum(true))
	if err != nil {
		return err
	}
	s.dec, s.release = d, d.Close
	if cache != nil {
		s.release = func() { cache.keepZstd(d) }
	}
	return nil
}

// keepZstd takes a decoder back for the next stream. Reset(nil) drops its
// reference to the finished stream's source.
func (d *Decoders) keepZstd(z *zstd.Decoder) {
	if d.zstd != nil || z.Reset(nil) != nil {
		z.Close()
		return
	}
	d.zstd = z
}
