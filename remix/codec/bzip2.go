package codec

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/initrd-remix/initrd-remix/internal/ordered"
	"github.com/initrd-remix/initrd-remix/remix/codec/internal/bzip2dec"
)

// A bzip2 stream is a header ("BZh" and the block size digit), blocks that
// each start with a 48-bit magic, and the 48-bit end-of-stream magic with
// the stream CRC. None of it is byte aligned and nothing records where a
// block ends: only Huffman-decoding a block finds its end. But blocks are
// independent, so this reader decodes them in parallel as lbzip2 does:
//
//   - On the caller's goroutine, a scanner reads the stream and looks for
//     both magics at every bit offset. Each stretch between two magics is
//     a candidate block, copied and handed to a pool of GOMAXPROCS workers
//     (internal/ordered). The scan costs about 2 ns per compressed byte
//     (profiled on the lab's dracut image: 0.06 s of 36 MiB). Finding the
//     ends by Huffman-decoding on the caller's goroutine instead, and
//     handing the symbols on, would put a quarter to a third of the whole
//     decode (the profile's share of the symbol stage) on one core.
//   - A worker decodes its block completely (bzip2dec: Huffman, MTF, RLE2,
//     inverse BWT) into the bytes before the final run-length stage.
//   - The caller's goroutine takes the blocks in order, checks that each
//     ends exactly where the next magic starts, expands the final runs
//     (RLE1) straight into the caller's buffer and checks the block CRC and,
//     at the end, the stream CRC.
//
// A magic may also occur inside block data (about once in 2^48 bits). The
// worker of the block it cuts short reports bzip2dec.ErrShort; the block
// is then decoded again on the caller's goroutine with the following
// stretches appended, at least doubling its bytes each time, so planted
// magics cost a few decodes rather than one each. Stretches past the
// block's true end are blocks of their own and are taken next. An
// end-of-stream magic stops the scanner, which reads the stream exactly up
// to the byte holding the stream CRC's last bit, as the kernel's bunzip2
// does; should it have been a false one, the scanner goes on.
//
// Memory: at most bzInFlight stretches per worker are submitted at a
// time, each with its compressed bytes and an output of the block size;
// each worker has the inverse BWT's two vectors, 8 bytes per byte of
// block; the scanner holds at most one stretch. For 900k blocks and two
// workers that is about 4 × (0.3 + 0.9) MiB + 2 × 7.2 MiB, some 20 MiB
// (inspect of the lab's dracut bzip2 image peaks at about 35 MiB RSS).

const (
	bzBlockMagic = 0x314159265359
	bzFinalMagic = 0x177245385090

	// bzMaxSegment bounds the compressed bytes between two magics. A
	// block has at most two symbols of at most 20 bits per byte of a
	// 900 kB block, its tables and selectors: under 4.6 MB. Only a
	// contrived stream (code lengths going up and down without end) could
	// be longer; it is refused.
	bzMaxSegment = 8 << 20
	// bzPeek is how much the scanner asks the source for at a time.
	bzPeek = 64 << 10
)

// bzFilter has a bit set for each 16-bit value that bytes 1 and 2 of a
// 64-bit window hold when a magic starts in its first byte. It is computed
// once and never written again.
var bzFilter = func() *[1 << 16 / 64]uint64 {
	f := new([1 << 16 / 64]uint64)
	for _, m := range []uint64{bzBlockMagic, bzFinalMagic} {
		for s := range 8 {
			v := uint16(m << (16 - s) >> 40)
			f[v>>6] |= 1 << (v & 63)
		}
	}
	return f
}()

// bzJob is one candidate block: the compressed bytes from the byte holding
// its magic to the byte holding the next magic's first bit, then padding.
type bzJob struct {
	in    []byte
	off   int64 // the stream offset of in[0]
	magic int64 // the bit offset of the block's magic in the stream
	end   int64 // the bit offset of the next magic
	out   []byte
	blk   bzip2dec.Block
	err   error
}

