package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/initrd-remix/initrd-remix/remix/internal/hugemem"
	"github.com/pierrec/lz4/v4"
)

// The legacy lz4 format, the only one the kernel's unlz4 reads: the magic,
// then chunks of a little-endian 32-bit compressed size and an lz4 block
// that decodes to at most 8 MiB. It has no end marker.
const (
	lz4Magic     = 0x184c2102
	lz4ChunkSize = 8 << 20
	// lz4MaxCompressed is LZ4_compressBound(8 MiB), the largest chunk the
	// kernel's unlz4 accepts.
	lz4MaxCompressed = lz4ChunkSize + lz4ChunkSize/255 + 16
)

// lz4: the legacy magic 02 21 4c 18. It has no end marker: anything after
// a stream must start with a zero word.
func lz4Format() format {
	return format{
		codec:  LZ4,
		magics: []string{"\x02\x21\x4c\x18"},
		open: func(s *stream, _ limits, _ *Decoders) (err error) {
			s.dec, err = newLZ4Reader(s.cur)
			return err
		},
		newWriter: func(w io.Writer, o WriterOptions) (io.WriteCloser, error) {
			lw, err := newLZ4Writer(w, o.Level)
			if err != nil {
				return nil, err
			}
			return lw, nil
		},
		trailingZeros: 4,
	}
}

// lz4Reader follows lib/decompress_unlz4.c as init/initramfs.c calls it
// (whole input in memory, no fill function): after the magic, it reads a
// 32-bit word; a repeated magic is skipped and the stream goes on; a
// zero word ends the stream without being consumed (it is the padding
// that must follow an lz4 segment), and so does a tail shorter than four
// bytes; anything else is the size of a chunk, which must be there in
// full and decode to at most 8 MiB.
type lz4Reader struct {
	cur  *cursor
	in   []byte
	out  []byte
	rest []byte
	eof  bool
}

func newLZ4Reader(cur *cursor) (io.Reader, error) {
	var m [4]byte
	if err := cur.readFull(m[:]); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(m[:]) != lz4Magic {
		return nil, errors.New("not a legacy lz4 stream (bad magic)")
	}
	return &lz4Reader{cur: cur}, nil
}

func (r *lz4Reader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if err := r.chunk(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *lz4Reader) chunk() error {
	h, err := r.cur.Peek(4)
	if len(h) < 4 {
		if err == nil || err == io.EOF {
			r.eof = true // end of input, or a tail for the caller to judge
			return nil
		}
		return err
	}
	size := binary.LittleEndian.Uint32(h)
	switch {
	case size == 0:
		r.eof = true
		return nil
	case size == lz4Magic:
		return r.cur.readFull(make([]byte, 4))
	case size > lz4MaxCompressed:
		return fmt.Errorf("chunk of %d bytes exceeds the legacy format's bound of %d", size, lz4MaxCompressed)
	}
	if err := r.cur.readFull(make([]byte, 4)); err != nil {
		return err
	}
	if cap(r.in) < int(size) {
		// Both buffers take huge pages: fresh 4 KiB pages fault on first
		// touch, which cost more than decoding the chunk.
		r.in = hugemem.Alloc(lz4MaxCompressed)
	}
	r.in = r.in[:size]
	if err := r.cur.readFull(r.in); err != nil {
		return fmt.Errorf("chunk of %d bytes: %w", size, err)
	}
	if r.out == nil {
		r.out = hugemem.Alloc(lz4ChunkSize)
	}
	n, err := lz4.UncompressBlock(r.in, r.out)
	if err != nil {
		return fmt.Errorf("corrupt chunk (or one decoding to more than 8 MiB): %w", err)
	}
	r.rest = r.out[:n]
	return nil
}

// lz4Writer frames the legacy format around pierrec/lz4's block API: 8 MiB
// chunks (the last one shorter), each compressed on its own, as `lz4 -l`
// writes them. Chunking depends only on the bytes written, not on how
// they were split into Write calls, so the output is deterministic.
type lz4Writer struct {
	w      io.Writer
	level  int
	buf    []byte
	dst    []byte
	header bool
	closed bool
	err    error
	fast   lz4.Compressor
	hc     lz4.CompressorHC
}

// newLZ4Writer: level 0 (the default) and 1–2 use the fast compressor
// (the lz4 CLI's -1); 3–12 use the high-compression one, like `lz4 -l -9`
// which dracut runs, with pierrec/lz4's search depth for the level (its
// deepest is level 9).
func newLZ4Writer(w io.Writer, level int) (*lz4Writer, error) {
	if level < 0 || level > 12 {
		return nil, fmt.Errorf("lz4 level %d out of range 1-12", level)
	}
	l := &lz4Writer{w: w, level: level}
	if level >= 3 {
		l.hc.Level = lz4.CompressionLevel(1 << (8 + min(level, 9)))
	}
	return l, nil
}

func (l *lz4Writer) Write(p []byte) (int, error) {
	if l.closed {
		return 0, errors.New("lz4: write after close")
	}
	if l.err != nil {
		return 0, l.err
	}
	total := len(p)
	for len(p) > 0 {
		if l.buf == nil {
			l.buf = make([]byte, 0, lz4ChunkSize)
		}
		n := copy(l.buf[len(l.buf):cap(l.buf)], p)
		l.buf = l.buf[:len(l.buf)+n]
		p = p[n:]
		if len(l.buf) == cap(l.buf) {
			if err := l.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (l *lz4Writer) flush() error {
	if !l.header {
		var m [4]byte
		binary.LittleEndian.PutUint32(m[:], lz4Magic)
		if _, err := l.w.Write(m[:]); err != nil {
			l.err = err
			return err
		}
		l.header = true
	}
	if len(l.buf) == 0 {
		return nil
	}
	if l.dst == nil {
		l.dst = make([]byte, 4+lz4MaxCompressed)
	}
	var n int
	var err error
	if l.level >= 3 {
		n, err = l.hc.CompressBlock(l.buf, l.dst[4:])
	} else {
		n, err = l.fast.CompressBlock(l.buf, l.dst[4:])
	}
	if err != nil {
		l.err = fmt.Errorf("lz4: %w", err)
		return l.err
	}
	if n == 0 {
		// Incompressible. The legacy format has no stored chunks, so
		// write one sequence of literals, which every decoder accepts.
		n = literalBlock(l.buf, l.dst[4:])
	}
	binary.LittleEndian.PutUint32(l.dst, uint32(n))
	if _, err := l.w.Write(l.dst[:4+n]); err != nil {
		l.err = err
		return err
	}
	l.buf = l.buf[:0]
	return nil
}

// literalBlock encodes src as a single lz4 sequence without a match.
func literalBlock(src, dst []byte) int {
	n, i := len(src), 0
	if n < 15 {
		dst[0] = byte(n << 4)
		i = 1
	} else {
		dst[0] = 0xf0
		i = 1
		for rest := n - 15; ; rest -= 255 {
			if rest < 255 {
				dst[i] = byte(rest)
				i++
				break
			}
			dst[i] = 255
			i++
		}
	}
	return i + copy(dst[i:], src)
}

// Close writes the last chunk (and the magic, for an empty stream). The
// stream has no end marker: whoever appends after it must put at least
// four zero bytes first.
func (l *lz4Writer) Close() error {
	if l.closed {
		return l.err
	}
	l.closed = true
	if l.err != nil {
		return l.err
	}
	return l.flush()
}
