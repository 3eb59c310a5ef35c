// Package inflate decodes one raw DEFLATE stream (RFC 1951) fast and
// consumes exactly its bytes.
//
// It reads its input through Peek and Discard (a *bufio.Reader has both)
// instead of a byte at a time: the hot loop decodes from the peeked slice
// with a 64-bit bit buffer refilled eight bytes at a time, and only the
// bytes holding bits of the stream are discarded, so the source sits on the
// first byte after the final block when Read returns io.EOF (a gzip
// trailer, the next initrd segment).
//
// It accepts what zlib's inflate accepts: over-subscribed codes and
// incomplete ones (but for a single code of length one) are corrupt data,
// as are literal/length symbols 286 and 287, distance symbols 30 and 31,
// a distance reaching before the start of the stream, a stored block whose
// length does not match its complement, and a dynamic header with more
// than 286 literal/length or 30 distance codes.
package inflate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Source is the input: Peek(n) returns up to n buffered bytes (fewer only
// with an error, io.EOF at the end of input, or when n exceeds the
// buffer), Discard consumes them.
type Source interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// CorruptError reports invalid DEFLATE data at a bit offset of the stream.
type CorruptError struct {
	Bit    int64 // bits of the stream consumed before the problem
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt deflate data at byte %d (bit %d): %s", e.Bit/8, e.Bit%8, e.Reason)
}

const (
	windowSize = 32 << 10
	// outChunk is the decoded bytes produced between slides of the window.
	outChunk = 256 << 10
	// outSlack lets the fast loop copy matches eight bytes at a time past
	// their end.
	outSlack = 16
	// peekSize is the input asked for per refill of the input window.
	peekSize = 64 << 10
	// fastIn is the input bytes the fast loop needs left in its window:
	// one 8-byte refill per symbol pair, with room to spare.
	fastIn = 16
	// fastOut is the output room the fast loop needs: one longest match.
	fastOut     = maxMatch + outSlack
	maxMatch    = 258
	litlenBits  = 11 // main table index bits
	distBits    = 8
	maxCodeBits = 15
)

// Table entries (uint32): bits 0-7 the bits to consume (the code's length,
// or the main table's bits for a subtable link), bits 8-11 extra bits or a
// subtable's index bits, bits 12-15 the kind, bits 16-31 the value (a
// literal, a length or distance base, a subtable's offset).
const (
	kindLiteral = 1 << 12
	kindLength  = 2 << 12
	kindEnd     = 3 << 12
	kindSub     = 4 << 12
	kindInvalid = 5 << 12
	kindDist    = 6 << 12
	kindMask    = 0xf << 12
)

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clOrder     = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// Table sizes: the main table plus room for the subtables. A subtable
// covers one main-table prefix and holds at least two codes, at most
// 2^(15-main bits) entries: 143 of 16 for 286 literal/length symbols, 15
// of 128 for 30 distance symbols (the builder checks the bound anyway).
const (
	litlenTableSize = 1<<litlenBits + 143*16
	distTableSize   = 1<<distBits + 15*128
)

// Reader decodes one DEFLATE stream from a Source.
type Reader struct {
	src Source
	in  []byte // peeked input window
	ip  int    // next byte of in to load into the bit buffer
	eof bool   // in holds the last bytes of the source

	bitbuf uint64
	nbits  uint  // valid bits in bitbuf
	base   int64 // input bytes discarded before in

	out   []byte // window: history, then decoded bytes
	op    int    // where the next byte is decoded to
	rp    int    // next byte Read returns
	total int64  // bytes decoded before out[0]

	state  int // stateHeader, stateStored, stateHuffman, stateDone
	final  bool
	stored int // bytes left of a stored block

	// lt and dt are the current block's tables: the dynamic ones below,
	// or the fixed ones, built once (streams cut into many small blocks,
	// as pigz --rsyncable writes them, spent a third of their time
	// rebuilding tables).
	lt     *[litlenTableSize]uint32
	dt     *[distTableSize]uint32
	litlen [litlenTableSize]uint32
	dist   [distTableSize]uint32
	fixed  *fixedTables
	err    error
}

const (
	stateHeader = iota
	stateStored
	stateHuffman
	stateDone
)

// NewReader returns a Reader for the stream at the start of src.
func NewReader(src Source) *Reader {
	return &Reader{src: src, out: make([]byte, windowSize+outChunk+fastOut)}
}

// Read returns decoded bytes; io.EOF after the final block, once the bytes
// of the stream have been discarded from the source.
func (r *Reader) Read(p []byte) (int, error) {
	for r.rp == r.op {
		if r.err != nil {
			return 0, r.err
		}
		r.decode()
	}
	n := copy(p, r.out[r.rp:r.op])
	r.rp += n
	return n, nil
}

// bitPos is the stream's bits consumed so far.
func (r *Reader) bitPos() int64 { return (r.base+int64(r.ip))*8 - int64(r.nbits) }

func (r *Reader) corrupt(reason string) {
	r.err = &CorruptError{Bit: r.bitPos(), Reason: reason}
}

// decode makes room in the window and decodes up to one chunk.
func (r *Reader) decode() {
	if r.op > windowSize+outChunk-outChunk/4 {
		// Slide: keep the last windowSize bytes as history.
		n := copy(r.out, r.out[r.op-windowSize:r.op])
		r.total += int64(r.op - n)
		r.op, r.rp = n, n
	}
	limit := len(r.out) - fastOut
	for r.err == nil && r.op < limit {
		switch r.state {
		case stateHeader:
			if r.final {
				r.finish()
				return
			}
			r.header()
		case stateStored:
			r.copyStored(limit)
		case stateHuffman:
			r.huffman(limit)
		}
		if r.op-r.rp >= outChunk/2 {
			return
		}
	}
}

// finish gives back the whole bytes left in the bit buffer and discards
// the stream's bytes from the source.
func (r *Reader) finish() {
	back := int(r.nbits / 8)
	r.ip -= back
	r.nbits -= uint(back * 8)
	r.bitbuf &= 1<<r.nbits - 1
	if err := r.discard(); err != nil {
		r.err = err
		return
	}
	r.state = stateDone
	r.err = io.EOF
}

// discard drops the input window's consumed bytes from the source.
func (r *Reader) discard() error {
	if r.ip == 0 {
		return nil
	}
	n, err := r.src.Discard(r.ip)
	r.base += int64(n)
	r.in = r.in[n:]
	r.ip -= n
	if err != nil {
		return fmt.Errorf("deflate input: %w", err)
	}
	return nil
}

// fill moves the input window on and peeks more; false at the end of
// input (r.eof set) or on an error (r.err set).
func (r *Reader) fill() bool {
	if r.eof {
		return false
	}
	if err := r.discard(); err != nil {
		r.err = err
		return false
	}
	in, err := r.src.Peek(peekSize)
	if len(in) < peekSize && err != nil {
		if err == io.EOF {
			r.eof = true
		} else if !errors.Is(err, bufio.ErrBufferFull) && len(in) == 0 {
			r.err = fmt.Errorf("deflate input: %w", err)
			return false
		}
	}
	grew := len(in) > len(r.in)
	r.in = in
	return grew
}

// need makes sure the bit buffer holds n (≤ 56) bits; false (with r.err
// set) when the input ends first.
func (r *Reader) need(n uint) bool {
	for r.nbits < n {
		if r.ip >= len(r.in) && !r.fill() {
			if r.err == nil {
				r.err = io.ErrUnexpectedEOF
			}
			return false
		}
		if r.ip >= len(r.in) {
			continue
		}
		r.bitbuf |= uint64(r.in[r.ip]) << r.nbits
		r.ip++
		r.nbits += 8
	}
	return true
}

func (r *Reader) bits(n uint) (uint32, bool) {
	if !r.need(n) {
		return 0, false
	}
	v := uint32(r.bitbuf & (1<<n - 1))
	r.bitbuf >>= n
	r.nbits -= n
	return v, true
}

// header reads a block header and sets the block up.
func (r *Reader) header() {
	h, ok := r.bits(3)
	if !ok {
		return
	}
	r.final = h&1 != 0
	switch h >> 1 {
	case 0:
		// Stored: skip to a byte boundary, then LEN and NLEN.
		r.bits(r.nbits % 8)
		l, ok := r.bits(16)
		if !ok {
			return
		}
		nl, ok := r.bits(16)
		if !ok {
			return
		}
		if l != ^nl&0xffff {
			r.corrupt("stored block length does not match its complement")
			return
		}
		r.stored = int(l)
		r.state = stateStored
	case 1:
		r.fixedTables()
		r.state = stateHuffman
	case 2:
		if r.dynamicTables() {
			r.state = stateHuffman
		}
	default:
		r.corrupt("invalid block type 3")
	}
}

func (r *Reader) copyStored(limit int) {
	for r.stored > 0 && r.op < limit {
		// Whole bytes still in the bit buffer come first.
		if r.nbits >= 8 {
			r.out[r.op] = byte(r.bitbuf)
			r.bitbuf >>= 8
			r.nbits -= 8
			r.op++
			r.stored--
			continue
		}
		// The bits above nbits (the fast loop loads ahead) belong to the
		// bytes copied now: drop them.
		r.bitbuf = 0
		if r.ip >= len(r.in) && !r.fill() {
			if r.err == nil {
				r.err = io.ErrUnexpectedEOF
			}
			return
		}
		n := min(r.stored, limit-r.op, len(r.in)-r.ip)
		copy(r.out[r.op:], r.in[r.ip:r.ip+n])
		r.ip += n
		r.op += n
		r.stored -= n
	}
	if r.stored == 0 {
		r.state = stateHeader
	}
}

// fixedTables are the decoding tables of the fixed Huffman codes.
type fixedTables struct {
	litlen [litlenTableSize]uint32
	dist   [distTableSize]uint32
}

func (r *Reader) fixedTables() {
	if r.fixed == nil {
		r.fixed = newFixedTables()
	}
	r.lt, r.dt = &r.fixed.litlen, &r.fixed.dist
}

func newFixedTables() *fixedTables {
	f := new(fixedTables)
	var lens [288 + 32]uint8
	for i := range 144 {
		lens[i] = 8
	}
	for i := 144; i < 256; i++ {
		lens[i] = 9
	}
	for i := 256; i < 280; i++ {
		lens[i] = 7
	}
	for i := 280; i < 288; i++ {
		lens[i] = 8
	}
	for i := range 32 {
		lens[288+i] = 5
	}
	// The fixed codes are complete; symbols 286, 287, 30 and 31 decode to
	// invalid entries.
	buildLitlen(&f.litlen, lens[:288])
	buildDist(&f.dist, lens[288:])
	return f
}

func (r *Reader) dynamicTables() bool {
	h, ok := r.bits(14)
	if !ok {
		return false
	}
	nlen, ndist, ncl := int(h&31)+257, int(h>>5&31)+1, int(h>>10)+4
	if nlen > 286 || ndist > 30 {
		r.corrupt("too many length or distance symbols")
		return false
	}
	var cl [19]uint8
	for i := range ncl {
		v, ok := r.bits(3)
		if !ok {
			return false
		}
		cl[clOrder[i]] = uint8(v)
	}
	var clTable [1 << 7]uint32
	if !buildSimple(clTable[:], cl[:], 7) {
		r.corrupt("invalid code lengths code")
		return false
	}
	var lens [286 + 30]uint8
	for i := 0; i < nlen+ndist; {
		if !r.need(7) {
			// The last code may be shorter than 7 bits at the very end
			// of input; decode what is there.
			if r.err != io.ErrUnexpectedEOF || r.nbits == 0 {
				return false
			}
			r.err = nil
		}
		e := clTable[r.bitbuf&(1<<7-1)]
		n := uint(e & 0xff)
		if n == 0 || n > r.nbits {
			if n == 0 {
				r.corrupt("invalid code length code")
			} else {
				r.err = io.ErrUnexpectedEOF
			}
			return false
		}
		r.bitbuf >>= n
		r.nbits -= n
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep uint32
		var v uint8
		switch sym {
		case 16:
			if i == 0 {
				r.corrupt("repeat of the previous length with no previous length")
				return false
			}
			v = lens[i-1]
			rep, ok = r.bits(2)
			rep += 3
		case 17:
			rep, ok = r.bits(3)
			rep += 3
		default:
			rep, ok = r.bits(7)
			rep += 11
		}
		if !ok {
			return false
		}
		if i+int(rep) > nlen+ndist {
			r.corrupt("code length repeat past the last symbol")
			return false
		}
		for range rep {
			lens[i] = v
			i++
		}
	}
	if lens[256] == 0 {
		r.corrupt("no code for the end of block")
		return false
	}
	if !buildLitlen(&r.litlen, lens[:nlen]) {
		r.corrupt("invalid literal/length code")
		return false
	}
	if !buildDist(&r.dist, lens[nlen:nlen+ndist]) {
		r.corrupt("invalid distance code")
		return false
	}
	r.lt, r.dt = &r.litlen, &r.dist
	return true
}

// huffman decodes a compressed block's symbols until the end of block,
// the output limit or an error.
func (r *Reader) huffman(limit int) {
	out := r.out
	op := r.op
	bitbuf, nbits := r.bitbuf, r.nbits
	lt, dt := r.lt, r.dt
	for {
		// Fast path: enough input for an 8-byte refill, enough output
		// for the longest match.
		if r.ip+fastIn <= len(r.in) && op < limit {
			in := r.in
			ip := r.ip
			for ip+fastIn <= len(in) && op < limit {
				bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << nbits
				ip += int(63-nbits) >> 3
				nbits |= 56
				e := lt[bitbuf&(1<<litlenBits-1)]
				if e&kindMask == kindSub {
					e = lt[e>>16+uint32(bitbuf>>litlenBits)&(1<<(e>>8&0xf)-1)]
				}
				n := e & 0xff
				bitbuf >>= n
				nbits -= uint(n)
				switch e & kindMask {
				case kindLiteral:
					out[op] = byte(e >> 16)
					op++
					// A second literal without a refill: 56 - 15 bits
					// are left for it.
					e = lt[bitbuf&(1<<litlenBits-1)]
					if e&kindMask == kindLiteral {
						n = e & 0xff
						bitbuf >>= n
						nbits -= uint(n)
						out[op] = byte(e >> 16)
						op++
					}
					continue
				case kindLength:
				case kindEnd:
					r.in, r.ip, r.bitbuf, r.nbits, r.op = in, ip, bitbuf, nbits, op
					r.state = stateHeader
					return
				default:
					r.in, r.ip, r.bitbuf, r.nbits, r.op = in, ip, bitbuf, nbits, op
					r.corrupt("invalid literal/length symbol")
					return
				}
				x := e >> 8 & 0xf
				length := int(e>>16) + int(uint32(bitbuf)&(1<<x-1))
				bitbuf >>= x
				nbits -= uint(x)
				d := dt[bitbuf&(1<<distBits-1)]
				if d&kindMask == kindSub {
					d = dt[d>>16+uint32(bitbuf>>distBits)&(1<<(d>>8&0xf)-1)]
				}
				if d&kindMask != kindDist {
					r.in, r.ip, r.bitbuf, r.nbits, r.op = in, ip, bitbuf, nbits, op
					r.corrupt("invalid distance symbol")
					return
				}
				n = d & 0xff
				bitbuf >>= n
				nbits -= uint(n)
				x = d >> 8 & 0xf
				dist := int(d>>16) + int(uint32(bitbuf)&(1<<x-1))
				bitbuf >>= x
				nbits -= uint(x)
				if dist > op {
					r.in, r.ip, r.bitbuf, r.nbits, r.op = in, ip, bitbuf, nbits, op
					r.corrupt("distance too far back")
					return
				}
				op = copyMatch(out, op, dist, length)
			}
			r.in, r.ip = in, ip
			r.bitbuf, r.nbits = bitbuf, nbits
			if op >= limit {
				r.op = op
				return
			}
		}
		// Slow path, near the end of the input window: one symbol with
		// byte-wise refills (need fills the window again when it can).
		r.bitbuf, r.nbits, r.op = bitbuf, nbits, op
		if !r.slowSymbol(limit) {
			return
		}
		op, bitbuf, nbits = r.op, r.bitbuf, r.nbits
		if r.state != stateHuffman || op >= limit {
			return
		}
	}
}

// copyMatch copies length bytes from dist back to out[op:], returning the
// new op; out has outSlack bytes beyond the longest match.
func copyMatch(out []byte, op, dist, length int) int {
	end := op + length
	if dist >= 8 {
		src := op - dist
		for op < end {
			binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[src:]))
			op += 8
			src += 8
		}
		return end
	}
	if dist == 1 {
		b := out[op-1]
		v := uint64(b) * 0x0101010101010101
		for op < end {
			binary.LittleEndian.PutUint64(out[op:], v)
			op += 8
		}
		return end
	}
	for ; op < end; op++ {
		out[op] = out[op-dist]
	}
	return end
}

