package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstdFrame yields exactly the bytes of one zstd frame from src, walking
// the frame header and block headers (RFC 8878), so the decoder cannot read
// into the next segment and the caller learns where the frame ends.
type zstdFrame struct {
	src      Source
	started  bool
	remain   int
	last     bool
	checksum bool
	done     bool
	n        int64
}

const maxZstdBlock = 128 << 10

func (f *zstdFrame) Read(p []byte) (int, error) {
	if f.remain == 0 {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	if len(p) > f.remain {
		p = p[:f.remain]
	}
	n, err := f.src.Read(p)
	f.remain -= n
	f.n += int64(n)
	if err == io.EOF && f.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (f *zstdFrame) next() error {
	switch {
	case !f.started:
		h, err := f.src.Peek(6)
		if err != nil {
			return fmt.Errorf("zstd frame header at byte %d: %w", f.n, io.ErrUnexpectedEOF)
		}
		if binary.LittleEndian.Uint32(h) != 0xfd2fb528 {
			return errors.New("zstd: not a frame (bad magic)")
		}
		fhd := h[4]
		if fhd&0x08 != 0 {
			return errors.New("zstd: reserved bit set in frame header")
		}
		single := fhd&0x20 != 0
		size := 5
		if !single {
			size++
		}
		size += []int{0, 1, 2, 4}[fhd&3]
		fcs := []int{0, 2, 4, 8}[fhd>>6]
		if fhd>>6 == 0 && single {
			fcs = 1
		}
		size += fcs
		f.checksum = fhd&0x04 != 0
		f.started, f.remain = true, size
	case f.last:
		if f.checksum {
			f.checksum, f.remain = false, 4
			return nil
		}
		f.done = true
		return io.EOF
	default:
		h, err := f.src.Peek(3)
		if err != nil {
			return fmt.Errorf("zstd block header at byte %d: %w", f.n, io.ErrUnexpectedEOF)
		}
		bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
		f.last = bh&1 != 0
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 1: // RLE: one byte repeated size times
			size = 1
		case 3:
			return fmt.Errorf("zstd: reserved block type at byte %d", f.n)
		}
		if size > maxZstdBlock {
			return fmt.Errorf("zstd: block of %d bytes at byte %d exceeds the format's 128 KiB", size, f.n)
		}
		f.remain = 3 + size
	}
	return nil
}

type zstdReader struct {
	d  *zstd.Decoder
	fr *zstdFrame
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if err == io.EOF && !z.fr.done {
		// The decoder stopped before the frame's end: drain so the
		// caller's position is right, and report a corrupt frame.
		if _, derr := io.Copy(io.Discard, z.fr); derr != nil {
			return n, fmt.Errorf("zstd: %w", derr)
		}
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zstd: %w", err)
	}
	return n, err
}

func (z *zstdReader) Close() error {
	z.d.Close()
	return nil
}
