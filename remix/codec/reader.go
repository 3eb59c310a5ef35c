package codec

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Source is what the segment scanner hands a decoder: the image, buffered.
// Peek lets a decoder look at bytes without consuming them, which the
// legacy lz4 format needs because it has no end marker: its stream ends
// before a zero word that belongs to the padding after it. *bufio.Reader
// satisfies Source. The gzip and lzma decoders decode from a peeked window
// (up to 64 KiB, whatever the buffer holds) and discard what they used,
// through the source's Discard when it has one; lzma needs a buffer of at
// least 64 bytes and refuses a smaller one. The others peek at most 4
// bytes.
type Source interface {
	io.Reader
	io.ByteReader
	Peek(n int) ([]byte, error)
}

// Memory bounds for hostile input. Real initrds stay far below them: the
// kernel itself allocates the zstd window and the dictionaries, and the
// writers here use 8 MiB and 1 MiB.
const (
	// MaxZstdWindow bounds the window of zstd frames NewReader accepts.
	MaxZstdWindow = 128 << 20
	// MaxDictSize bounds the dictionary of xz and lzma streams NewReader
	// accepts; `xz -9` and `lzma -9` use 64 MiB.
	MaxDictSize = 128 << 20
)

// limits carries the memory bounds, so tests and fuzzers can lower them
// without any package-level state.
type limits struct {
	window int64 // zstd window
	dict   int64 // xz (LZMA2) and lzma dictionary
	// parallel bounds the memory decoding in parallel may hold (xz
	// blocks decoded at once); 0: no bound beyond the worker count.
	parallel int64
}

func defaultLimits() limits { return limits{window: MaxZstdWindow, dict: MaxDictSize} }

// NewReader decodes exactly one compressed stream that starts at the
// current position of src:
//
//   - gzip: one member, including its 8-byte trailer (the kernel decodes
//     one member per call; a following member is the next segment). The
//     header is read as the kernel's gunzip reads it; members with FEXTRA,
//     FCOMMENT or FHCRC fields are refused, since it skips only a file
//     name. The trailer's CRC32 and size are checked (the kernel does not).
//   - zstd: one frame, delimited by walking its block headers. Windows up
//     to MaxZstdWindow are accepted.
//   - xz: one stream from its header to its footer. Stream padding (zero
//     bytes after the footer) is not part of it: the kernel's unxz stops at
//     the footer too and init/initramfs.c skips zeros between segments.
//     Only the LZMA2 filter is supported (the kernel also has BCJ filters,
//     which no initrd generator uses). The check may be None, CRC32,
//     CRC64 or SHA-256 (the kernel: None or CRC32 only).
//   - bzip2: one stream, up to and including the stream CRC (rounded up to
//     a byte), as the kernel's bunzip2; a concatenated stream is the next
//     segment.
//   - lzma: one .lzma stream (13-byte header, then the range-coded data up
//     to the end marker or the size in the header).
//   - lz4: one legacy stream as the kernel's unlz4 reads it: the magic, then
//     chunks, where a repeated magic continues the stream; it ends at the
//     end of input, before a zero 32-bit word (the zero padding after it is
//     not consumed), or before a tail of fewer than 4 bytes.
//   - lzo: one lzop file (header, blocks, zero end marker) with the header
//     layout the kernel's unlzo accepts.
//   - none: everything up to the end of src.
//
// When the returned reader has returned io.EOF, src is positioned at the
// first byte after the stream. Decoding errors are *StreamError values
// that wrap the cause (io.ErrUnexpectedEOF for truncation, ErrUnsupported
// for unsupported features). Memory stays bounded whatever the input.
// Close releases the decoder; it does not close or drain src. Decoding
// runs ahead of the caller on a goroutine of its own (at most 1 MiB ahead):
// src must not be touched by anyone else until the reader has returned
// io.EOF or an error, or has been closed.
func NewReader(c Codec, src Source) (io.ReadCloser, error) {
	return newReader(c, src, defaultLimits(), nil)
}

// Decoders keeps decoders and their buffers from one stream to the next,
// for a caller that reads many streams one after another: an image cut
// into many zstd frames would otherwise set up a zstd decoder (its window
// and tables, tens of MiB of fresh memory) per frame, which cost more than
// decoding the frames. The zero value is ready; a Decoders serves one
// stream at a time (close a reader before opening the next) and is not safe
// for concurrent use. Close releases what it holds.
type Decoders struct {
	// ParallelMemory, when positive, bounds the memory a stream's decoder
	// holds to decode parts of it in parallel: the xz blocks decoded at
	// once (each a dictionary, its compressed data and what it decoded
	// ahead of the reader). A block is always decoded; a second one starts
	// only within the bound. 0 means every core may decode a block.
	ParallelMemory int64

	zstd   *zstd.Decoder
	chunks [][]byte // readahead buffers
}

// NewReader is the package's NewReader, reusing what earlier streams of d
// left behind.
func (d *Decoders) NewReader(c Codec, src Source) (io.ReadCloser, error) {
	lim := defaultLimits()
	lim.parallel = d.ParallelMemory
	return newReader(c, src, lim, d)
}

// Close releases the decoders kept.
func (d *Decoders) Close() {
	if d.zstd != nil {
		d.zstd.Close()
		d.zstd = nil
	}
	d.chunks = nil
}