type bzip2Reader struct {
	cur       *cursor
	blockSize int
	workers   int
	pool      *ordered.Pool[*bzJob]
	decs      []*bzip2dec.Decoder // each worker's
	sync      *bzip2dec.Decoder   // for blocks decoded again after a false magic
	free      []*bzJob
	back      []*bzJob // decoded stretches to take before the pool's

	// the scanner
	buf      []byte // stream bytes from offset base; those from consumed on are only peeked
	base     int64
	consumed int64 // bytes of the stream read from the source
	scanned  int64 // the next byte offset where a magic may start
	minBit   int64 // magics before this bit are not looked for
	segStart int64 // bit offset of the current block's magic, -1 before the first
	eos      int64 // bit offset of the end-of-stream magic found, -1 while scanning
	scanErr  error
	// fakes are bit offsets that tests make the scanner take for magics
	// (as if the magic occurred in block data), in order.
	fakes []bzFake

	// the blocks in order
	job       *bzJob // the block being expanded
	un        bzip2dec.Unrun
	crc       uint32
	streamCRC uint32
	err       error
}

// bzip2: magic "BZh" (then the block size digit). Read only.
func bzip2Format() format {
	return format{
		codec:   Bzip2,
		aliases: []string{"bz2"},
		magics:  []string{"BZh"},
		open:    func(s *stream, _ limits, _ *Decoders) error { return s.openBzip2() },
	}
}

func (s *stream) openBzip2() error {
	var h [4]byte
	if err := s.cur.readFull(h[:]); err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if string(h[:3]) != "BZh" || h[3] < '1' || h[3] > '9' {
		return errors.New("not a bzip2 stream (bad magic)")
	}
	workers := runtime.GOMAXPROCS(0)
	z := &bzip2Reader{
		cur:       s.cur,
		blockSize: 100 * 1000 * int(h[3]-'0'),
		workers:   workers,
		pool:      ordered.New[*bzJob](context.Background(), workers),
		decs:      make([]*bzip2dec.Decoder, workers),
		base:      4, consumed: 4, scanned: 4, minBit: 32,
		segStart: -1, eos: -1,
	}
	s.dec = z
	s.release = func() { z.pool.Close() }
	return nil
}

// bzInFlight is how many candidate blocks may be submitted and not yet
// taken, per worker.
const bzInFlight = 2

func (z *bzip2Reader) Read(p []byte) (int, error) {
	for z.err == nil {
		if z.job != nil {
			n := z.un.Read(p)
			if n > 0 {
				z.crc = bzip2dec.UpdateCRC(z.crc, p[:n])
				return n, nil
			}
			if len(p) == 0 {
				return 0, nil
			}
			j := z.job
			z.job = nil
			if got := ^z.crc; got != j.blk.CRC {
				z.err = fmt.Errorf("block at %s: CRC %08x, stored %08x", bitPos(j.magic), got, j.blk.CRC)
				break
			}
			z.streamCRC = (z.streamCRC<<1 | z.streamCRC>>31) ^ j.blk.CRC
			z.free = append(z.free, j)
			continue
		}
		j, err := z.nextBlock()
		switch {
		case err != nil:
			z.err = err
		case j == nil:
			z.err = z.finish()
		default:
			z.job = j
			z.un.Reset(j.blk.Data)
			z.crc = 0xffffffff
		}
	}
	return 0, z.err
}

// bitPos names a bit offset in the stream.
func bitPos(bit int64) string { return fmt.Sprintf("byte %d bit %d", bit>>3, bit&7) }

// finish checks the stream CRC after the end-of-stream magic.
func (z *bzip2Reader) finish() error {
	var w [8]byte
	i := (z.eos+48)>>3 - z.base
	copy(w[:], z.buf[i:z.consumed-z.base])
	v := binary.BigEndian.Uint64(w[:]) << ((z.eos + 48) & 7)
	if got := uint32(v >> 32); got != z.streamCRC {
		return fmt.Errorf("stream CRC %08x, combined from the blocks %08x", got, z.streamCRC)
	}
	return io.EOF
}

// nextBlock returns the next decoded block, or nil at the end of the
// stream.
func (z *bzip2Reader) nextBlock() (*bzJob, error) {
	j, err := z.take()
	if j == nil || err != nil {
		return nil, err
	}
	for j.err == bzip2dec.ErrShort {
		if err := z.extend(j); err != nil {
			return nil, err
		}
	}
	if j.err != nil {
		return nil, fmt.Errorf("block at %s: %w", bitPos(j.magic), j.err)
	}
	if end := j.off*8 + int64(j.blk.End); end != j.end {
		return nil, fmt.Errorf("bad block magic at %s", bitPos(end))
	}
	return j, nil
}

