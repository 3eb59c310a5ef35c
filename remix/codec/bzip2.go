package codec

import (
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
)

// bzip2Walker delimits one bzip2 stream. Its end, the 48-bit end-of-stream
// magic and the stream CRC, is not byte aligned and can only be found by
// Huffman-decoding every block up to its end-of-block symbol. The walker
// does that (without the inverse BWT), so that compress/bzip2, which would
// otherwise read on into a concatenated stream or fail on the bytes after
// the stream, sees end of input exactly where the kernel's bunzip2 stops:
// after the byte holding the last bit of the stream CRC.
//
// The checks mirror compress/bzip2's, so the walker only rejects what the
// decoder would reject too, and they bound the work and the bytes one
// block can take (at most two symbols of at most 20 bits per byte of a
// block of at most 900 kB).
type bzip2Walker struct {
	state     int
	blockSize int
	acc       uint64 // bit accumulator, most significant bits first
	nacc      uint   // bits in acc
}

const (
	bzHeader = iota
	bzBlocks
	bzEnd
)

const (
	bzBlockMagic = 0x314159265359
	bzFinalMagic = 0x177245385090
	bzMaxCodeLen = 20
)

func (z *bzip2Walker) step(f *framer) (int64, error) {
	switch z.state {
	case bzHeader:
		h, err := f.take(4)
		if err != nil {
			return 0, fmt.Errorf("stream header: %w", err)
		}
		if string(h[:3]) != "BZh" || h[3] < '1' || h[3] > '9' {
			return 0, errors.New("not a bzip2 stream (bad magic)")
		}
		z.blockSize = 100 * 1000 * int(h[3]-'0')
		z.state = bzBlocks
		return 0, nil
	case bzBlocks:
		hi, err := z.bits(f, 24)
		if err != nil {
			return 0, err
		}
		lo, err := z.bits(f, 24)
		if err != nil {
			return 0, err
		}
		switch hi<<24 | lo {
		case bzBlockMagic:
			return 0, z.block(f)
		case bzFinalMagic:
			if _, err := z.bits(f, 32); err != nil { // stream CRC
				return 0, err
			}
			// The rest of the current byte is padding; nothing after
			// it belongs to the stream.
			z.state = bzEnd
			return 0, io.EOF
		}
		return 0, errors.New("bad block magic")
	}
	return 0, io.EOF
}

// bits reads n ≤ 32 bits, most significant first, taking whole bytes only
// when their bits are needed, as both bunzip2 and compress/bzip2 do.
func (z *bzip2Walker) bits(f *framer, n uint) (uint64, error) {
	for z.nacc < n {
		b, err := f.takeByte()
		if err != nil {
			return 0, fmt.Errorf("block data: %w", err)
		}
		z.acc = z.acc<<8 | uint64(b)
		z.nacc += 8
	}
	z.nacc -= n
	return z.acc >> z.nacc & (1<<n - 1), nil
}

func (z *bzip2Walker) bit(f *framer) (bool, error) {
	v, err := z.bits(f, 1)
	return v == 1, err
}

// bzTable is a canonical Huffman code: count[l] codes of length l, and the
// symbols sorted by (length, symbol), as bzip2 assigns its codes.
type bzTable struct {
	count [bzMaxCodeLen + 1]int
	sym   []uint16
}

