// Package bzip2dec decodes one bzip2 block that starts at a given bit
// offset: the Huffman-coded, move-to-front and run-length (RLE2) coded
// symbols up to the end-of-block symbol, then the inverse Burrows–Wheeler
// transform. It returns the block's bytes before the final run-length
// stage (RLE1), which Unrun expands, and the stored block CRC, which
// the caller checks over the expanded bytes with CRC. Blocks are
// independent, so a caller can decode several at once, one Decoder each.
//
// Every check of the kernel's bunzip2 and of compress/bzip2 is kept:
// randomised blocks, selectors out of range, code lengths out of 1..20,
// over-subscribed codes, invalid codes, runs past the block size, blocks
// larger than declared, the origin pointer out of range.
package bzip2dec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/initrd-remix/initrd-remix/remix/internal/hugemem"
)

// Padding is how many bytes must follow the last byte of a block's data
// in the slice handed to Decode (any value; zeros will do): the Huffman
// decoder reads whole 64-bit words and checks its position once per group
// of 50 symbols.
const Padding = 160

// ErrShort is returned when the block's data ends (at the limit handed to
// Decode) before its end-of-block symbol.
var ErrShort = errors.New("block data ends before the end of the block")

const (
	maxCodeLen = 20
	fastBits   = 11
	maxGroups  = 6
	maxAlpha   = 258
	groupSize  = 50
)

// table is one canonical Huffman code. fast maps the next fastBits bits to
// symbol<<5 | length for codes of at most fastBits bits (0: longer or
// invalid); longer codes are found from end[l], the first code value past
// the codes of length l, and first[l], base[l].
type table struct {
	fast  [1 << fastBits]uint16
	end   [maxCodeLen + 1]int32
	first [maxCodeLen + 1]int32
	base  [maxCodeLen + 1]int32
	perm  [maxAlpha]uint16
}

// Decoder holds the buffers of one block decode; reuse it from block to
// block. It is not safe for concurrent use.
type Decoder struct {
	slot   slot
	sel    []uint8
	tables [maxGroups]table
}

// slot holds the inverse BWT's vectors.
type slot struct{ tt, lf []uint32 }

// prepared is a block whose symbols are decoded, before the inverse BWT.
type prepared struct {
	tt, lf  []uint32
	counts  *[256]int32
	origPtr int
	blk     Block
}

// Block is a decoded block.
type Block struct {
	Data []byte // the bytes before RLE1 expansion, in the slice given to Decode
	CRC  uint32 // the stored CRC of the expanded bytes
	End  int    // the bit offset just after the end-of-block symbol
}

// bitReader reads bits, most significant first, with bounds checks
// against limit; for the block's header, where speed does not matter.
type bitReader struct {
	in    []byte
	pos   int
	limit int
}

func (r *bitReader) bits(n int) (uint32, error) {
	if r.pos+n > r.limit {
		return 0, ErrShort
	}
	v := binary.BigEndian.Uint64(r.in[r.pos>>3:]) << (r.pos & 7)
	r.pos += n
	return uint32(v >> (64 - n)), nil
}

// Decode decodes the block whose data, after the 48-bit block magic,
// starts at bit start of in and must end by bit limit. in must hold
// Padding bytes after byte (limit+7)/8. blockSize is the stream header's
// (100000 to 900000); out, at least blockSize bytes, receives the data.
func (d *Decoder) Decode(in []byte, start, limit, blockSize int, out []byte) (Block, error) {
	p, err := d.prepare(in, start, limit, blockSize, out)
	if err != nil {
		return Block{}, err
	}
	scatter(p.tt, p.lf, p.counts)
	walk(p.tt, p.lf, p.origPtr, p.blk.Data)
	return p.blk, nil
}

// prepare reads a block's header and symbols.
func (d *Decoder) prepare(in []byte, start, limit, blockSize int, out []byte) (prepared, error) {
	if start < 0 || limit < start || (limit+7)/8+Padding > len(in) {
		return prepared{}, fmt.Errorf("bzip2dec: bad bounds %d..%d of %d bytes", start, limit, len(in))
	}
	if len(out) < blockSize {
		return prepared{}, fmt.Errorf("bzip2dec: output buffer of %d bytes for blocks of %d", len(out), blockSize)
	}
	r := bitReader{in: in, pos: start, limit: limit}
	crc, err := r.bits(32)
	if err != nil {
		return prepared{}, err
	}
	rnd, err := r.bits(1)
	if err != nil {
		return prepared{}, err
	}
	if rnd != 0 {
		return prepared{}, errors.New("randomised block (deprecated, unsupported by the kernel)")
	}
	origPtr, err := r.bits(24)
	if err != nil {
		return prepared{}, err
	}
	var mtf [256]byte
	numSymbols, err := readUsed(&r, &mtf)
	if err != nil {
		return prepared{}, err
	}
	groups, err := r.bits(3)
	if err != nil {
		return prepared{}, err
	}
	if groups < 2 || groups > maxGroups {
		return prepared{}, fmt.Errorf("%d Huffman tables (want 2 to 6)", groups)
	}
	nsel, err := r.bits(15)
	if err != nil {
		return prepared{}, err
	}
	if nsel == 0 {
		return prepared{}, errors.New("no table selectors")
	}
	if err := d.readSelectors(&r, int(nsel), int(groups)); err != nil {
		return prepared{}, err
	}
	alpha := numSymbols + 2 // plus RUNA and RUNB; the last one is end of block
	var lengths [maxAlpha]uint8
	for t := 0; t < int(groups); t++ {
		if err := readLengths(&r, lengths[:alpha]); err != nil {
			return prepared{}, err
		}
		if err := d.tables[t].build(lengths[:alpha]); err != nil {
			return prepared{}, err
		}
	}
	sl := &d.slot
	if cap(sl.tt) < blockSize {
		sl.tt, sl.lf = allocTables(blockSize)
	}
	tt := sl.tt[:blockSize]
	n, end, counts, err := d.symbols(in, r.pos, limit, tt, &mtf, alpha, blockSize)
	if err != nil {
		return prepared{}, err
	}
	if int(origPtr) >= n {
		return prepared{}, errors.New("BWT origin pointer out of range")
	}
	return prepared{tt: tt[:n], lf: sl.lf[:n], counts: counts, origPtr: int(origPtr),
		blk: Block{Data: out[:n], CRC: crc, End: end}}, nil
}