// extend handles a block cut short by a magic in its data: it appends the
// following stretches, at least doubling the block's bytes (so that many
// false magics cost a few decodes, not one each), and decodes it again on
// this goroutine. The stretches past the block's true end are decoded
// blocks of their own and go back to be taken next.
func (z *bzip2Reader) extend(j *bzJob) error {
	var group []*bzJob
	size := j.end - j.magic
	for want := 2 * size; size < want; {
		next, err := z.take()
		if err != nil {
			return err
		}
		if next == nil {
			if z.eos < 0 {
				break
			}
			// The end-of-stream magic was in the block's data.
			z.eos = -1
			continue
		}
		group = append(group, next)
		size += next.end - next.magic
		if size > 8*bzMaxSegment {
			return fmt.Errorf("block at %s: no block boundary within %d bytes", bitPos(j.magic), bzMaxSegment)
		}
	}
	if len(group) == 0 {
		return fmt.Errorf("block at %s: %w", bitPos(j.magic), io.ErrUnexpectedEOF)
	}
	last := group[len(group)-1]
	n := int(last.off - j.off)
	in := make([]byte, n+len(last.in))
	copy(in, j.in[:j.end>>3-j.off+1])
	for _, g := range group {
		copy(in[g.off-j.off:], g.in[:len(g.in)-bzip2dec.Padding])
	}
	j.in, j.end = in, last.end
	if z.sync == nil {
		z.sync = new(bzip2dec.Decoder)
	}
	z.run(z.sync, j)
	if j.err != nil {
		z.free = append(z.free, group...)
		return nil
	}
	end := j.off*8 + int64(j.blk.End)
	for i, g := range group {
		if g.magic == end {
			z.back = append(group[i:len(group):len(group)], z.back...)
			z.free = append(z.free, group[:i]...)
			j.end = end
			return nil
		}
	}
	z.free = append(z.free, group...)
	return nil
}

// take returns the result of the next stretch, submitting more first; nil
// once the end-of-stream magic is reached and everything before it taken.
func (z *bzip2Reader) take() (*bzJob, error) {
	if len(z.back) > 0 {
		j := z.back[0]
		z.back = z.back[1:]
		return j, nil
	}
	for z.scanErr == nil && z.eos < 0 && z.pool.Pending() < bzInFlight*z.workers {
		j, err := z.scan()
		if err != nil {
			z.scanErr = err
			break
		}
		if j == nil {
			break
		}
		if err := z.pool.Submit(z.decode(j)); err != nil {
			return nil, err
		}
	}
	if z.pool.Pending() > 0 {
		return z.pool.Next()
	}
	return nil, z.scanErr
}

// decode is the job of one stretch.
func (z *bzip2Reader) decode(j *bzJob) ordered.Func[*bzJob] {
	return func(_ context.Context, worker int) (*bzJob, error) {
		d := z.decs[worker]
		if d == nil {
			d = new(bzip2dec.Decoder)
			z.decs[worker] = d
		}
		z.run(d, j)
		return j, nil
	}
}

func (z *bzip2Reader) run(d *bzip2dec.Decoder, j *bzJob) {
	if cap(j.out) < z.blockSize {
		j.out = make([]byte, z.blockSize)
	}
	j.blk, j.err = d.Decode(j.in, int(j.magic+48-j.off*8), int(j.end-j.off*8), z.blockSize, j.out[:z.blockSize])
}

// scan reads on to the next magic and returns the stretch from the
// current block's magic to it, or nil at an end-of-stream magic.
func (z *bzip2Reader) scan() (*bzJob, error) {
	for {
		bit, final, err := z.findMagic()
		if err != nil {
			return nil, err
		}
		if z.segStart < 0 && bit != 32 {
			return nil, errors.New("bad block magic at byte 4")
		}
		var j *bzJob
		if z.segStart >= 0 {
			j = z.cut(z.segStart, bit)
		}
		z.segStart = bit
		z.minBit = bit + 48
		if final {
			z.minBit = bit + 1 // should it be a false one
			if err := z.readTo((bit + 80 + 7) >> 3); err != nil {
				return nil, err
			}
			z.eos = bit
		}
		if j != nil || final {
			return j, nil
		}
	}
}

