package bzip2dec

// crcTable is the bzip2 CRC-32 (polynomial 0x04c11db7, most significant
// bit first) for slicing by 8: crcTable[k][b] is the CRC of byte b
// followed by k zero bytes. It is computed once and never written again.
var crcTable = makeCRCTable()

func makeCRCTable() *[8][256]uint32 {
	t := new([8][256]uint32)
	for b := range 256 {
		c := uint32(b) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[0][b] = c
	}
	for k := 1; k < 8; k++ {
		for b := range 256 {
			c := t[k-1][b]
			t[k][b] = c<<8 ^ t[0][c>>24]
		}
	}
	return t
}

// UpdateCRC adds p to crc, a bzip2 CRC in progress: start with
// 0xffffffff; the block's CRC is the complement of the final value.
func UpdateCRC(crc uint32, p []byte) uint32 {
	t := crcTable
	for len(p) >= 8 {
		x := crc ^ (uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3]))
		crc = t[7][x>>24] ^ t[6][x>>16&0xff] ^ t[5][x>>8&0xff] ^ t[4][x&0xff] ^
			t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]]
		p = p[8:]
	}
	for _, b := range p {
		crc = crc<<8 ^ t[0][byte(crc>>24)^b]
	}
	return crc
}

// Unrun expands the final run-length stage (RLE1) of one block: after
// four equal bytes, the next byte is how many more copies follow (0 to
// 255), and the byte after that starts afresh, as in libbz2 and the
// kernel's bunzip2.
type Unrun struct {
	data   []byte
	i      int
	prev   int // the last byte written, -1 for none
	run    int // how many times in a row prev was written
	copies int // copies of prev still to write
}

// Reset starts expanding data, a block's bytes as Decode returned them.
func (u *Unrun) Reset(data []byte) { *u = Unrun{data: data, prev: -1} }

// Done reports whether the whole block has been expanded.
func (u *Unrun) Done() bool { return u.copies == 0 && u.i == len(u.data) }

// Read expands into p, returning how many bytes it wrote; 0 only when p
// is empty or the block is done.
func (u *Unrun) Read(p []byte) int {
	n := 0
	for n < len(p) {
		if u.copies > 0 {
			k := min(u.copies, len(p)-n)
			b := byte(u.prev)
			for j := n; j < n+k; j++ {
				p[j] = b
			}
			n += k
			u.copies -= k
			continue
		}
		if u.i >= len(u.data) {
			break
		}
		// Literal bytes until a run of four or the end of either buffer.
		data, i, prev, run := u.data, u.i, u.prev, u.run
		for i < len(data) && n < len(p) {
			b := data[i]
			i++
			if run == 4 {
				u.copies = int(b)
				run = 0
				break
			}
			p[n] = b
			n++
			if int(b) == prev {
				run++
			} else {
				prev, run = int(b), 1
			}
		}
		u.i, u.prev, u.run = i, prev, run
	}
	return n
}
