package codec

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/initrd-remix/initrd-remix/internal/ordered"
	"github.com/ulikunitz/xz/lzma"
)

// xzWriter writes one .xz stream (format 1.0.4) whose blocks are
// compressed on several goroutines, the way `xz -T` and dracut's
// `xz --check=crc32 --lzma2=dict=1MiB -T0` do: the input is cut into blocks
// of xzBlockSize bytes, each an independent LZMA2 stream with a CRC32 check.
// ulikunitz/xz compresses at about 2 MB/s on one core, so a 150 MB initrd
// took over a minute; blocks bring that down by the number of cores. The
// kernel's xz decoder reads multi-block streams (dracut's images are made
// that way). Block boundaries depend only on the input, so the output does
// not depend on the thread count.
type xzWriter struct {
	w       io.Writer
	dictCap int
	threads int
	buf     []byte
	pool    *ordered.Pool[xzBlock] // blocks compressing, in output order
	index   []xzRecord
	err     error
	closed  bool
}

// xzBlockSize is three dictionaries, as xz -T chooses.
const xzBlockSize = 3 * xzDictCap

// xzDictCap is the dictionary the kernel's documentation and dracut use;
// the kernel's decoder allocates it when it starts.
const xzDictCap = 1 << 20

type xzBlock struct {
	encoded []byte // block header, compressed data, padding, check
	records xzRecord
}

type xzRecord struct{ unpadded, uncompressed uint64 }

func newXZWriter(w io.Writer, threads int) (*xzWriter, error) {
	x := &xzWriter{w: w, dictCap: xzDictCap, threads: max(threads, 1)}
	x.pool = ordered.New[xzBlock](context.Background(), x.threads)
	// Stream header: magic, flags (check type 1: CRC32), CRC32 of the flags.
	h := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 0x01, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(h[8:], crc32.ChecksumIEEE(h[6:8]))
	if _, err := w.Write(h); err != nil {
		x.pool.Close()
		return nil, err
	}
	return x, nil
}

func (x *xzWriter) Write(p []byte) (int, error) {
	if x.closed {
		return 0, errors.New("xz: write after close")
	}
	n := len(p)
	for len(p) > 0 && x.err == nil {
		if x.buf == nil {
			x.buf = make([]byte, 0, xzBlockSize)
		}
		k := min(len(p), xzBlockSize-len(x.buf))
		x.buf = append(x.buf, p[:k]...)
		p = p[k:]
		if len(x.buf) == xzBlockSize {
			x.submit()
		}
	}
	if x.err != nil {
		return 0, x.err
	}
	return n, nil
}

// submit starts compressing the filled buffer and, when as many blocks as
// threads are in flight, writes out the oldest one.
func (x *xzWriter) submit() {
	data, dictCap := x.buf, x.dictCap
	x.buf = nil
	err := x.pool.Submit(func(context.Context, int) (xzBlock, error) {
		encoded, records, err := encodeXZBlock(data, dictCap)
		return xzBlock{encoded, records}, err
	})
	if err != nil {
		x.err = err
		return
	}
	for x.pool.Pending() >= x.threads && x.err == nil {
		x.flushOldest()
	}
}

func (x *xzWriter) flushOldest() {
	b, err := x.pool.Next()
	if err != nil {
		x.err = fmt.Errorf("xz block %d: %w", len(x.index), err)
		return
	}
	if _, err := x.w.Write(b.encoded); err != nil {
		x.err = err
		return
	}
	x.index = append(x.index, b.records)
}

// Close compresses what is left and writes the index and the stream footer.
func (x *xzWriter) Close() error {
	if x.closed {
		return x.err
	}
	x.closed = true
	if len(x.buf) > 0 && x.err == nil {
		x.submit()
	}
	for x.pool.Pending() > 0 && x.err == nil {
		x.flushOldest()
	}
	x.pool.Close() // lets running blocks finish
	if x.err != nil {
		return x.err
	}
	// Index: indicator, record count, records, padding, CRC32.
	idx := []byte{0}
	idx = binary.AppendUvarint(idx, uint64(len(x.index)))
	for _, r := range x.index {
		idx = binary.AppendUvarint(idx, r.unpadded)
		idx = binary.AppendUvarint(idx, r.uncompressed)
	}
	idx = append(idx, make([]byte, pad4(len(idx)))...)
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	// Footer: CRC32 of backward size and flags, backward size, flags, magic.
	f := make([]byte, 12)
	binary.LittleEndian.PutUint32(f[4:], uint32(len(idx)/4-1))
	f[8], f[9] = 0, 0x01
	binary.LittleEndian.PutUint32(f[0:], crc32.ChecksumIEEE(f[4:10]))
	f[10], f[11] = 'Y', 'Z'
	if _, err := x.w.Write(append(idx, f...)); err != nil {
		x.err = err
	}
	return x.err
}

func pad4(n int) int { return (4 - n%4) % 4 }

// encodeXZBlock returns one complete block: header (one LZMA2 filter with
// the dictionary size, no optional sizes), the LZMA2 data, padding and the
// CRC32 of data.
func encodeXZBlock(data []byte, dictCap int) ([]byte, xzRecord, error) {
	hdr := []byte{0, 0x00, 0x21, 0x01, lzma2DictByte(dictCap)}
	hdr = append(hdr, make([]byte, pad4(len(hdr)+4))...)
	hdr[0] = byte((len(hdr)+4)/4 - 1)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.ChecksumIEEE(hdr))

	out := bytes.NewBuffer(make([]byte, 0, len(data)/3+len(hdr)+64))
	out.Write(hdr)
	lw, err := lzma.Writer2Config{DictCap: dictCap}.NewWriter2(out)
	if err != nil {
		return nil, xzRecord{}, err
	}
	if _, err := lw.Write(data); err != nil {
		return nil, xzRecord{}, err
	}
	if err := lw.Close(); err != nil {
		return nil, xzRecord{}, err
	}
	unpadded := out.Len() + 4 // header and data, plus the check
	out.Write(make([]byte, pad4(out.Len())))
	b := binary.LittleEndian.AppendUint32(out.Bytes(), crc32.ChecksumIEEE(data))
	return b, xzRecord{uint64(unpadded), uint64(len(data))}, nil
}

// lzma2DictByte encodes a dictionary size as LZMA2's one-byte property:
// the smallest (2 or 3) << (11 + b/2) not below size.
func lzma2DictByte(size int) byte {
	for b := 0; b < 40; b++ {
		if (2|b&1)<<(11+b/2) >= size {
			return byte(b)
		}
	}
	return 40
}
