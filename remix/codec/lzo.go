package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"io"
)

// The lzop file format, as lib/decompress_unlzo.c reads it. The kernel
// skips the header fields it does not need and assumes exactly one
// checksum word after each block's sizes; lzop writes one word for each of
// the flags below that is set (the compressed-data ones only for blocks
// that are compressed). So the files the kernel reads correctly are those
// with exactly one uncompressed-data checksum (lzop's default adler32, or
// --crc32), no compressed-data checksum, no extra field and no filter;
// newLZOReader refuses any other layout rather than misread it.
const (
	lzopMagic      = "\x89LZO\x00\r\n\x1a\n"
	lzoBlockSize   = 256 << 10 // the kernel's LZO_BLOCK_SIZE
	lzopAdler32D   = 0x00000001
	lzopAdler32C   = 0x00000002
	lzopExtraField = 0x00000040
	lzopCRC32D     = 0x00000100
	lzopCRC32C     = 0x00000200
	lzopFilter     = 0x00000800
	lzopHeaderCRC  = 0x00001000
)

type lzoReader struct {
	cur  *cursor
	sum  hash.Hash32 // of each block's uncompressed data
	in   []byte
	out  []byte
	rest []byte
	eof  bool
}

// lzo: lzop's file format, magic 89 4c 5a 4f ("\x89LZO"). Read only.
func lzoFormat() format {
	return format{
		codec:  LZO,
		magics: []string{"\x89LZO"},
		open: func(s *stream, _ limits, _ *Decoders) (err error) {
			s.dec, err = newLZOReader(s.cur)
			return err
		},
	}
}

func newLZOReader(cur *cursor) (io.Reader, error) {
	var head [9 + 7]byte // magic, version, library version, version needed, method
	if err := cur.readFull(head[:]); err != nil {
		return nil, fmt.Errorf("lzop header: %w", err)
	}
	if string(head[:9]) != lzopMagic {
		return nil, errors.New("not an lzop file (bad magic)")
	}
	version := binary.BigEndian.Uint16(head[9:])
	if version < 0x0940 {
		// Older files lack the version-needed field, which the kernel
		// skips unconditionally.
		return nil, fmt.Errorf("lzop format version %#x (before 0.94): %w", version, ErrUnsupported)
	}
	if m := head[15]; m < 1 || m > 3 {
		return nil, fmt.Errorf("lzop method %d is not LZO1X: %w", m, ErrUnsupported)
	}
	// The header checksum covers everything after the magic.
	hdr := append([]byte{}, head[9:]...)
	more := func(n int) ([]byte, error) {
		start := len(hdr)
		hdr = append(hdr, make([]byte, n)...)
		if err := cur.readFull(hdr[start:]); err != nil {
			return nil, fmt.Errorf("lzop header: %w", err)
		}
		return hdr[start:], nil
	}
	// level, flags, mode, mtime low and high, name length
	b, err := more(1 + 4 + 4 + 4 + 4 + 1)
	if err != nil {
		return nil, err
	}
	flags := binary.BigEndian.Uint32(b[1:])
	if _, err := more(int(b[17])); err != nil { // the name
		return nil, err
	}
	var sum [4]byte
	if err := cur.readFull(sum[:]); err != nil {
		return nil, fmt.Errorf("lzop header: %w", err)
	}
	var hsum uint32
	if flags&lzopHeaderCRC != 0 {
		hsum = crc32.ChecksumIEEE(hdr)
	} else {
		hsum = adler32.Checksum(hdr)
	}
	if hsum != binary.BigEndian.Uint32(sum[:]) {
		return nil, errors.New("lzop header checksum mismatch")
	}
	if flags&(lzopExtraField|lzopFilter) != 0 {
		return nil, fmt.Errorf("lzop flags %#x ask for an extra field or a filter, which the kernel cannot read: %w", flags, ErrUnsupported)
	}
	r := &lzoReader{cur: cur}
	switch flags & (lzopAdler32D | lzopAdler32C | lzopCRC32D | lzopCRC32C) {
	case lzopAdler32D:
		r.sum = adler32.New()
	case lzopCRC32D:
		r.sum = crc32.NewIEEE()
	default:
		return nil, fmt.Errorf("lzop flags %#x: the kernel reads only files with exactly one checksum, of the uncompressed data: %w", flags, ErrUnsupported)
	}
	return r, nil
}