// allocTables returns tt and lf of n entries each, in one allocation with
// huge pages where the system has them: the inverse BWT's random loads
// over 7 MiB missed the TLB as well as the cache with 4 KiB pages.
func allocTables(n int) (tt, lf []uint32) {
	b := hugemem.Alloc(8 * n)
	all := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), 2*n)
	return all[:n:n], all[n:]
}

// readUsed reads the two-level bitmap of the bytes the block uses and sets
// up the move-to-front list with them, in order.
func readUsed(r *bitReader, mtf *[256]byte) (int, error) {
	used, err := r.bits(16)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < 16; i++ {
		if used&(1<<(15-i)) == 0 {
			continue
		}
		m, err := r.bits(16)
		if err != nil {
			return 0, err
		}
		for j := 0; j < 16; j++ {
			if m&(1<<(15-j)) != 0 {
				mtf[n] = byte(i*16 + j)
				n++
			}
		}
	}
	if n == 0 {
		return 0, errors.New("block uses no symbols")
	}
	return n, nil
}

// readSelectors reads the move-to-front coded unary table selectors.
func (d *Decoder) readSelectors(r *bitReader, nsel, groups int) error {
	if cap(d.sel) < nsel {
		d.sel = make([]uint8, nsel)
	}
	d.sel = d.sel[:nsel]
	mtf := [maxGroups]uint8{0, 1, 2, 3, 4, 5}
	for i := range d.sel {
		c := 0
		for {
			b, err := r.bits(1)
			if err != nil {
				return err
			}
			if b == 0 {
				break
			}
			c++
			if c >= groups {
				return errors.New("table selector out of range")
			}
		}
		v := mtf[c]
		copy(mtf[1:c+1], mtf[:c])
		mtf[0] = v
		d.sel[i] = v
	}
	return nil
}

// readLengths reads one table's delta-coded code lengths.
func readLengths(r *bitReader, lengths []uint8) error {
	l, err := r.bits(5)
	if err != nil {
		return err
	}
	length := int(l)
	for s := range lengths {
		for {
			if length < 1 || length > maxCodeLen {
				return errors.New("Huffman code length out of range")
			}
			more, err := r.bits(1)
			if err != nil {
				return err
			}
			if more == 0 {
				break
			}
			down, err := r.bits(1)
			if err != nil {
				return err
			}
			if down != 0 {
				length--
			} else {
				length++
			}
		}
		lengths[s] = uint8(length)
	}
	return nil
}

// build sets up canonical decoding (codes assigned in order of length,
// then symbol) and refuses over-subscribed lengths, which describe no
// prefix code. An incomplete code is accepted, as by bunzip2; its unused
// code values are refused when met.
func (t *table) build(lengths []uint8) error {
	var count [maxCodeLen + 1]int32
	kraft := 0
	for _, l := range lengths {
		count[l]++
		kraft += 1 << (maxCodeLen - l)
	}
	if kraft > 1<<maxCodeLen {
		return errors.New("over-subscribed Huffman code lengths")
	}
	code, index := int32(0), int32(0)
	for l := 1; l <= maxCodeLen; l++ {
		t.first[l] = code
		t.base[l] = index
		code += count[l]
		index += count[l]
		t.end[l] = code
		code <<= 1
	}
	next := t.base
	t.fast = [1 << fastBits]uint16{}
	for l := 1; l <= maxCodeLen; l++ {
		for s, sl := range lengths {
			if int(sl) != l {
				continue
			}
			i := next[l]
			next[l]++
			t.perm[i] = uint16(s)
			if l <= fastBits {
				c := int(t.first[l] + i - t.base[l])
				lo, hi := c<<(fastBits-l), (c+1)<<(fastBits-l)
				e := uint16(s)<<5 | uint16(l)
				for j := lo; j < hi; j++ {
					t.fast[j] = e
				}
			}
		}
	}
	return nil
}

