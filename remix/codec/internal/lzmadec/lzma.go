// Package lzmadec decodes LZMA data: raw LZMA in the legacy .lzma format and
// LZMA2 chunks as xz blocks carry them. Its one job is to turn those bytes
// back into what was compressed, fast, consuming exactly the stream's bytes
// and failing (never panicking or looping) on corrupt input.
//
// The range decoder works on byte slices: an LZMA2 chunk's compressed data
// is read whole (its size is in the chunk header), a .lzma stream is decoded
// from a peeked window of its source and only what was used is discarded.
// A symbol reads at most 21 bytes, so the hot loop runs while more than
// margin bytes are left and finishes a buffer on a zero-padded copy of its
// tail, where overrunning the real bytes is detected after each symbol.
package lzmadec

import (
	"errors"
	"fmt"
	"io"

	"github.com/initrd-remix/initrd-remix/remix/internal/hugemem"
)

const (
	numStates    = 12
	posStatesMax = 16
	// margin is more than the bytes one symbol can read (liblzma's
	// LZMA_IN_REQUIRED is 21).
	margin   = 32
	probInit = 1 << 10
	// minDict is the smallest dictionary allocated, as liblzma does.
	minDict = 4096
	// slack is the dictionary's room beyond maxDist (a multiple of 16).
	slack = 16
)

// ErrCorrupt is wrapped by the errors for data no encoder writes.
var ErrCorrupt = errors.New("corrupt LZMA data")

func corrupt(msg string) error { return fmt.Errorf("%w: %s", ErrCorrupt, msg) }

type lenCoder struct {
	choice  uint16
	choice2 uint16
	low     [posStatesMax][8]uint16
	mid     [posStatesMax][8]uint16
	high    [256]uint16
}

func (l *lenCoder) reset() {
	l.choice, l.choice2 = probInit, probInit
	for i := range l.low {
		fill(l.low[i][:])
		fill(l.mid[i][:])
	}
	fill(l.high[:])
}

// probs are the adaptive probabilities apart from the literal coder's. The
// arrays are sized to powers of two so masked indexes need no bounds check.
type probs struct {
	isMatch     [256]uint16 // state<<4 | posState
	isRep       [16]uint16
	isRepG0     [16]uint16
	isRepG1     [16]uint16
	isRepG2     [16]uint16
	isRep0Long  [256]uint16
	distSlot    [4][64]uint16
	distSpecial [128]uint16
	distAlign   [16]uint16
	matchLen    lenCoder
	repLen      lenCoder
}

func (p *probs) reset() {
	fill(p.isMatch[:])
	fill(p.isRep[:])
	fill(p.isRepG0[:])
	fill(p.isRepG1[:])
	fill(p.isRepG2[:])
	fill(p.isRep0Long[:])
	for i := range p.distSlot {
		fill(p.distSlot[i][:])
	}
	fill(p.distSpecial[:])
	fill(p.distAlign[:])
	p.matchLen.reset()
	p.repLen.reset()
}

func fill(s []uint16) {
	for i := range s {
		s[i] = probInit
	}
}

// Props are the literal context bits, literal position bits and position
// bits of an LZMA stream.
type Props struct{ LC, LP, PB int }

// ParseProps decodes the properties byte (lc + 9*(lp + 5*pb)).
func ParseProps(b byte) (Props, error) {
	if b >= 9*5*5 {
		return Props{}, corrupt(fmt.Sprintf("properties byte %#x", b))
	}
	d := int(b)
	return Props{LC: d % 9, LP: d / 9 % 5, PB: d / 45}, nil
}

// decoder is the LZMA state shared by the .lzma and LZMA2 readers: the
// window (dictionary), the range coder, the model and a match cut short
// by the end of the output room.
type decoder struct {
	dict  []byte // a multiple of 16 bytes, so dpos&15 is the position mod 16
	dpos  int    // next write position in dict
	start int    // dict[start:dpos] is decoded and not yet read
	full  int    // dict[:full] holds data (len(dict) once it wrapped)
	// maxDist bounds distances: the dictionary size, below len(dict).
	maxDist int

	rng, code              uint32
	state                  uint32
	rep0, rep1, rep2, rep3 uint32
	pending                int   // bytes of the last match still to copy
	ended                  bool  // the end marker was decoded
	eof                    bool  // the stream is complete and checked
	err                    error // sticky

	lc, lpMask, pbMask uint
	lit                []uint16
	p                  probs

	in tail // the zero-padded copy of an input buffer's last bytes
}

