package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// delimitXZ copies exactly one xz stream from src to w by walking its
// structure (stream header, block headers, LZMA2 chunk sizes, block
// padding and check, index, footer), so the decoder never sees the bytes
// of the next segment. ulikunitz/xz refuses trailing data, and the kernel
// stops at the stream's end and lets its caller skip zero padding.
func delimitXZ(src Source, w io.Writer) error {
	t := &tee{src: src, w: w}
	hdr, err := t.read(12)
	if err != nil {
		return err
	}
	if string(hdr[:6]) != "\xfd7zXZ\x00" {
		return errors.New("not an xz stream")
	}
	checkSize := []int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}[hdr[7]&0x0f]
	for {
		b, err := t.peek()
		if err != nil {
			return err
		}
		if b == 0 {
			break // the index
		}
		if err := delimitXZBlock(t, checkSize); err != nil {
			return err
		}
	}
	start := t.n
	if _, err := t.read(1); err != nil {
		return err
	}
	records, err := t.varint()
	if err != nil {
		return err
	}
	if records > 1<<24 {
		return fmt.Errorf("xz index claims %d blocks", records)
	}
	for i := uint64(0); i < 2*records; i++ {
		if _, err := t.varint(); err != nil {
			return err
		}
	}
	if _, err := t.read(int((4 - (t.n-start)%4) % 4)); err != nil {
		return err
	}
	if _, err := t.read(4 + 12); err != nil { // index CRC32, stream footer
		return err
	}
	return nil
}

func delimitXZBlock(t *tee, checkSize int) error {
	start := t.n
	b, _ := t.peek()
	size := (int(b) + 1) * 4
	// Check the header before the decoder sees it: the decoder allocates
	// whatever dictionary the LZMA2 filter asks for.
	if peeked, err := t.src.Peek(size); err != nil {
		return fmt.Errorf("xz block header truncated at byte %d: %w", t.n, io.ErrUnexpectedEOF)
	} else if err := checkXZBlockHeader(peeked); err != nil {
		return fmt.Errorf("xz block header at byte %d: %w", t.n, err)
	}
	h, err := t.read(size)
	if err != nil {
		return err
	}
	flags := h[1]
	p := 2
	compressed := int64(-1)
	if flags&0x40 != 0 {
		v, n := binary.Uvarint(h[p:])
		if n <= 0 {
			return errors.New("xz block header: bad compressed size")
		}
		compressed, p = int64(v), p+n
	}
	if compressed >= 0 {
		if _, err := t.copyN(compressed); err != nil {
			return err
		}
	} else if err := delimitLZMA2(t); err != nil {
		return err
	}
	if _, err := t.read(int((4 - (t.n-start)%4) % 4)); err != nil {
		return err
	}
	_, err = t.read(checkSize)
	return err
}

// delimitLZMA2 walks LZMA2 chunk headers, which carry their sizes.
func delimitLZMA2(t *tee) error {
	for {
		c, err := t.read(1)
		if err != nil {
			return err
		}
		switch ctl := c[0]; {
		case ctl == 0:
			return nil
		case ctl == 1 || ctl == 2:
			s, err := t.read(2)
			if err != nil {
				return err
			}
			if _, err := t.copyN(int64(binary.BigEndian.Uint16(s)) + 1); err != nil {
				return err
			}
		case ctl >= 0x80:
			n := 4
			if ctl >= 0xc0 {
				n = 5
			}
			s, err := t.read(n)
			if err != nil {
				return err
			}
			if _, err := t.copyN(int64(binary.BigEndian.Uint16(s[2:4])) + 1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("xz: invalid LZMA2 control byte %#x at byte %d", ctl, t.n-1)
		}
	}
}

// tee reads from src and passes every byte to w.
type tee struct {
	src Source
	w   io.Writer
	n   int64
	buf []byte
}

func (t *tee) peek() (byte, error) {
	b, err := t.src.Peek(1)
	if err != nil {
		return 0, fmt.Errorf("xz stream truncated at byte %d: %w", t.n, io.ErrUnexpectedEOF)
	}
	return b[0], nil
}

func (t *tee) read(n int) ([]byte, error) {
	if cap(t.buf) < n {
		t.buf = make([]byte, n)
	}
	b := t.buf[:n]
	if _, err := io.ReadFull(t.src, b); err != nil {
		return nil, fmt.Errorf("xz stream truncated at byte %d: %w", t.n, io.ErrUnexpectedEOF)
	}
	t.n += int64(n)
	if _, err := t.w.Write(b); err != nil {
		return nil, err
	}
	return b, nil
}

func (t *tee) copyN(n int64) (int64, error) {
	got, err := io.CopyN(t.w, t.src, n)
	t.n += got
	if err == io.EOF {
		err = fmt.Errorf("xz stream truncated at byte %d: %w", t.n, io.ErrUnexpectedEOF)
	}
	return got, err
}

func (t *tee) varint() (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := t.read(1)
		if err != nil {
			return 0, err
		}
		v |= uint64(b[0]&0x7f) << (7 * i)
		if b[0]&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("xz: varint too long")
}

// checkXZBlockHeader refuses filter chains the kernel cannot decode (it
// has LZMA2 and BCJ filters only) and dictionaries above the memory bound.
func checkXZBlockHeader(h []byte) error {
	if len(h) < 2 {
		return errors.New("short header")
	}
	flags := h[1]
	p := 2
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			_, n := binary.Uvarint(h[p:])
			if n <= 0 {
				return errors.New("bad size field")
			}
			p += n
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, n := binary.Uvarint(h[p:])
		if n <= 0 {
			return errors.New("bad filter id")
		}
		p += n
		psize, n := binary.Uvarint(h[p:])
		if n <= 0 || p+n+int(psize) > len(h) {
			return errors.New("bad filter properties")
		}
		p += n
		props := h[p : p+int(psize)]
		p += int(psize)
		if id == 0x21 { // LZMA2
			if len(props) != 1 || props[0] > 40 {
				return errors.New("bad LZMA2 properties")
			}
			bits := uint(props[0])
			dict := uint64(2|bits&1) << (bits/2 + 11)
			if dict > maxDictSize {
				return fmt.Errorf("LZMA2 dictionary of %d bytes exceeds the %d-byte bound", dict, maxDictSize)
			}
		}
	}
	return nil
}
