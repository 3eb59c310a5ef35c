package lzmadec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// outStep is how far one Read decodes ahead when given a smaller buffer.
const outStep = 64 << 10

// Input is a streamed .lzma source: Peek shows bytes without consuming
// them, Discard consumes. *bufio.Reader is one, of at least 64 bytes: Peek
// must return more than 32 bytes unless the input ends (a symbol may read
// up to 21 bytes, and the decoder never consumes bytes past the stream).
type Input interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

const peekSize = 64 << 10

// Reader decodes one .lzma stream (13-byte header, range-coded data up to
// the end marker or the uncompressed size in the header; with a known size
// an end marker may follow, as liblzma and the kernel accept). It consumes
// from its Input exactly the stream's bytes.
type Reader struct {
	d      decoder
	in     Input
	size   int64 // -1: unknown, an end marker ends the stream
	total  int64
	rcInit bool
}

// NewReader reads the .lzma header and sets the decoder up; a dictionary
// over maxDict bytes is refused before anything is allocated.
func NewReader(in Input, maxDict int64) (*Reader, error) {
	h, err := in.Peek(13)
	if len(h) < 13 {
		return nil, fmt.Errorf("lzma header: %w", eofErr(err))
	}
	props, err := ParseProps(h[0])
	if err != nil {
		return nil, err
	}
	dict := int64(binary.LittleEndian.Uint32(h[1:5]))
	if dict > maxDict {
		return nil, fmt.Errorf("lzma dictionary of %d bytes exceeds the %d-byte bound", dict, maxDict)
	}
	size := int64(-1)
	if u := binary.LittleEndian.Uint64(h[5:13]); u != 1<<64-1 {
		if u >= 1<<62 {
			return nil, corrupt(fmt.Sprintf("uncompressed size %d in the header", u))
		}
		size = int64(u)
	}
	if _, err := in.Discard(13); err != nil {
		return nil, err
	}
	r := &Reader{in: in, size: size}
	n := dict
	if size >= 0 {
		n = min(n, size)
	}
	r.d.alloc(n)
	r.d.setProps(props)
	r.d.resetState()
	return r, nil
}

func eofErr(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) Read(p []byte) (int, error) { return r.d.read(p, r.step) }

// peek returns the input window. bufio's Peek answers a request above its
// buffer size with only what is buffered, so the request is bounded by the
// Input's Size when it has one, and a short answer is retried smaller.
func (r *Reader) peek() ([]byte, error) {
	n := peekSize
	if s, ok := r.in.(interface{ Size() int }); ok && s.Size() > 0 {
		n = min(n, s.Size())
	}
	w, err := r.in.Peek(n)
	if len(w) <= margin && errors.Is(err, bufio.ErrBufferFull) {
		w, err = r.in.Peek(2 * margin)
	}
	return w, err
}

func (r *Reader) step(want int) error {
	d := &r.d
	d.wrap()
	w, perr := r.peek()
	if !r.rcInit {
		if len(w) < 5 {
			return eofErr(perr)
		}
		if err := d.initRC(w); err != nil {
			return err
		}
		r.rcInit = true
		_, err := r.in.Discard(5)
		return err
	}
	if r.size >= 0 && r.total == r.size {
		return r.finishSized(w, perr)
	}
	outLimit := d.dpos + max(want, outStep)
	if r.size >= 0 {
		outLimit = int(min(int64(outLimit), int64(d.dpos)+r.size-r.total))
	}
	before := d.dpos
	var pos int
	var err error
	switch {
	case len(w) > margin:
		pos, err = d.run(w, 0, len(w)-margin, outLimit)
	case perr == nil || errors.Is(perr, bufio.ErrBufferFull):
		return errors.New("lzma source buffer under 64 bytes")
	default:
		pos, err = d.decodeBuf(w, 0, len(w), outLimit)
		if err == nil && pos > len(w) {
			err = eofErr(perr)
		}
	}
	r.total += int64(d.dpos - before)
	if err != nil {
		return err
	}
	if _, err := r.in.Discard(pos); err != nil {
		return err
	}
	if d.ended {
		if r.size >= 0 && r.total != r.size {
			return corrupt("end marker before the size in the header")
		}
		return r.finish()
	}
	return nil
}

