package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// Splicing: a large body compressed ahead of time, on its own, and put
// into a zstd frame of its entry later, when the entry's header is known.
//
// A zstd frame is a header and a sequence of blocks; a block is raw,
// RLE or compressed. What a compressed block means depends on the
// decoder's state before it: the data decoded so far in the frame (which
// matches copy from), the repeat offsets and the entropy tables of the
// blocks before. Raw blocks change none of these but the data. So the
// blocks of a body compressed as a frame of its own decode to the same
// bytes after raw blocks holding its entry's header: matches only reach
// back into the body (the encoder never saw the header), the repeat
// offsets are still the frame's initial ones, and no entropy table was
// defined before. A spliced frame is therefore
//
//	frame header (window, content checksum) | raw blocks: the entry's
//	header | the body's blocks | raw blocks: the padding after the body
//	(the last block) | checksum of all of it
//
// and it ends at an entry boundary, as the kernel wants.

// Spliced is a body compressed by a SpliceEncoder, ready for a Splicer of
// the same level and window.
type Spliced struct {
	blocks []byte // the body's blocks, the last block flag cleared
	// at, when set, holds the blocks instead, n bytes at off (a
	// SpliceSpool).
	at     io.ReaderAt
	off, n int64
	size   int64 // the body's length
	level  zstd.EncoderLevel
	window int
}

// Size is the length of the body the blocks decode to.
func (s *Spliced) Size() int64 { return s.size }

// CompressedSize is the length of the body's blocks.
func (s *Spliced) CompressedSize() int64 {
	if s.at != nil {
		return s.n
	}
	return int64(len(s.blocks))
}

// SpliceSpool keeps the blocks of bodies compressed ahead in a file
// rather than in memory, until they are written: they wait there while
// the input is still decoded. It is safe for concurrent use.
type SpliceSpool struct {
	mu  sync.Mutex
	f   *os.File
	end int64
	err error
}

// NewSpliceSpool makes the spool in dir, a file removed at once (it is
// gone when the process ends, whatever happens) and private.
func NewSpliceSpool(dir string) (*SpliceSpool, error) {
	f, err := os.CreateTemp(dir, "initrd-remix-*.splice")
	if err != nil {
		return nil, fmt.Errorf("spool of compressed bodies: %w", err)
	}
	os.Remove(f.Name())
	return &SpliceSpool{f: f}, nil
}

// keep moves s's blocks into the spool.
func (sp *SpliceSpool) keep(s *Spliced) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err != nil {
		return sp.err
	}
	off := sp.end
	if _, err := sp.f.WriteAt(s.blocks, off); err != nil {
		sp.err = fmt.Errorf("spool of compressed bodies: %w", err)
		return sp.err
	}
	sp.end += int64(len(s.blocks))
	s.at, s.off, s.n, s.blocks = sp.f, off, int64(len(s.blocks)), nil
	return nil
}

// Close removes the spool; the Spliced it holds can no longer be written.
func (sp *SpliceSpool) Close() error { return sp.f.Close() }

// Splicer is implemented by the zstd writer NewWriter returns (and
// refused by its gzip one, whose members cannot be spliced). Splice ends
// the current frame, whatever its size, and starts one for an entry whose
// body s holds; the bytes written next are the entry's header (and the
// padding owed before it). SpliceBody says that the s.Size() bytes written
// next are the body: they are not compressed again but counted and
// checksummed (they must be the bytes s was made from; a reader of the
// output that compares them finds any difference). The bytes after them
// (the body's padding, a trailer) end the frame at the next Cut, Splice or
// Close. The output depends only on the bytes, the calls and s, never on
// timing or Concurrency.
type Splicer interface {
	Cutter
	Splice(s *Spliced) error
	SpliceBody() error
}

// SpliceEncoder compresses bodies for a Splicer made with the same
// options (zstd only). It is used by one goroutine.
type SpliceEncoder struct {
	enc    *zstd.Encoder
	level  zstd.EncoderLevel
	window int
	out    bytes.Buffer
}

// NewSpliceEncoder returns an encoder for a zstd writer of options o.
func NewSpliceEncoder(o WriterOptions) (*SpliceEncoder, error) {
	level, window, err := zstdParams(o)
	if err != nil {
		return nil, err
	}
	enc, err := newZstdEncoder(level, window, false)
	if err != nil {
		return nil, err
	}
	return &SpliceEncoder{enc: enc, level: level, window: window}, nil
}

