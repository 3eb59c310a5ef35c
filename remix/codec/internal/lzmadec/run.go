package lzmadec

import "encoding/binary"

// The hot loop. The range coder's state lives in locals threaded through
// small functions the compiler inlines (bit, norm, bitBL): they take and return
// the input position, range and code, so those stay in registers.

const (
	kBits  = 11
	kMove  = 5
	topVal = 1 << 24
)

// bit decodes one bit with probability *p.
func bit(p *uint16, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	if rng < topVal {
		rng <<= 8
		code = code<<8 | uint32(in[pos])
		pos++
	}
	pr := uint32(*p)
	bound := (rng >> kBits) * pr
	if code < bound {
		*p = uint16(pr + (1<<kBits-pr)>>kMove)
		return 0, pos, bound, code
	}
	*p = uint16(pr - pr>>kMove)
	return 1, pos, rng - bound, code - bound
}

// norm reads a byte into the range coder when its range is below 2^24,
// as before every bit.
func norm(in []byte, pos int, rng, code uint32) (int, uint32, uint32) {
	if rng < topVal {
		rng <<= 8
		code = code<<8 | uint32(in[pos])
		pos++
	}
	return pos, rng, code
}

// bitBL is bit without a branch on the decoded bit, for the bit trees of
// literals and distances, whose bits a branch predictor cannot guess. The
// caller normalizes first.
func bitBL(p *uint16, rng, code uint32) (uint32, uint32, uint32) {
	pr := uint32(*p)
	bound := (rng >> kBits) * pr
	b, nr, nc, np := uint32(1), rng-bound, code-bound, pr-pr>>kMove
	p0 := pr + (1<<kBits-pr)>>kMove
	if code < bound {
		// Conditional moves: both outcomes are computed.
		b, nr, nc, np = 0, bound, code, p0
	}
	*p = uint16(np)
	return b, nr, nc
}

// tree decodes n bits MSB first with the 1<<n probabilities of t
// (lengths, distance slots).
func tree(t []uint16, n int, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	var b uint32
	m := uint32(1)
	for i := 0; i < n; i++ {
		pos, rng, code = norm(in, pos, rng, code)
		b, rng, code = bitBL(&t[m], rng, code)
		m = m<<1 | b
	}
	return m - 1<<n, pos, rng, code
}

func tree8(t *[256]uint16, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	m, pos, rng, code := tree8Sym(t, in, pos, rng, code)
	return m - 256, pos, rng, code
}

// tree8Sym decodes 8 bits MSB first, returning 0x100 | the byte. The
// probabilities of both possible next nodes are loaded while a bit is
// decoded, so the load is off the chain of dependent bits.
func tree8Sym(t *[256]uint16, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	m := uint32(1)
	pr := uint32(t[1])
	for i := 0; i < 8; i++ {
		pos, rng, code = norm(in, pos, rng, code)
		n0, n1 := uint32(t[(2*m)&255]), uint32(t[(2*m+1)&255])
		bound := (rng >> kBits) * pr
		b, nr, nc, np, next := uint32(1), rng-bound, code-bound, pr-pr>>kMove, n1
		p0 := pr + (1<<kBits-pr)>>kMove
		if code < bound {
			b, nr, nc, np, next = 0, bound, code, p0, n0
		}
		t[m&255] = uint16(np)
		rng, code = nr, nc
		m = m<<1 | b
		pr = next
	}
	return m, pos, rng, code
}

// matchedLiteral decodes a literal after a match, whose probabilities
// also depend on the byte at rep0 (mb) as long as the bits agree. t is
// the literal's 0x300 probabilities and 0x100 beyond, which are loaded as
// the unused candidate of the last bit, never written. As in tree8Sym,
// both candidates for the next bit's probability are loaded early.
func matchedLiteral(t *[0x400]uint16, mb uint32, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	sym, offs := uint32(1), uint32(0x100)
	mb <<= 1
	idx := offs + mb&offs + sym
	pr := uint32(t[idx&0x3ff])
	for i := 0; i < 8; i++ {
		pos, rng, code = norm(in, pos, rng, code)
		mbit := mb & offs
		mb <<= 1
		offs0, offs1 := offs&^mbit, offs&mbit
		i0 := offs0 + mb&offs0 + sym<<1
		i1 := offs1 + mb&offs1 + sym<<1 | 1
		n0, n1 := uint32(t[i0&0x3ff]), uint32(t[i1&0x3ff])
		bound := (rng >> kBits) * pr
		nr, nc, np := rng-bound, code-bound, pr-pr>>kMove
		p0 := pr + (1<<kBits-pr)>>kMove
		if code < bound {
			nr, nc, np = bound, code, p0
		}
		var b uint32
		if code >= bound {
			b = 1
		}
		mask := 0 - b // all ones for a 1
		t[idx&0x3ff] = uint16(np)
		rng, code = nr, nc
		sym = sym<<1 | b
		idx = i0 ^ (i0^i1)&mask
		pr = n0 ^ (n0^n1)&mask
		offs = offs0 ^ (offs0^offs1)&mask
	}
	return sym, pos, rng, code
}