func (z *bzip2Walker) block(f *framer) error {
	if _, err := z.bits(f, 32); err != nil { // block CRC
		return err
	}
	if rnd, err := z.bit(f); err != nil {
		return err
	} else if rnd {
		return errors.New("randomised block (deprecated, unsupported by the kernel)")
	}
	origPtr, err := z.bits(f, 24)
	if err != nil {
		return err
	}
	used, err := z.bits(f, 16)
	if err != nil {
		return err
	}
	numSymbols := 0
	for i := 0; i < 16; i++ {
		if used&(1<<(15-i)) == 0 {
			continue
		}
		m, err := z.bits(f, 16)
		if err != nil {
			return err
		}
		for ; m != 0; m &= m - 1 {
			numSymbols++
		}
	}
	if numSymbols == 0 {
		return errors.New("block uses no symbols")
	}
	groups, err := z.bits(f, 3)
	if err != nil {
		return err
	}
	if groups < 2 || groups > 6 {
		return fmt.Errorf("%d Huffman tables (want 2 to 6)", groups)
	}
	nsel, err := z.bits(f, 15)
	if err != nil {
		return err
	}
	if nsel == 0 {
		return errors.New("no table selectors")
	}
	// Selectors are move-to-front coded unary numbers.
	var mtf [6]uint8
	for i := range mtf {
		mtf[i] = uint8(i)
	}
	selectors := make([]uint8, nsel)
	for i := range selectors {
		c := 0
		for {
			b, err := z.bit(f)
			if err != nil {
				return err
			}
			if !b {
				break
			}
			c++
			if c >= int(groups) {
				return errors.New("table selector out of range")
			}
		}
		v := mtf[c]
		copy(mtf[1:c+1], mtf[:c])
		mtf[0] = v
		selectors[i] = v
	}
	alpha := numSymbols + 2 // plus RUNA and RUNB; the last one is end of block
	tables := make([]bzTable, groups)
	lengths := make([]uint8, alpha)
	for t := range tables {
		l, err := z.bits(f, 5)
		if err != nil {
			return err
		}
		length := int(l)
		for s := range lengths {
			for {
				if length < 1 || length > bzMaxCodeLen {
					return errors.New("Huffman code length out of range")
				}
				more, err := z.bit(f)
				if err != nil {
					return err
				}
				if !more {
					break
				}
				down, err := z.bit(f)
				if err != nil {
					return err
				}
				if down {
					length--
				} else {
					length++
				}
			}
			lengths[s] = uint8(length)
		}
		if err := tables[t].build(lengths); err != nil {
			return err
		}
	}

	// Decode symbols up to the end of block, with compress/bzip2's bounds.
	var (
		out, repeat, power int
		sel                = 0
		left               = 0 // symbols left with the current table
		tab                *bzTable
	)
	for {
		if left == 0 {
			if sel >= len(selectors) {
				return errors.New("more symbols than table selectors")
			}
			tab = &tables[selectors[sel]]
			sel++
			left = 50
		}
		left--
		v, err := z.decode(f, tab)
		if err != nil {
			return err
		}
		if v < 2 { // RUNA, RUNB: a run of the front symbol, in bijective base 2
			if repeat == 0 {
				power = 1
			}
			repeat += power << v
			power <<= 1
			if repeat > 2<<20 {
				return errors.New("run too long")
			}
			continue
		}
		if repeat > 0 {
			if repeat > z.blockSize-out {
				return errors.New("run past the end of the block")
			}
			out += repeat
			repeat = 0
		}
		if v == alpha-1 {
			break
		}
		if out >= z.blockSize {
			return errors.New("block larger than its declared size")
		}
		out++
	}
	if int(origPtr) >= out {
		return errors.New("BWT origin pointer out of range")
	}
	return nil
}

// build sets up canonical decoding and refuses over-subscribed lengths,
// which describe no prefix code.
func (t *bzTable) build(lengths []uint8) error {
	t.count = [bzMaxCodeLen + 1]int{}
	kraft := 0
	for _, l := range lengths {
		t.count[l]++
		kraft += 1 << (bzMaxCodeLen - l)
	}
	if kraft > 1<<bzMaxCodeLen {
		return errors.New("over-subscribed Huffman code lengths")
	}
	t.sym = t.sym[:0]
	for l := 1; l <= bzMaxCodeLen; l++ {
		for s, sl := range lengths {
			if int(sl) == l {
				t.sym = append(t.sym, uint16(s))
			}
		}
	}
	return nil
}

// decode reads one symbol bit by bit: at each length, the codes of that
// length are the count[l] values following the first code of the length.
func (z *bzip2Walker) decode(f *framer, t *bzTable) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= bzMaxCodeLen; l++ {
		b, err := z.bits(f, 1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		if n := t.count[l]; code-first < n {
			return int(t.sym[index+code-first]), nil
		} else {
			index += n
			first += n
		}
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("invalid Huffman code")
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
	s.fr = newFramer(s.cur, &bzip2Walker{})
	// The framer is an io.ByteReader, so the decoder takes bytes from it
	// one at a time and sees io.EOF right after the stream.
	s.dec = bzip2.NewReader(s.fr)
	return nil
}