// cut copies the stretch from bit from to bit to into a job.
func (z *bzip2Reader) cut(from, to int64) *bzJob {
	var j *bzJob
	if n := len(z.free); n > 0 {
		j, z.free = z.free[n-1], z.free[:n-1]
	} else {
		j = new(bzJob)
	}
	lo, hi := from>>3-z.base, (to+7)>>3-z.base
	n := int(hi-lo) + bzip2dec.Padding
	if cap(j.in) < n {
		j.in = make([]byte, n, n+n/4)
	}
	j.in = j.in[:n]
	clear(j.in[copy(j.in, z.buf[lo:hi]):])
	j.off, j.magic, j.end, j.err = from>>3, from, to, nil
	return j
}

// findMagic returns the bit offset of the next magic at or after minBit,
// and whether it is the end-of-stream one.
func (z *bzip2Reader) findMagic() (int64, bool, error) {
	for {
		buf := z.buf
		for k := z.scanned - z.base; k+8 <= int64(len(buf)); k++ {
			v := uint16(buf[k+1])<<8 | uint16(buf[k+2])
			if bzFilter[v>>6]&(1<<(v&63)) == 0 {
				continue
			}
			w := binary.BigEndian.Uint64(buf[k:])
			for s := int64(0); s < 8; s++ {
				m := w >> (16 - s) & (1<<48 - 1)
				bit := (z.base+k)*8 + s
				if (m == bzBlockMagic || m == bzFinalMagic) && bit >= z.minBit {
					if f, ok := z.fake(bit); ok {
						return f.bit, f.final, nil
					}
					z.scanned = z.base + k
					return bit, m == bzFinalMagic, nil
				}
			}
		}
		z.scanned = max(z.scanned, z.base+int64(len(buf))-7)
		if z.segStart < 0 && z.scanned > 4 {
			return 0, false, errors.New("bad block magic at byte 4")
		}
		if z.segStart >= 0 && z.scanned-z.segStart>>3 > bzMaxSegment {
			return 0, false, fmt.Errorf("no block boundary within %d bytes after the block at %s", bzMaxSegment, bitPos(z.segStart))
		}
		if err := z.fill(); err != nil {
			return 0, false, err
		}
	}
}

// bzFake is a false magic a test plants.
type bzFake struct {
	bit   int64
	final bool
}

// fake returns the first planted magic before bit, if there is one.
func (z *bzip2Reader) fake(bit int64) (bzFake, bool) {
	for len(z.fakes) > 0 && z.fakes[0].bit < bit {
		f := z.fakes[0]
		z.fakes = z.fakes[1:]
		if f.bit >= z.minBit {
			z.scanned = f.bit >> 3
			return f, true
		}
	}
	return bzFake{}, false
}

// fill consumes the bytes scanned and peeks at more.
func (z *bzip2Reader) fill() error {
	if err := z.readTo(z.scanned); err != nil {
		return err
	}
	// Drop what no stretch needs any more.
	keep := z.consumed
	if z.segStart >= 0 {
		keep = min(keep, z.segStart>>3)
	}
	if d := keep - z.base; d > 0 && d >= int64(len(z.buf))/2 {
		z.buf = z.buf[:copy(z.buf, z.buf[d:])]
		z.base = keep
	}
	z.buf = z.buf[:z.consumed-z.base]
	b, err := z.cur.Peek(bzPeek)
	z.buf = append(z.buf, b...)
	if z.base+int64(len(z.buf)) >= z.scanned+8 {
		return nil
	}
	// Too few bytes for a magic: the source has ended.
	if err == nil || err == io.EOF || err == bufio.ErrBufferFull {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readTo consumes the stream up to offset end, which fill has peeked.
func (z *bzip2Reader) readTo(end int64) error {
	for z.consumed < end {
		if have := z.base + int64(len(z.buf)); end > have {
			if err := z.fill(); err != nil {
				return err
			}
			if z.base+int64(len(z.buf)) <= have {
				return io.ErrUnexpectedEOF
			}
			continue
		}
		n, err := z.cur.Read(z.buf[z.consumed-z.base : end-z.base])
		z.consumed += int64(n)
		if n == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