// decodeLen returns a match length minus 2.
func decodeLen(l *lenCoder, ps uint, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	var b uint32
	b, pos, rng, code = bit(&l.choice, in, pos, rng, code)
	if b == 0 {
		return tree(l.low[ps&15][:], 3, in, pos, rng, code)
	}
	b, pos, rng, code = bit(&l.choice2, in, pos, rng, code)
	if b == 0 {
		b, pos, rng, code = tree(l.mid[ps&15][:], 3, in, pos, rng, code)
		return b + 8, pos, rng, code
	}
	b, pos, rng, code = tree8(&l.high, in, pos, rng, code)
	return b + 16, pos, rng, code
}

// decodeDist decodes the distance of a match of length index ls (0-3).
func (p *probs) decodeDist(ls uint32, in []byte, pos int, rng, code uint32) (uint32, int, uint32, uint32) {
	var slot, b uint32
	slot, pos, rng, code = tree(p.distSlot[ls&3][:], 6, in, pos, rng, code)
	if slot < 4 {
		return slot, pos, rng, code
	}
	nd := slot>>1 - 1
	dist := (2 | slot&1) << nd
	if slot < 14 {
		base := dist - slot - 1
		m := uint32(1)
		for i := uint32(0); i < nd; i++ {
			pos, rng, code = norm(in, pos, rng, code)
			b, rng, code = bitBL(&p.distSpecial[(base+m)&127], rng, code)
			m = m<<1 | b
			dist += b << i
		}
		return dist, pos, rng, code
	}
	var direct uint32
	for n := nd - 4; n > 0; n-- {
		if rng < topVal {
			rng <<= 8
			code = code<<8 | uint32(in[pos])
			pos++
		}
		rng >>= 1
		code -= rng
		t := 0 - code>>31
		code += rng & t
		direct = direct<<1 + (t + 1)
	}
	dist += direct << 4
	m := uint32(1)
	for i := uint32(0); i < 4; i++ {
		pos, rng, code = norm(in, pos, rng, code)
		b, rng, code = bitBL(&p.distAlign[m&15], rng, code)
		m = m<<1 | b
		dist += b << i
	}
	return dist, pos, rng, code
}

var litNext = [16]uint32{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 4, 5}

// copyMatch copies n bytes from dist+1 bytes back to dict[dpos:]; the
// caller checked the distance and that dpos+n fits.
func copyMatch(dict []byte, dpos, dist, n int) int {
	src := dpos - dist - 1
	if src < 0 {
		src += len(dict)
	}
	for n > 0 {
		if src >= dpos {
			// The source is behind the write position across the wrap:
			// copying forwards is what copy's memmove does then.
			k := min(n, len(dict)-src)
			copy(dict[dpos:dpos+k], dict[src:src+k])
			dpos += k
			src += k
			n -= k
			if src == len(dict) {
				src = 0
			}
			continue
		}
		// Overlapping source: what is copied repeats with the distance's
		// period, so the copyable span doubles each round.
		k := min(n, dpos-src)
		copy(dict[dpos:dpos+k], dict[src:src+k])
		dpos += k
		n -= k
	}
	return dpos
}