// finishSized ends a stream at the size its header states: the range coder
// must be flushed there, or an end marker must follow.
func (r *Reader) finishSized(w []byte, perr error) error {
	d := &r.d
	if d.pending > 0 {
		return corrupt("match runs past the size in the header")
	}
	if d.rng >= 1<<24 && d.code == 0 {
		r.d.eof = true
		return nil
	}
	if d.rng < 1<<24 && len(w) > 0 && d.code<<8|uint32(w[0]) == 0 {
		return r.finish()
	}
	// An end marker follows: decode it into the slot after the data,
	// which must not be needed.
	if len(w) <= margin && (perr == nil || errors.Is(perr, bufio.ErrBufferFull)) {
		return errors.New("lzma source buffer under 64 bytes")
	}
	pos, err := d.decodeBuf(w, 0, len(w), d.dpos+1)
	if err == nil && pos > len(w) {
		err = eofErr(perr)
	}
	if err != nil {
		return err
	}
	if !d.ended {
		return corrupt("data after the uncompressed size in the header")
	}
	if _, err := r.in.Discard(pos); err != nil {
		return err
	}
	return r.finish()
}

// finish reads the range coder's last byte and checks it is flushed.
func (r *Reader) finish() error {
	d := &r.d
	w, perr := r.in.Peek(1)
	pos, ok := d.normalize(w, 0)
	if !ok {
		return eofErr(perr)
	}
	if d.code != 0 {
		return corrupt("range coder not flushed at the end of the stream")
	}
	if _, err := r.in.Discard(pos); err != nil {
		return err
	}
	r.d.eof = true
	return nil
}

// Reader2 decodes LZMA2 data (as in an xz block) up to its end marker.
// The input is either a byte slice holding the block's compressed data or
// a reader from which exactly the LZMA2 data is read.
type Reader2 struct {
	d       decoder
	dict    int64
	data    []byte    // whole input in memory, or nil
	src     io.Reader // streamed input
	off     int64     // input bytes consumed
	buf     []byte    // a streamed chunk's data
	chunk   []byte    // the current LZMA chunk's compressed data
	cpos    int
	left    int // uncompressed bytes of the current chunk still to produce
	raw     bool
	started bool // the dictionary was reset by the first chunk
	props   bool // properties are set
}

// NewReader2Bytes decodes the LZMA2 data in data with a dictionary of
// dict bytes; size, if not negative, is the uncompressed size the caller
// expects (it only bounds the dictionary allocated).
func NewReader2Bytes(data []byte, dict, size int64) *Reader2 {
	r := &Reader2{data: data}
	r.setDict(dict, size)
	return r
}

// NewReader2 decodes LZMA2 data read from src, reading exactly its bytes.
func NewReader2(src io.Reader, dict, size int64) *Reader2 {
	r := &Reader2{src: src}
	r.setDict(dict, size)
	return r
}

// ResetBytes makes r decode the LZMA2 data in data as NewReader2Bytes
// would, keeping the dictionary and probabilities it allocated: decoding
// block after block then allocates nothing once the largest is set up.
func (r *Reader2) ResetBytes(data []byte, dict, size int64) {
	r.reset()
	r.data = data
	r.setDict(dict, size)
}

// Reset makes r decode LZMA2 data read from src as NewReader2 would,
// keeping what it allocated.
func (r *Reader2) Reset(src io.Reader, dict, size int64) {
	r.reset()
	r.src = src
	r.setDict(dict, size)
}

// reset clears every field but the buffers: an LZMA2 stream starts with a
// dictionary reset and sets properties and state before its first LZMA
// chunk, so nothing left in them is read again.
func (r *Reader2) reset() {
	dict, lit, buf := r.d.dict, r.d.lit, r.buf
	*r = Reader2{buf: buf}
	r.d.dict, r.d.lit = dict, lit
}