// symbols decodes the Huffman-coded symbols from bit pos to the end of
// block, undoing the move-to-front and RLE2 coding into the low bytes of
// tt, and returns how many bytes it wrote, the bit after the end-of-block
// symbol and the count of each byte.
func (d *Decoder) symbols(in []byte, pos, limit int, tt []uint32, mtf *[256]byte, alpha, blockSize int) (int, int, *[256]int32, error) {
	counts := new([256]int32)
	eob := alpha - 1
	out, repeat, power := 0, 0, 0
	sel := 0
	for {
		if sel >= len(d.sel) {
			return 0, 0, nil, errors.New("more symbols than table selectors")
		}
		if pos > limit {
			return 0, 0, nil, ErrShort
		}
		t := &d.tables[d.sel[sel]]
		sel++
		for left := groupSize; left > 0; left-- {
			v := binary.BigEndian.Uint64(in[pos>>3:]) << (pos & 7)
			var sym int
			if e := t.fast[v>>(64-fastBits)]; e != 0 {
				sym = int(e >> 5)
				pos += int(e & 31)
			} else {
				s, n := t.slow(v)
				if n == 0 {
					return 0, 0, nil, short(pos+maxCodeLen, limit, errors.New("invalid Huffman code"))
				}
				sym = s
				pos += n
			}
			if sym < 2 { // RUNA, RUNB: a run of the front byte, in bijective base 2
				if repeat == 0 {
					power = 1
				}
				repeat += power << sym
				power <<= 1
				if repeat > 2<<20 {
					return 0, 0, nil, short(pos, limit, errors.New("run too long"))
				}
				continue
			}
			if repeat > 0 {
				if repeat > blockSize-out {
					return 0, 0, nil, short(pos, limit, errors.New("run past the end of the block"))
				}
				b := mtf[0]
				counts[b] += int32(repeat)
				run := tt[out : out+repeat]
				for i := range run {
					run[i] = uint32(b)
				}
				out += repeat
				repeat = 0
			}
			if sym == eob {
				if pos > limit {
					return 0, 0, nil, ErrShort
				}
				return out, pos, counts, nil
			}
			if out >= blockSize {
				return 0, 0, nil, short(pos, limit, errors.New("block larger than its declared size"))
			}
			// Move to front: sym-1 is the byte's position in the list.
			i := (sym - 1) & 255
			b := mtf[i]
			if i < 8 {
				for ; i > 0; i-- {
					mtf[i] = mtf[i-1]
				}
			} else {
				copy(mtf[1:i+1], mtf[:i])
			}
			mtf[0] = b
			tt[out] = uint32(b)
			counts[b]++
			out++
		}
	}
}

// short returns ErrShort instead of err when the symbol that caused err
// took bits past limit: they belong to what follows the data, so err may
// be an artefact of the limit.
func short(pos, limit int, err error) error {
	if pos > limit {
		return ErrShort
	}
	return err
}

// slow decodes a code longer than fastBits from the top bits of v; it
// returns a length of 0 for a code value no symbol has.
func (t *table) slow(v uint64) (int, int) {
	for l := fastBits + 1; l <= maxCodeLen; l++ {
		c := int32(v >> (64 - l))
		if c < t.end[l] {
			if c < t.first[l] {
				return 0, 0
			}
			return int(t.perm[t.base[l]+c-t.first[l]]), l
		}
	}
	return 0, 0
}

// The inverse BWT. tt's low bytes are the last column L. The forward walk
// follows T, where T[LF(i)] = i, from T[origPtr]: each step is a load that
// depends on the one before and misses the cache, so one walk is bound by
// memory latency. The output is a cycle through origPtr, so it can also be
// walked backwards from its end, following LF from origPtr. Both walks go
// at once, each over half the output, keeping two loads in flight: about
// twice as fast as one walk. (Walking two blocks at once, four loads,
// was measured slower: twice the vectors miss the cache more.)

// scatter puts T into the high bits of tt and LF, with L, into lf.
func scatter(tt, lf []uint32, counts *[256]int32) {
	var next [256]int32
	sum := int32(0)
	for b, c := range counts {
		next[b] = sum
		sum += c
	}
	lf = lf[:len(tt)]
	for i := range tt {
		b := tt[i] & 0xff
		n := next[b]
		tt[n] |= uint32(i) << 8
		lf[i] = uint32(n)<<8 | b
		next[b] = n + 1
	}
}

// walk writes the block's bytes into out, len(tt) of them.
func walk(tt, lf []uint32, origPtr int, out []byte) {
	n := len(tt)
	out = out[:n]
	lf = lf[:n]
	p := tt[origPtr] >> 8
	q := uint32(origPtr)
	half := n / 2
	for k := 0; k < half; k++ {
		x := tt[p]
		y := lf[q]
		out[k] = byte(x)
		out[n-1-k] = byte(y)
		p = x >> 8
		q = y >> 8
	}
	if n&1 != 0 {
		out[half] = byte(tt[p])
	}
}