// decodeSym decodes one symbol with table t (main index bits mainBits) from
// the bit buffer, refilling byte by byte; ok false with r.err set.
func (r *Reader) decodeSym(t []uint32, mainBits uint) (uint32, bool) {
	// Take what bits there are (up to 15): at the end of input a code
	// may be shorter than the table's index.
	if !r.need(maxCodeBits) {
		if r.err != io.ErrUnexpectedEOF {
			return 0, false
		}
		r.err = nil
	}
	e := t[r.bitbuf&(1<<mainBits-1)]
	if e&kindMask == kindSub {
		e = t[e>>16+uint32(r.bitbuf>>mainBits)&(1<<(e>>8&0xf)-1)]
	}
	n := uint(e & 0xff)
	if n > r.nbits || n == 0 {
		if n == 0 {
			r.corrupt("invalid code")
		} else {
			r.err = io.ErrUnexpectedEOF
		}
		return 0, false
	}
	r.bitbuf >>= n
	r.nbits -= n
	return e, true
}

// slowSymbol decodes one literal, match or end of block.
func (r *Reader) slowSymbol(limit int) bool {
	e, ok := r.decodeSym(r.lt[:], litlenBits)
	if !ok {
		return false
	}
	switch e & kindMask {
	case kindLiteral:
		r.out[r.op] = byte(e >> 16)
		r.op++
		return true
	case kindEnd:
		r.state = stateHeader
		return true
	case kindLength:
	default:
		r.corrupt("invalid literal/length symbol")
		return false
	}
	x, ok := r.bits(uint(e >> 8 & 0xf))
	if !ok {
		return false
	}
	length := int(e>>16) + int(x)
	d, ok := r.decodeSym(r.dt[:], distBits)
	if !ok {
		return false
	}
	if d&kindMask != kindDist {
		r.corrupt("invalid distance symbol")
		return false
	}
	x, ok = r.bits(uint(d >> 8 & 0xf))
	if !ok {
		return false
	}
	dist := int(d>>16) + int(x)
	// After a slide out[:op] holds at least the window, so this is the
	// start of the stream.
	if dist > r.op {
		r.corrupt("distance too far back")
		return false
	}
	r.op = copyMatch(r.out, r.op, dist, length)
	return true
}