func newReader(c Codec, src Source, lim limits, cache *Decoders) (io.ReadCloser, error) {
	if c == None {
		return io.NopCloser(src), nil
	}
	f, ok := lookup(c)
	if !ok {
		return nil, fmt.Errorf("unknown codec %q", c)
	}
	s := &stream{codec: c, cur: &cursor{src: src}}
	err := f.open(s, lim, cache)
	if err != nil {
		s.Close()
		return nil, s.fail(err)
	}
	r := newReadahead(s, cache)
	r.check = s.check
	return r, nil
}

// readerCheck is a check of the decoded bytes that the goroutine reading
// them computes, off the decoder's; done reports a mismatch once the
// stream has ended.
type readerCheck interface {
	io.Writer
	done() error
}

// stream is the reader NewReader returns: it adds the stream offset to
// errors and checks, for delimited formats, that the decoder consumed the
// whole stream.
type stream struct {
	codec   Codec
	cur     *cursor
	fr      *framer   // set when a walker delimits the stream
	dec     io.Reader // the decoder proper
	release func()
	check   readerCheck // computed by the reader of the decoded bytes
	err     error       // sticky
	eof     bool
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.dec.Read(p)
	switch {
	case err == nil:
	case err == io.EOF && s.fr != nil && !s.fr.finished():
		// The decoder saw its end before the walker saw the stream's:
		// they disagree about a corrupt stream.
		err = s.fail(errors.New("decoder reached the end before the end of the stream's structure"))
	case err == io.EOF:
		s.eof = true
	default:
		err = s.fail(err)
	}
	return n, err
}

// fail records err as a StreamError. A walker's structural error is the
// root cause of whatever the decoder made of the bytes it stopped at.
func (s *stream) fail(err error) error {
	if s.fr != nil && s.fr.err != nil {
		err = s.fr.err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if se := (*StreamError)(nil); errors.As(err, &se) {
		s.err = err
	} else {
		s.err = &StreamError{Codec: s.codec, Offset: s.cur.n, Err: err}
	}
	return s.err
}

func (s *stream) Close() error {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	return nil
}

// cursor counts the bytes of the stream consumed from the source.
type cursor struct {
	src Source
	n   int64
}

func (c *cursor) Read(p []byte) (int, error) {
	n, err := c.src.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *cursor) ReadByte() (byte, error) {
	b, err := c.src.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// Peek returns up to n bytes without consuming them.
func (c *cursor) Peek(n int) ([]byte, error) { return c.src.Peek(n) }

// Discard consumes n bytes, through the source's own Discard when it has
// one (a *bufio.Reader does).
func (c *cursor) Discard(n int) (int, error) {
	var m int
	var err error
	if d, ok := c.src.(interface{ Discard(int) (int, error) }); ok {
		m, err = d.Discard(n)
	} else {
		var k int64
		k, err = io.CopyN(io.Discard, c.src, int64(n))
		m = int(k)
	}
	c.n += int64(m)
	return m, err
}

// readFull fills p, reporting a short read as io.ErrUnexpectedEOF.
func (c *cursor) readFull(p []byte) error {
	if _, err := io.ReadFull(c, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// A walker reads the structure of one stream (headers, block sizes) so
// that the decoder is handed exactly the stream's bytes: decoders that
// read ahead, or that look for a concatenated stream, then stop at the
// stream's end instead of in the next segment.
type walker interface {
	// step reads the next structural element through f.take and returns
	// how many bytes of opaque payload follow it before step must be
	// called again. It returns io.EOF once the stream is complete.
	step(f *framer) (payload int64, err error)
}

// framer hands a decoder the bytes of one stream, as its walker finds them.
type framer struct {
	cur    *cursor
	w      walker
	buf    []byte // structure bytes read by step, not yet handed out
	off    int
	remain int64 // payload bytes still to pass through
	done   bool  // the walker reached the end of the stream
	err    error // the walker's error
}

func newFramer(cur *cursor, w walker) *framer { return &framer{cur: cur, w: w} }

func (f *framer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if f.off < len(f.buf) {
			n := copy(p, f.buf[f.off:])
			f.off += n
			return n, nil
		}
		if f.remain > 0 {
			if int64(len(p)) > f.remain {
				p = p[:f.remain]
			}
			n, err := f.cur.Read(p)
			f.remain -= int64(n)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				continue
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			f.err = err
			return 0, err
		}
		if f.err != nil {
			return 0, f.err
		}
		if f.done {
			return 0, io.EOF
		}
		f.buf, f.off = f.buf[:0], 0
		n, err := f.w.step(f)
		switch {
		case err == io.EOF:
			f.done = true
		case err != nil:
			// Withhold what step read: a header it refused (say, one
			// naming a huge dictionary) must not reach the decoder.
			f.err, f.buf = err, f.buf[:0]
		case n < 0:
			f.err = errors.New("negative payload size")
		default:
			f.remain = n
		}
	}
}

func (f *framer) ReadByte() (byte, error) {
	if f.off < len(f.buf) {
		b := f.buf[f.off]
		f.off++
		return b, nil
	}
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// finished reports whether every byte of the stream was handed out.
func (f *framer) finished() bool {
	return f.done && f.err == nil && f.off == len(f.buf) && f.remain == 0
}

// take reads n structure bytes, queues them for the decoder and returns
// them (valid until the next take).
func (f *framer) take(n int) ([]byte, error) {
	start := len(f.buf)
	f.buf = append(f.buf, make([]byte, n)...)
	if err := f.cur.readFull(f.buf[start:]); err != nil {
		f.buf = f.buf[:start]
		return nil, err
	}
	return f.buf[start:], nil
}

func (f *framer) takeByte() (byte, error) {
	b, err := f.cur.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	f.buf = append(f.buf, b)
	return b, nil
}