// Encode compresses the size bytes r holds. With spool set, the blocks
// are kept there.
func (e *SpliceEncoder) Encode(r io.Reader, size int64, spool *SpliceSpool) (*Spliced, error) {
	e.out.Reset()
	e.enc.Reset(&e.out)
	n, err := io.Copy(e.enc, r)
	if cerr := e.enc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("body is %d bytes, expected %d", n, size)
	}
	blocks, window, err := zstdFrameBlocks(e.out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("splicing the encoder's frame: %w", err)
	}
	if window > e.window {
		return nil, fmt.Errorf("splicing the encoder's frame: window %d, want at most %d", window, e.window)
	}
	s := &Spliced{blocks: blocks, size: size, level: e.level, window: e.window}
	if spool != nil {
		if err := spool.keep(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the encoder.
func (e *SpliceEncoder) Close() error { return e.enc.Close() }

// zstdFrameBlocks returns the blocks of one zstd frame without a
// dictionary, checksum or single segment (whose window would be its
// content size), as the encoder writes them, in a new slice with the last
// block's flag cleared, and the frame's window. It checks the frame's
// structure: the blocks must cover it exactly.
func zstdFrameBlocks(frame []byte) (blocks []byte, window int, err error) {
	if len(frame) < 6 || string(frame[:4]) != "\x28\xb5\x2f\xfd" {
		return nil, 0, errors.New("not a zstd frame")
	}
	fhd := frame[4]
	if fhd&0x08 != 0 {
		return nil, 0, errors.New("reserved bit set in the frame header")
	}
	if fhd&0x27 != 0 {
		return nil, 0, fmt.Errorf("frame header %#02x: single segment, dictionary or checksum", fhd)
	}
	wd := frame[5]
	if wd>>3 > 31-10 {
		return nil, 0, fmt.Errorf("window descriptor %#02x", wd)
	}
	window = int(zstdWindowSize(wd))
	start := 6 + [4]int{0, 2, 4, 8}[fhd>>6] // magic, descriptors, content size
	if len(frame) < start {
		return nil, 0, errors.New("frame header truncated")
	}
	b := frame[start:]
	for off := 0; ; {
		if len(b)-off < 3 {
			return nil, 0, errors.New("block header truncated")
		}
		size, last, err := zstdBlockHeader(b[off : off+3])
		if err != nil {
			return nil, 0, err
		}
		end := off + 3 + int(size)
		if end > len(b) {
			return nil, 0, errors.New("block truncated")
		}
		if last {
			if end != len(b) {
				return nil, 0, fmt.Errorf("%d bytes after the last block", len(b)-end)
			}
			out := bytes.Clone(b)
			out[off] &^= 1
			return out, window, nil
		}
		off = end
	}
}

// spliceMaxRaw is the largest raw block written around a spliced body:
// a block holds at most 128 KiB and no more than the window.
func spliceMaxRaw(window int) int { return min(128<<10, window) }

// splice is a frame being put together by a framedWriter.
type splice struct {
	s      *Spliced
	head   []byte // the entry's header, before the body
	inBody bool
	body   int64 // body bytes seen
	tail   []byte
	h      *xxhash.Digest
}

// write takes the bytes written to the writer while the frame is open.
func (sp *splice) write(p []byte) {
	sp.h.Write(p)
	for len(p) > 0 {
		switch {
		case !sp.inBody:
			sp.head = append(sp.head, p...)
			return
		case sp.body < sp.s.size:
			n := min(int64(len(p)), sp.s.size-sp.body)
			sp.body += n
			p = p[n:]
		default:
			sp.tail = append(sp.tail, p...)
			return
		}
	}
}

// framePart is a piece of a frame to write: bytes, or n bytes of at from
// off.
type framePart struct {
	b      []byte
	at     io.ReaderAt
	off, n int64
}

// frame returns the pieces of the finished frame, in order.
func (sp *splice) frame() ([]framePart, error) {
	if !sp.inBody || sp.body != sp.s.size {
		return nil, fmt.Errorf("spliced body: %d bytes written, the blocks hold %d", sp.body, sp.s.size)
	}
	hdr := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0} // checksum, no content size
	hdr[5] = byte(windowLog(sp.s.window)-10) << 3
	parts := []framePart{{b: hdr}}
	maxRaw := spliceMaxRaw(sp.s.window)
	raw := func(b []byte, last bool) {
		for first := true; first || len(b) > 0; first = false {
			n := min(len(b), maxRaw)
			bh := uint32(n) << 3 // raw
			if last && n == len(b) {
				bh |= 1
			}
			parts = append(parts, framePart{b: []byte{byte(bh), byte(bh >> 8), byte(bh >> 16)}}, framePart{b: b[:n]})
			b = b[n:]
		}
	}
	if len(sp.head) > 0 {
		raw(sp.head, false)
	}
	if sp.s.at != nil {
		parts = append(parts, framePart{at: sp.s.at, off: sp.s.off, n: sp.s.n})
	} else {
		parts = append(parts, framePart{b: sp.s.blocks})
	}
	raw(sp.tail, true) // an empty raw block, when there is no tail, ends the frame
	sum := make([]byte, 4)
	binary.LittleEndian.PutUint32(sum, uint32(sp.h.Sum64()))
	return append(parts, framePart{b: sum}), nil
}

// windowLog is log2 of a window NewWriter accepted (a power of two).
func windowLog(w int) int { return bits.TrailingZeros(uint(w)) }