func (r *Reader2) setDict(dict, size int64) {
	r.dict = dict
	if size >= 0 {
		r.dict = min(dict, size)
	}
}

// InputOffset returns the input bytes consumed.
func (r *Reader2) InputOffset() int64 { return r.off }

func (r *Reader2) take(n int) ([]byte, error) {
	if r.data != nil || r.src == nil {
		if int64(len(r.data))-r.off < int64(n) {
			return nil, io.ErrUnexpectedEOF
		}
		b := r.data[r.off : r.off+int64(n)]
		r.off += int64(n)
		return b, nil
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, max(n, 1<<16+16))
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.src, b); err != nil {
		return nil, eofErr(err)
	}
	r.off += int64(n)
	return b, nil
}

func (r *Reader2) Read(p []byte) (int, error) { return r.d.read(p, r.step) }

func (r *Reader2) step(want int) error {
	d := &r.d
	if r.left == 0 {
		return r.nextChunk()
	}
	d.wrap()
	k := min(r.left, max(want, outStep), len(d.dict)-d.dpos)
	if r.raw {
		b, err := r.take(k)
		if err != nil {
			return err
		}
		copy(d.dict[d.dpos:], b)
		d.dpos += k
		r.left -= k
		return nil
	}
	before := d.dpos
	pos, err := d.decodeBuf(r.chunk, r.cpos, len(r.chunk), d.dpos+k)
	r.cpos = pos
	r.left -= d.dpos - before
	switch {
	case err != nil:
		return err
	case d.ended:
		return corrupt("end marker in an LZMA2 chunk")
	case pos > len(r.chunk):
		return corrupt("LZMA2 chunk data ends within a symbol")
	case r.left > 0:
		return nil
	case d.pending > 0:
		return corrupt("match crosses an LZMA2 chunk boundary")
	}
	pos, ok := d.normalize(r.chunk, pos)
	if !ok || pos != len(r.chunk) || d.code != 0 {
		return corrupt("LZMA2 chunk size does not match its data")
	}
	return nil
}

func (r *Reader2) nextChunk() error {
	d := &r.d
	h, err := r.take(1)
	if err != nil {
		return err
	}
	ctl := h[0]
	if ctl == 0 {
		r.d.eof = true
		return nil
	}
	if ctl >= 0xe0 || ctl == 1 {
		if !r.started {
			d.alloc(r.dict)
			r.started = true
		}
		d.resetDict()
		r.props = false
	} else if !r.started {
		return corrupt("the first LZMA2 chunk does not reset the dictionary")
	}
	if ctl < 0x80 {
		if ctl > 2 {
			return corrupt(fmt.Sprintf("LZMA2 control byte %#02x", ctl))
		}
		s, err := r.take(2)
		if err != nil {
			return err
		}
		r.left = int(binary.BigEndian.Uint16(s)) + 1
		r.raw = true
		return nil
	}
	n := 4
	if ctl >= 0xc0 {
		n = 5
	}
	s, err := r.take(n)
	if err != nil {
		return err
	}
	left := int(ctl&0x1f)<<16 + int(binary.BigEndian.Uint16(s)) + 1
	csize := int(binary.BigEndian.Uint16(s[2:])) + 1
	if ctl >= 0xc0 {
		p, err := ParseProps(s[4])
		if err != nil {
			return err
		}
		if p.LC+p.LP > 4 {
			return corrupt("LZMA2 properties with lc + lp > 4")
		}
		d.setProps(p)
		r.props = true
	} else if !r.props {
		return corrupt("LZMA2 chunk without properties after a dictionary reset")
	}
	if ctl >= 0xa0 {
		d.resetState()
	}
	if csize < 5 {
		return corrupt("LZMA2 chunk shorter than the range coder's start")
	}
	c, err := r.take(csize)
	if err != nil {
		return err
	}
	if err := d.initRC(c); err != nil {
		return err
	}
	r.chunk, r.cpos, r.left, r.raw = c, 5, left, false
	return nil
}