type tail struct {
	buf [2 * margin]byte
}

// alloc sets up a dictionary of at least n bytes (rounded up to 16).
func (d *decoder) alloc(n int64) {
	n = max(n, minDict)
	n = (n + 15) &^ 15
	d.maxDist = int(n)
	// The slack lets short matches be copied in whole words that may
	// write up to 7 bytes past their end: bytes that far back are beyond
	// every distance allowed.
	n += slack
	if int64(cap(d.dict)) >= n {
		d.dict = d.dict[:n]
	} else {
		// First touches of fresh memory dominate on some machines:
		// huge pages take one fault per 2 MiB.
		d.dict = hugemem.Alloc(int(n))
	}
	d.resetDict()
}

func (d *decoder) resetDict() { d.dpos, d.start, d.full = 0, 0, 0 }

func (d *decoder) setProps(p Props) {
	d.lc = uint(p.LC)
	d.lpMask = 1<<uint(p.LP) - 1
	d.pbMask = 1<<uint(p.PB) - 1
	// 0x100 more: the matched literal's last look-ahead reads past the
	// last context's probabilities.
	n := 0x300<<uint(p.LC+p.LP) + 0x100
	if cap(d.lit) >= n {
		d.lit = d.lit[:n]
	} else {
		d.lit = make([]uint16, n)
	}
}

// resetState resets the model (probabilities, state, distances).
func (d *decoder) resetState() {
	fill(d.lit)
	d.p.reset()
	d.state = 0
	d.rep0, d.rep1, d.rep2, d.rep3 = 0, 0, 0, 0
	d.pending = 0
}

// initRC starts the range decoder on 5 bytes.
func (d *decoder) initRC(b []byte) error {
	if b[0] != 0 {
		return corrupt("range coder does not start with a zero byte")
	}
	d.rng = 0xffffffff
	d.code = uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])
	if d.code == d.rng {
		return corrupt("range coder initial code")
	}
	return nil
}

// wrap makes room once everything in the dictionary was read.
func (d *decoder) wrap() {
	if d.dpos == len(d.dict) && d.start == d.dpos {
		d.dpos, d.start, d.full = 0, 0, len(d.dict)
	}
}

// read hands out decoded bytes, calling step (given len(p)) to decode
// more; the readers' Read.
func (d *decoder) read(p []byte, step func(int) error) (int, error) {
	for {
		if d.start < d.dpos {
			return d.readOut(p), nil
		}
		if d.err != nil {
			return 0, d.err
		}
		if d.eof {
			return 0, io.EOF
		}
		if err := step(len(p)); err != nil {
			d.err = err
		}
	}
}

// readOut copies decoded bytes into p.
func (d *decoder) readOut(p []byte) int {
	n := copy(p, d.dict[d.start:d.dpos])
	d.start += n
	return n
}

// decodeBuf decodes from buf[pos:], of which end bytes are real, until the
// output reaches outLimit or the end marker; it switches to the padded tail
// copy when fewer than margin bytes are left. It returns the new position
// in buf's coordinates; a position past end means the symbols needed more
// bytes than buf has.
func (d *decoder) decodeBuf(buf []byte, pos, end, outLimit int) (int, error) {
	if end-pos > margin {
		var err error
		pos, err = d.run(buf, pos, end-margin, outLimit)
		if err != nil || d.ended || d.dpos >= outLimit && d.pending == 0 {
			return pos, err
		}
		if d.dpos >= outLimit {
			return pos, nil
		}
	}
	// Fewer than margin bytes left: decode from a padded copy.
	n := copy(d.in.buf[:], buf[pos:end])
	clear(d.in.buf[n:])
	tp, err := d.run(d.in.buf[:], 0, n, outLimit)
	if err != nil {
		return pos + tp, err
	}
	return pos + tp, nil
}

// normalize reads the range coder's next byte if it needs one, as before
// a bit, at the end of a chunk or stream; false if buf has none.
func (d *decoder) normalize(buf []byte, pos int) (int, bool) {
	if d.rng < 1<<24 {
		if pos >= len(buf) {
			return pos, false
		}
		d.rng <<= 8
		d.code = d.code<<8 | uint32(buf[pos])
		pos++
	}
	return pos, true
}