// Consumed is the stream's input bytes consumed so far (after io.EOF: the
// stream's length).
func (r *Reader) Consumed() int64 { return (r.bitPos() + 7) / 8 }

// build fills t with the decoding table of the canonical Huffman code
// with code lengths lens: main table of mainBits index bits, then
// subtables; entry gives a symbol's entry without its length. False for
// an over-subscribed code, or an incomplete one unless single allows a
// lone code of length one (zlib's rule for literal/length and distance
// codes). An empty code gives a table of invalid entries.
func build(t []uint32, lens []uint8, mainBits uint, single bool, entry func(sym int) uint32) bool {
	var count [maxCodeBits + 1]int
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	maxLen := maxCodeBits
	for maxLen > 0 && count[maxLen] == 0 {
		maxLen--
	}
	main := t[:1<<mainBits]
	left := 1
	for l := 1; l <= maxCodeBits; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false
		}
	}
	if maxLen > 0 && left > 0 && !(single && maxLen == 1) {
		return false
	}
	if left > 0 {
		// Incomplete (or empty): the codes leave entries unset.
		for i := range main {
			main[i] = kindInvalid
		}
	}
	if maxLen == 0 {
		return true
	}
	var next [maxCodeBits + 2]int
	var offs [maxCodeBits + 2]int
	for l := 1; l <= maxCodeBits; l++ {
		next[l+1] = (next[l] + count[l]) << 1
		offs[l+1] = offs[l] + count[l]
	}
	var sorted [320]uint16
	for sym, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	remain := count
	n := offs[maxCodeBits+1]
	subStart, subBits, subPrefix := 0, uint(0), -1
	free := 1 << mainBits
	for _, sym16 := range sorted[:n] {
		sym := int(sym16)
		l := uint(lens[sym])
		code := next[l]
		next[l]++
		remain[l]--
		rev := reverse(code, l)
		e := entry(sym) | uint32(l)
		if l <= mainBits {
			for i := rev; i < 1<<mainBits; i += 1 << l {
				main[i] = e
			}
			continue
		}
		prefix := rev & (1<<mainBits - 1)
		if prefix != subPrefix {
			// A new subtable: as many index bits as the codes left under
			// this prefix need (zlib's sizing).
			cur := l - mainBits
			room := 1<<cur - remain[l] - 1
			for cur+mainBits < uint(maxLen) && room > 0 {
				cur++
				room = room<<1 - remain[cur+mainBits]
			}
			if free+1<<cur > len(t) {
				return false
			}
			subStart, subBits, subPrefix = free, cur, prefix
			for i := range 1 << cur {
				t[free+i] = kindInvalid
			}
			free += 1 << cur
			main[prefix] = kindSub | uint32(subBits)<<8 | uint32(subStart)<<16
		}
		for i := rev >> mainBits; i < 1<<subBits; i += 1 << (l - mainBits) {
			t[subStart+i] = e
		}
	}
	return true
}

func reverse(code int, n uint) int {
	return int(bits.Reverse16(uint16(code)) >> (16 - n))
}

func buildLitlen(t *[litlenTableSize]uint32, lens []uint8) bool {
	return build(t[:], lens, litlenBits, true, func(sym int) uint32 {
		switch {
		case sym < 256:
			return kindLiteral | uint32(sym)<<16
		case sym == 256:
			return kindEnd
		case sym < 286:
			return kindLength | uint32(lengthExtra[sym-257])<<8 | uint32(lengthBase[sym-257])<<16
		}
		return kindInvalid
	})
}

func buildDist(t *[distTableSize]uint32, lens []uint8) bool {
	return build(t[:], lens, distBits, true, func(sym int) uint32 {
		if sym < 30 {
			return kindDist | uint32(distExtra[sym])<<8 | uint32(distBase[sym])<<16
		}
		return kindInvalid
	})
}

// buildSimple builds the code length code's table (no subtables: its
// codes are at most 7 bits); entries hold the symbol in bits 16-31.
func buildSimple(t []uint32, lens []uint8, bits uint) bool {
	return build(t, lens, bits, false, func(sym int) uint32 { return uint32(sym) << 16 })
}
