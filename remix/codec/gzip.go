package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/initrd-remix/initrd-remix/remix/codec/internal/inflate"

	kgzip "github.com/klauspost/compress/gzip"
)

// gzip: magic 1f 8b (and 1f 9e, the old gzip the kernel's table still
// lists). The kernel decodes one member per call; a following member is the
// next segment.
func gzipFormat() format {
	return format{
		codec:     Gzip,
		aliases:   []string{"gz"},
		magics:    []string{"\x1f\x8b", "\x1f\x9e"},
		open:      func(s *stream, _ limits, _ *Decoders) error { return s.openGzip() },
		newWriter: newGzipWriter,
	}
}

// newGzipWriter writes members without name or time, cut by Cut.
func newGzipWriter(w io.Writer, o WriterOptions) (io.WriteCloser, error) {
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
}

// gzipReader reads one gzip member with the header rules of the kernel's
// gunzip (lib/decompress_inflate.c): ID1 ID2 = 1f 8b, CM = 8, a file name
// skipped if FNAME is set, other header bytes ignored (reserved flag bits
// included, which klauspost's and the standard gzip readers treat
// differently). FEXTRA, FCOMMENT and FHCRC are refused: the kernel does not
// skip them and would inflate their bytes. After the deflate data, the
// 8-byte trailer is read and checked (the kernel skips it; a mismatch
// means corrupt data).
type gzipReader struct {
	cur  *cursor
	fl   *inflate.Reader
	crc  hash.Hash32
	size uint32
	eof  bool
}

func (s *stream) openGzip() error {
	var h [10]byte
	if err := s.cur.readFull(h[:]); err != nil {
		return fmt.Errorf("gzip header: %w", err)
	}
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
		return fmt.Errorf("gzip header % x: not a deflate member (the kernel wants 1f 8b 08)", h[:3])
	}
	// Flags: FHCRC 0x02, FEXTRA 0x04, FNAME 0x08, FCOMMENT 0x10.
	if h[3]&0x16 != 0 {
		return fmt.Errorf("gzip header flags %#02x ask for FEXTRA, FCOMMENT or FHCRC fields, which the kernel cannot skip", h[3])
	}
	if h[3]&0x08 != 0 {
		for {
			b, err := s.cur.ReadByte()
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("gzip file name: %w", err)
			}
			if b == 0 {
				break
			}
		}
	}
	// inflate decodes from the cursor's peeked bytes and discards exactly
	// the deflate data's bytes: the trailer is next.
	s.dec = &gzipReader{cur: s.cur, fl: inflate.NewReader(s.cur), crc: crc32.NewIEEE()}
	return nil
}

func (g *gzipReader) Read(p []byte) (int, error) {
	if g.eof {
		return 0, io.EOF
	}
	n, err := g.fl.Read(p)
	g.crc.Write(p[:n])
	g.size += uint32(n)
	if err != io.EOF {
		return n, err
	}
	var t [8]byte
	if err := g.cur.readFull(t[:]); err != nil {
		return n, fmt.Errorf("gzip trailer: %w", err)
	}
	if binary.LittleEndian.Uint32(t[:]) != g.crc.Sum32() || binary.LittleEndian.Uint32(t[4:]) != g.size {
		return n, errors.New("gzip trailer: CRC32 or size mismatch (corrupt data)")
	}
	g.eof = true
	return n, io.EOF
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