// run decodes symbols from in[pos:] while pos <= inLimit, the output is
// below outLimit and no end marker was seen. Every symbol reads fewer than
// margin bytes, so in must extend margin bytes past inLimit.
func (d *decoder) run(in []byte, pos, inLimit, outLimit int) (int, error) {
	dict := d.dict
	dpos := d.dpos
	if outLimit > len(dict) {
		outLimit = len(dict)
	}
	// avail: the bytes a distance may reach back into.
	avail := max(d.full, dpos)
	if d.pending > 0 {
		n := min(d.pending, outLimit-dpos)
		dpos = copyMatch(dict, dpos, int(d.rep0), n)
		d.pending -= n
	}
	rng, code := d.rng, d.code
	state := d.state
	rep0, rep1, rep2, rep3 := d.rep0, d.rep1, d.rep2, d.rep3
	lc, lpMask, pbMask := d.lc, d.lpMask, d.pbMask
	lit := d.lit
	p := &d.p
	maxDist := d.maxDist
	var err error
	var b uint32
	for pos <= inLimit && dpos < outLimit {
		ps := uint(dpos) & pbMask
		b, pos, rng, code = bit(&p.isMatch[(uint(state)<<4|ps)&255], in, pos, rng, code)
		if b == 0 {
			var prev uint
			if dpos > 0 {
				prev = uint(dict[dpos-1])
			} else if d.full > 0 {
				prev = uint(dict[len(dict)-1])
			}
			off := 0x300 * ((uint(dpos)&lpMask)<<(lc&15) + prev>>((8-lc)&15))
			sym := uint32(1)
			if state < 7 {
				sym, pos, rng, code = tree8Sym((*[256]uint16)(lit[off:off+256]), in, pos, rng, code)
			} else {
				src := dpos - int(rep0) - 1
				if src < 0 {
					src += len(dict)
				}
				sym, pos, rng, code = matchedLiteral((*[0x400]uint16)(lit[off:off+0x400]), uint32(dict[src]), in, pos, rng, code)
			}
			dict[dpos] = byte(sym)
			dpos++
			if dpos > avail {
				avail = dpos
			}
			state = litNext[state&15]
			continue
		}
		var length uint32
		b, pos, rng, code = bit(&p.isRep[state&15], in, pos, rng, code)
		if b == 0 {
			length, pos, rng, code = decodeLen(&p.matchLen, ps, in, pos, rng, code)
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			rep3, rep2, rep1 = rep2, rep1, rep0
			rep0, pos, rng, code = p.decodeDist(min(length, 3), in, pos, rng, code)
			if rep0 == 0xffffffff {
				d.ended = true
				break
			}
		} else {
			b, pos, rng, code = bit(&p.isRepG0[state&15], in, pos, rng, code)
			if b == 0 {
				b, pos, rng, code = bit(&p.isRep0Long[(uint(state)<<4|ps)&255], in, pos, rng, code)
				if b == 0 {
					// Short rep: one byte at rep0.
					if state < 7 {
						state = 9
					} else {
						state = 11
					}
					if int(rep0) >= avail || int(rep0) >= maxDist {
						err = corrupt("distance beyond the data decoded")
						break
					}
					src := dpos - int(rep0) - 1
					if src < 0 {
						src += len(dict)
					}
					dict[dpos] = dict[src]
					dpos++
					if dpos > avail {
						avail = dpos
					}
					continue
				}
			} else {
				var dist uint32
				b, pos, rng, code = bit(&p.isRepG1[state&15], in, pos, rng, code)
				if b == 0 {
					dist = rep1
				} else {
					b, pos, rng, code = bit(&p.isRepG2[state&15], in, pos, rng, code)
					if b == 0 {
						dist = rep2
					} else {
						dist = rep3
						rep3 = rep2
					}
					rep2 = rep1
				}
				rep1 = rep0
				rep0 = dist
			}
			length, pos, rng, code = decodeLen(&p.repLen, ps, in, pos, rng, code)
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
		}
		if int64(rep0) >= int64(avail) || int64(rep0) >= int64(maxDist) {
			err = corrupt("distance beyond the data decoded")
			break
		}
		n := int(length) + 2
		k := min(n, outLimit-dpos)
		if src := dpos - int(rep0) - 1; src >= 0 && k <= 32 && dpos+k+8 <= len(dict) {
			// Short and not across the wrap: whole words, the last one
			// reaching up to 7 bytes past the match into the slack or
			// into bytes beyond maxDist.
			switch {
			case int(rep0) >= k-1 && rep0 >= 7:
				// The source ends before dpos: words load older
				// data, not what this copy just stored (a load
				// across recent stores stalls).
				for i := 0; i < k; i += 8 {
					binary.LittleEndian.PutUint64(dict[dpos+i:], binary.LittleEndian.Uint64(dict[src+i:]))
				}
			case rep0 == 0:
				v := uint64(dict[src]) * 0x0101010101010101
				for i := 0; i < k; i += 8 {
					binary.LittleEndian.PutUint64(dict[dpos+i:], v)
				}
			default:
				dst, s := dict[dpos:dpos+k], dict[src:src+k]
				for i := range dst {
					dst[i] = s[i]
				}
			}
			dpos += k
		} else {
			dpos = copyMatch(dict, dpos, int(rep0), k)
		}
		if dpos > avail {
			avail = dpos
		}
		if k < n {
			d.pending = n - k
			break
		}
	}
	d.dpos = dpos
	d.rng, d.code = rng, code
	d.state = state
	d.rep0, d.rep1, d.rep2, d.rep3 = rep0, rep1, rep2, rep3
	return pos, err
}
