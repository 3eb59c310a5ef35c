package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// xzWalker delimits one xz stream (the .xz file format, version 1.0.4):
// stream header, blocks, index, stream footer, so that nothing reads past
// the footer. Walking the structure also lets this package refuse, before
// the decoder allocates anything, filters it cannot decode and
// dictionaries above the bound.
type xzWalker struct {
	maxDict    int64
	state      int
	checkSize  int
	blockStart int64 // stream offset of the current block or index
	records    uint64
}

const (
	xzHeader = iota
	xzBlockOrIndex
	xzChunk
	xzBlockEnd
	xzIndexRecords
	xzIndexEnd
	xzEnd
)

// xzCheckSize maps the check type to its size; None, CRC32, CRC64 and
// SHA-256 are read (the kernel: None and CRC32 only).
func xzCheckSize(id byte) (int, bool) {
	switch id {
	case 0x00:
		return 0, true
	case 0x01:
		return 4, true
	case 0x04:
		return 8, true
	case 0x0a:
		return 32, true
	}
	return 0, false
}

func (x *xzWalker) step(f *framer) (int64, error) {
	switch x.state {
	case xzHeader:
		h, err := f.take(12)
		if err != nil {
			return 0, fmt.Errorf("stream header: %w", err)
		}
		if string(h[:6]) != "\xfd7zXZ\x00" {
			return 0, errors.New("not an xz stream (bad magic)")
		}
		if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
			return 0, errors.New("stream header CRC32 mismatch")
		}
		size, ok := xzCheckSize(h[7])
		if h[6] != 0 || h[7]&0xf0 != 0 || !ok {
			return 0, fmt.Errorf("stream flags % x: %w", h[6:8], ErrUnsupported)
		}
		x.checkSize = size
		x.state = xzBlockOrIndex
		return 0, nil
	case xzBlockOrIndex:
		x.blockStart = f.cur.n
		b, err := f.takeByte()
		if err != nil {
			return 0, fmt.Errorf("block header: %w", err)
		}
		if b == 0 { // the index indicator
			n, err := x.varint(f)
			if err != nil {
				return 0, fmt.Errorf("index: %w", err)
			}
			if n > 1<<40 {
				return 0, fmt.Errorf("index claims %d blocks", n)
			}
			x.records = 2 * n // two sizes per record
			x.state = xzIndexRecords
			return 0, nil
		}
		rest, err := f.take(int(b)*4 + 3)
		if err != nil {
			return 0, fmt.Errorf("block header: %w", err)
		}
		h := make([]byte, 0, len(rest)+1)
		h = append(append(h, b), rest...)
		bh, err := parseXZBlockHeader(h, x.maxDict)
		if err != nil {
			return 0, fmt.Errorf("block header: %w", err)
		}
		if bh.compressed >= 0 {
			// The header says where the block's data ends.
			x.state = xzBlockEnd
			return bh.compressed, nil
		}
		x.state = xzChunk
		return 0, nil
	case xzChunk:
		// LZMA2 chunks carry their sizes: walk them up to the end marker.
		ctl, err := f.takeByte()
		if err != nil {
			return 0, fmt.Errorf("LZMA2 chunk: %w", err)
		}
		switch {
		case ctl == 0x00:
			x.state = xzBlockEnd
			return 0, nil
		case ctl == 0x01 || ctl == 0x02: // uncompressed chunk
			s, err := f.take(2)
			if err != nil {
				return 0, fmt.Errorf("LZMA2 chunk: %w", err)
			}
			return int64(binary.BigEndian.Uint16(s)) + 1, nil
		case ctl >= 0x80: // LZMA chunk; with new properties from 0xc0
			n := 4
			if ctl >= 0xc0 {
				n = 5
			}
			s, err := f.take(n)
			if err != nil {
				return 0, fmt.Errorf("LZMA2 chunk: %w", err)
			}
			return int64(binary.BigEndian.Uint16(s[2:4])) + 1, nil
		}
		return 0, fmt.Errorf("invalid LZMA2 control byte %#02x", ctl)
	case xzBlockEnd:
		// Block padding to a multiple of four, then the check.
		pad := int((4 - (f.cur.n-x.blockStart)%4) % 4)
		if _, err := f.take(pad + x.checkSize); err != nil {
			return 0, fmt.Errorf("block check: %w", err)
		}
		x.state = xzBlockOrIndex
		return 0, nil
	case xzIndexRecords:
		// A bounded number of sizes per step, so a long index is not
		// buffered whole.
		for i := 0; i < 1024 && x.records > 0; i++ {
			if _, err := x.varint(f); err != nil {
				return 0, fmt.Errorf("index: %w", err)
			}
			x.records--
		}
		if x.records == 0 {
			x.state = xzIndexEnd
		}
		return 0, nil
	case xzIndexEnd:
		// Index padding, index CRC32, stream footer.
		pad := int((4 - (f.cur.n-x.blockStart)%4) % 4)
		b, err := f.take(pad + 4 + 12)
		if err != nil {
			return 0, fmt.Errorf("index end or stream footer: %w", err)
		}
		if string(b[len(b)-2:]) != "YZ" {
			return 0, errors.New("bad stream footer magic")
		}
		x.state = xzEnd
		return 0, io.EOF
	}
	return 0, io.EOF
}

