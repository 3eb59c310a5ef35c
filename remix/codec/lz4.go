package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// The legacy lz4 format the kernel reads: a magic number, then chunks of a
// little-endian compressed size and an lz4 block decoding to at most 8 MiB.
// It has no end marker: the kernel stops at the end of input or at a zero
// chunk size (zero padding), and a repeated magic continues the stream.
const (
	lz4Magic     = 0x184c2102
	lz4ChunkSize = 8 << 20
)

// lz4MaxCompressed is LZ4_compressBound(8 MiB), the largest chunk the
// kernel accepts.
var lz4MaxCompressed = lz4.CompressBlockBound(lz4ChunkSize)

type lz4Reader struct {
	src  Source
	buf  []byte
	out  []byte
	rest []byte
	n    int64
	eof  bool
}

func newLZ4Reader(src Source) (io.ReadCloser, error) {
	var m [4]byte
	if _, err := io.ReadFull(src, m[:]); err != nil || binary.LittleEndian.Uint32(m[:]) != lz4Magic {
		return nil, errors.New("lz4: not a legacy lz4 stream")
	}
	return &lz4Reader{src: src, n: 4}, nil
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
	h, err := r.src.Peek(4)
	if len(h) < 4 {
		if len(h) == 0 && err == io.EOF {
			r.eof = true
			return nil
		}
		return fmt.Errorf("lz4: truncated chunk header at byte %d", r.n)
	}
	size := binary.LittleEndian.Uint32(h)
	switch {
	case size == 0:
		r.eof = true // zero padding follows; the scanner skips it
		return nil
	case size == lz4Magic:
		r.src.Discard(4)
		r.n += 4
		return nil
	case int(size) > lz4MaxCompressed:
		return fmt.Errorf("lz4: chunk of %d bytes at byte %d exceeds the legacy format's bound", size, r.n)
	}
	if _, err := io.CopyN(io.Discard, r.src, 4); err != nil {
		return err
	}
	if cap(r.buf) < int(size) {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if _, err := io.ReadFull(r.src, r.buf); err != nil {
		return fmt.Errorf("lz4: truncated chunk at byte %d: %w", r.n+4, io.ErrUnexpectedEOF)
	}
	if r.out == nil {
		r.out = make([]byte, lz4ChunkSize)
	}
	n, err := lz4.UncompressBlock(r.buf, r.out)
	if err != nil {
		return fmt.Errorf("lz4: corrupt chunk at byte %d: %w", r.n, err)
	}
	r.n += 4 + int64(size)
	r.rest = r.out[:n]
	return nil
}

func (r *lz4Reader) Close() error { return nil }

// lz4Writer frames 8 MiB chunks in the legacy format around the block API.
type lz4Writer struct {
	w      io.Writer
	level  int
	buf    []byte
	dst    []byte
	header bool
	hc     lz4.CompressorHC
	c      lz4.Compressor
}

func newLZ4Writer(w io.Writer, level int) *lz4Writer {
	return &lz4Writer{w: w, level: level, buf: make([]byte, 0, lz4ChunkSize), dst: make([]byte, lz4MaxCompressed)}
}

func (l *lz4Writer) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := copy(l.buf[len(l.buf):cap(l.buf)], p)
		l.buf = l.buf[:len(l.buf)+n]
		p = p[n:]
		if len(l.buf) == cap(l.buf) {
			if err := l.flush(); err != nil {
				return 0, err
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
			return err
		}
		l.header = true
	}
	if len(l.buf) == 0 {
		return nil
	}
	var n int
	var err error
	if l.level > 0 {
		l.hc.Level = lz4.CompressionLevel(1 << (8 + l.level))
		n, err = l.hc.CompressBlock(l.buf, l.dst)
	} else {
		n, err = l.c.CompressBlock(l.buf, l.dst)
	}
	if err != nil {
		return fmt.Errorf("lz4: %w", err)
	}
	if n == 0 {
		// The legacy format has no stored chunks: write the block as
		// literals only, which every lz4 decoder accepts.
		n = literalBlock(l.buf, l.dst)
	}
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], uint32(n))
	if _, err := l.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := l.w.Write(l.dst[:n]); err != nil {
		return err
	}
	l.buf = l.buf[:0]
	return nil
}

// literalBlock encodes src as one lz4 sequence with no match.
func literalBlock(src, dst []byte) int {
	n := len(src)
	i := 0
	if n >= 15 {
		dst[i] = 0xf0
		i++
		rest := n - 15
		for rest >= 255 {
			dst[i] = 255
			i++
			rest -= 255
		}
		dst[i] = byte(rest)
		i++
	} else {
		dst[i] = byte(n << 4)
		i++
	}
	i += copy(dst[i:], src)
	return i
}

func (l *lz4Writer) Close() error { return l.flush() }