func (r *lzoReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if err := r.block(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *lzoReader) block() error {
	var h [12]byte
	if err := r.cur.readFull(h[:4]); err != nil {
		return fmt.Errorf("lzop block header: %w", err)
	}
	dlen := binary.BigEndian.Uint32(h[:4])
	if dlen == 0 { // the end marker
		r.eof = true
		return nil
	}
	if dlen > lzoBlockSize {
		return fmt.Errorf("lzop block of %d bytes exceeds the kernel's %d", dlen, lzoBlockSize)
	}
	if err := r.cur.readFull(h[4:]); err != nil {
		return fmt.Errorf("lzop block header: %w", err)
	}
	slen := binary.BigEndian.Uint32(h[4:8])
	if slen == 0 || slen > dlen {
		return fmt.Errorf("lzop block of %d bytes stored in %d", dlen, slen)
	}
	if r.in == nil {
		r.in = make([]byte, lzoBlockSize)
		r.out = make([]byte, lzoBlockSize)
	}
	in, out := r.in[:slen], r.out[:dlen]
	if err := r.cur.readFull(in); err != nil {
		return fmt.Errorf("lzop block data: %w", err)
	}
	if slen == dlen {
		copy(out, in) // stored: lzop keeps incompressible blocks as they are
	} else if err := lzo1xDecompress(in, out); err != nil {
		return fmt.Errorf("lzop block: %w", err)
	}
	r.sum.Reset()
	r.sum.Write(out)
	if r.sum.Sum32() != binary.BigEndian.Uint32(h[8:]) {
		return errors.New("lzop block checksum mismatch")
	}
	r.rest = out
	return nil
}

var (
	errLZOInput      = errors.New("LZO1X data ends early")
	errLZOOutput     = errors.New("LZO1X data decodes to more than the block size")
	errLZOLookbehind = errors.New("LZO1X match reaches before the start of the block")
)

// lzo1xDecompress decodes one LZO1X block (any of the LZO1X-1, -1(15) and
// -999 compressors) into dst, which has exactly the size the block must
// decode to. Like the kernel's lzo1x_decompress_safe called by unlzo, it
// succeeds only if the block ends with the end-of-stream instruction at
// its last byte and fills dst exactly; every read and write is checked.
//
// The instruction set: a byte t, read in a state that is the number of
// literals the previous instruction copied (4 standing for "4 or more"):
//
//	t >= 64:       match of 3-8 bytes, distance up to 2 KiB, 1 more byte
//	32 <= t < 64:  match of 3+ bytes (length extended by zero bytes),
//	               distance up to 16 KiB, in a little-endian 16-bit word
//	16 <= t < 32:  match of 3+ bytes, distance 16-48 KiB, or the end of
//	               the stream when the distance is 0
//	t < 16:        in state 0, a run of 4+ literals; in states 1-3, a
//	               2-byte match; in state 4, a 3-byte match at 2-3 KiB
//
// The low two bits of a match's last distance byte (or word) give 0-3
// literals to copy after it, which become the next state. A first byte
// above 17 starts the block with a run of byte-17 literals.
func lzo1xDecompress(src, dst []byte) error {
	ip, op := 0, 0
	in := func() (int, error) {
		if ip >= len(src) {
			return 0, errLZOInput
		}
		ip++
		return int(src[ip-1]), nil
	}
	// ext reads an extended length: zero bytes each add 255, then the
	// first non-zero byte is added.
	ext := func(base int) (int, error) {
		n := base
		for {
			b, err := in()
			if err != nil {
				return 0, err
			}
			if b != 0 {
				return n + b, nil
			}
			n += 255
			if n > len(dst) {
				return 0, errLZOOutput
			}
		}
	}
	literals := func(n int) error {
		if n > len(src)-ip {
			return errLZOInput
		}
		if n > len(dst)-op {
			return errLZOOutput
		}
		copy(dst[op:], src[ip:ip+n])
		ip += n
		op += n
		return nil
	}
	if len(src) < 3 {
		return errLZOInput
	}
	state := 0
	if src[0] > 17 {
		ip = 1
		n := int(src[0]) - 17
		if err := literals(n); err != nil {
			return err
		}
		state = min(n, 4)
	}
	for {
		t, err := in()
		if err != nil {
			return err
		}
		var dist, length, next int
		switch {
		case t >= 64:
			b, err := in()
			if err != nil {
				return err
			}
			dist = 1 + (t>>2)&7 + b<<3
			length = t>>5 + 1
			next = t & 3
		case t >= 16:
			mask, extBase := 31, 31
			if t < 32 {
				mask, extBase = 7, 7
			}
			length = t & mask
			if length == 0 {
				if length, err = ext(extBase); err != nil {
					return err
				}
			}
			length += 2
			lo, err := in()
			if err != nil {
				return err
			}
			hi, err := in()
			if err != nil {
				return err
			}
			word := lo | hi<<8
			next = word & 3
			if t >= 32 {
				dist = 1 + word>>2
				break
			}
			dist = (t&8)<<11 + word>>2
			if dist == 0 { // end of stream
				switch {
				case length != 3:
					return errors.New("LZO1X end-of-stream instruction has a length")
				case ip != len(src):
					return errors.New("LZO1X data continues after the end-of-stream instruction")
				case op != len(dst):
					return fmt.Errorf("LZO1X block decodes to %d bytes, want %d", op, len(dst))
				}
				return nil
			}
			dist += 0x4000
		case state == 0: // a literal run
			n := t
			if n == 0 {
				if n, err = ext(15); err != nil {
					return err
				}
			}
			if err := literals(n + 3); err != nil {
				return err
			}
			state = 4
			continue
		default:
			b, err := in()
			if err != nil {
				return err
			}
			dist = 1 + t>>2 + b<<2
			length = 2
			if state == 4 {
				dist += 0x800
				length = 3
			}
			next = t & 3
		}
		if dist > op {
			return errLZOLookbehind
		}
		if length > len(dst)-op {
			return errLZOOutput
		}
		// A match may overlap its own output (dist < length): it repeats
		// the last dist bytes. Copying from the match start in steps that
		// double (dist, 2*dist, ...) keeps that period.
		for start := op - dist; length > 0; {
			n := copy(dst[op:op+min(length, op-start)], dst[start:])
			op += n
			length -= n
		}
		if err := literals(next); err != nil {
			return err
		}
		state = next
	}
}