// varint reads one xz multibyte integer (at most 9 bytes).
func (x *xzWalker) varint(f *framer) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := f.takeByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, errors.New("non-minimal integer encoding")
			}
			return v, nil
		}
	}
	return 0, errors.New("integer longer than 9 bytes")
}

// xzBlockHeader is what a block header says.
type xzBlockHeader struct {
	compressed   int64 // -1: not stated
	uncompressed int64 // -1: not stated
	dict         int64 // LZMA2 dictionary size
}

// parseXZBlockHeader validates a block header (its CRC32 included). Only a
// lone LZMA2 filter is accepted, with a dictionary within maxDict: nothing
// else is decoded here, and the decoder allocates whatever dictionary the
// filter names.
func parseXZBlockHeader(h []byte, maxDict int64) (xzBlockHeader, error) {
	bh := xzBlockHeader{compressed: -1, uncompressed: -1}
	n := len(h)
	if crc32.ChecksumIEEE(h[:n-4]) != binary.LittleEndian.Uint32(h[n-4:]) {
		return bh, errors.New("CRC32 mismatch")
	}
	flags := h[1]
	if flags&0x3c != 0 {
		return bh, errors.New("reserved flags set")
	}
	p := 2
	field := func() (uint64, error) {
		if p >= n-4 {
			return 0, errors.New("header too short")
		}
		v, k := binary.Uvarint(h[p : n-4])
		if k <= 0 || k > 9 {
			return 0, errors.New("bad integer")
		}
		p += k
		return v, nil
	}
	if flags&0x40 != 0 {
		v, err := field()
		if err != nil {
			return bh, err
		}
		if v == 0 || v > 1<<62 {
			return bh, fmt.Errorf("bad compressed size %d", v)
		}
		bh.compressed = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := field()
		if err != nil {
			return bh, err
		}
		if v > 1<<62 {
			return bh, fmt.Errorf("bad uncompressed size %d", v)
		}
		bh.uncompressed = int64(v)
	}
	if flags&3 != 0 {
		return bh, fmt.Errorf("filter chain of %d filters (BCJ or delta before LZMA2): %w", flags&3+1, ErrUnsupported)
	}
	id, err := field()
	if err != nil {
		return bh, err
	}
	size, err := field()
	if err != nil {
		return bh, err
	}
	if id != 0x21 {
		return bh, fmt.Errorf("filter %#x instead of LZMA2: %w", id, ErrUnsupported)
	}
	if size != 1 || p >= n-4 {
		return bh, errors.New("bad LZMA2 properties")
	}
	bits := h[p]
	if bits > 40 {
		return bh, errors.New("bad LZMA2 dictionary size")
	}
	dict := uint64(2|bits&1) << (bits/2 + 11)
	if bits == 40 {
		dict = 1<<32 - 1
	}
	if dict > uint64(maxDict) {
		return bh, fmt.Errorf("LZMA2 dictionary of %d bytes exceeds the %d-byte bound", dict, maxDict)
	}
	bh.dict = int64(dict)
	return bh, nil
}

// xz: magic fd 37 7a 58 5a 00. Written with a CRC32 check, the only one
// besides none that the kernel's XZ Embedded verifies, and LZMA2 only.
func xzFormat() format {
	return format{
		codec:     XZ,
		magics:    []string{"\xfd7zXZ\x00"},
		open:      func(s *stream, lim limits, _ *Decoders) error { return s.openXZ(lim) },
		newWriter: func(w io.Writer, o WriterOptions) (io.WriteCloser, error) { return newXZWriter(w, threads(o)) },
	}
}

func (s *stream) openXZ(lim limits) error {
	s.fr = newFramer(s.cur, &xzWalker{maxDict: lim.dict})
	x := newXZBlocks(s.fr, lim.dict, lim.parallel)
	s.dec, s.release = x, x.Close
	return nil
}
