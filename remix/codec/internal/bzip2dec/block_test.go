package bzip2dec

import (
	"bytes"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
)

// cliStream compresses data with the bzip2 CLI.
func cliStream(tb testing.TB, data []byte, level string) []byte {
	tb.Helper()
	if _, err := exec.LookPath("bzip2"); err != nil {
		tb.Skip("no bzip2 CLI")
	}
	cmd := exec.Command("bzip2", "-c", level)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("bzip2 %s: %v", level, err)
	}
	return out
}

// padded returns b followed by Padding zero bytes.
func padded(b []byte) []byte { return append(bytes.Clone(b), make([]byte, Padding)...) }

// firstBlock decodes and expands the first block of a CLI stream, which
// starts at bit 80 (header and block magic), and checks its CRC.
func firstBlock(t *testing.T, stream []byte) ([]byte, Block) {
	t.Helper()
	var d Decoder
	bs := int(stream[3]-'0') * 100000
	blk, err := d.Decode(padded(stream), 80, len(stream)*8, bs, make([]byte, bs))
	if err != nil {
		t.Fatal(err)
	}
	return expand(t, blk), blk
}

func expand(t *testing.T, blk Block) []byte {
	t.Helper()
	var u Unrun
	u.Reset(blk.Data)
	var out []byte
	buf := make([]byte, 4093)
	for {
		n := u.Read(buf)
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
	}
	if !u.Done() {
		t.Fatal("Unrun not done after returning 0")
	}
	if got := ^UpdateCRC(0xffffffff, out); got != blk.CRC {
		t.Fatalf("CRC %08x, stored %08x", got, blk.CRC)
	}
	return out
}

// testData: the kinds of data that exercise the stages differently.
func testData(size int) map[string][]byte {
	rng := rand.New(rand.NewSource(int64(size)))
	random := make([]byte, size)
	rng.Read(random)
	runs := make([]byte, 0, size) // RLE1 runs of every length, RLE2 runs
	for len(runs) < size {
		runs = append(runs, bytes.Repeat([]byte{byte(rng.Intn(4))}, rng.Intn(600))...)
	}
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog 0123456789\n", size/50+1))
	mixed := make([]byte, size)
	for i := range mixed {
		mixed[i] = byte(rng.ExpFloat64() * 20)
	}
	return map[string][]byte{"random": random, "runs": runs[:size], "text": text[:size], "mixed": mixed,
		"one-byte": bytes.Repeat([]byte{'x'}, size)}
}

// TestDecodeMatchesCLI: the first block of streams of `bzip2 -1` and
// `bzip2 -9` on data small enough for one block is the data.
func TestDecodeMatchesCLI(t *testing.T) {
	for _, size := range []int{1, 4, 5, 259, 260, 1000, 50000} {
		for name, data := range testData(size) {
			for _, level := range []string{"-1", "-9"} {
				got, _ := firstBlock(t, cliStream(t, data, level))
				if !bytes.Equal(got, data) {
					t.Fatalf("%s %d %s: decoded %d bytes, differ", name, size, level, len(got))
				}
			}
		}
	}
}

// TestShortAtEveryLimit: a limit anywhere before the block's end is
// ErrShort, never another error or a wrong block.
func TestShortAtEveryLimit(t *testing.T) {
	s := cliStream(t, testData(3000)["mixed"], "-1")
	_, full := firstBlock(t, s)
	in := padded(s)
	var d Decoder
	for limit := 80; limit < full.End; limit++ {
		if _, err := d.Decode(in, 80, limit, 100000, make([]byte, 100000)); err != ErrShort {
			t.Fatalf("limit %d of %d: %v", limit, full.End, err)
		}
	}
}

// setBits overwrites n bits at bit offset pos of b with v.
func setBits(b []byte, pos, n int, v uint32) {
	for i := 0; i < n; i++ {
		bit := byte(v>>(n-1-i)) & 1
		p := pos + i
		b[p>>3] = b[p>>3]&^(0x80>>(p&7)) | bit<<(7-p&7)
	}
}

// TestRejections: corrupt headers and data are refused with their reason.
func TestRejections(t *testing.T) {
	s := cliStream(t, []byte("hello, hello, hello world"), "-1")
	// Header layout after the magic (bit 80): CRC 32, randomised 1,
	// origPtr 24, used 16, then one 16-bit map per used group.
	const rnd, orig, used = 112, 113, 137
	var groupsBit int
	{
		r := bitReader{in: padded(s), pos: used, limit: len(s) * 8}
		u, _ := r.bits(16)
		n := 0
		for ; u != 0; u &= u - 1 {
			n++
		}
		groupsBit = used + 16 + 16*n
	}
	tests := []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"randomised", func(b []byte) { setBits(b, rnd, 1, 1) }, "randomised"},
		{"origPtr", func(b []byte) { setBits(b, orig, 24, 0xffffff) }, "origin pointer"},
		{"no symbols", func(b []byte) { setBits(b, used, 16, 0) }, ""},
		{"one table", func(b []byte) { setBits(b, groupsBit, 3, 1) }, "Huffman tables"},
		{"seven tables", func(b []byte) { setBits(b, groupsBit, 3, 7) }, "Huffman tables"},
		{"no selectors", func(b []byte) { setBits(b, groupsBit+3, 15, 0) }, "no table selectors"},
		{"selector", func(b []byte) { setBits(b, groupsBit+18, 7, 0x7f) }, "selector out of range"},
		{"block CRC", func(b []byte) { setBits(b, 80, 8, uint32(b[10]^0xff)) }, "CRC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := padded(s)
			tc.edit(b)
			var d Decoder
			blk, err := d.Decode(b, 80, len(s)*8, 100000, make([]byte, 100000))
			if err == nil && tc.want == "CRC" {
				var u Unrun
				u.Reset(blk.Data)
				out := make([]byte, 1000)
				n := u.Read(out)
				if ^UpdateCRC(0xffffffff, out[:n]) != blk.CRC {
					return
				}
			}
			if err == nil || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCRC: slicing by 8 agrees with the bit-by-bit definition at every
// length and alignment.
func TestCRC(t *testing.T) {
	data := testData(100)["random"]
	for i := 0; i <= len(data); i++ {
		want := uint32(0xffffffff)
		for _, b := range data[:i] {
			want ^= uint32(b) << 24
			for k := 0; k < 8; k++ {
				if want&0x80000000 != 0 {
					want = want<<1 ^ 0x04c11db7
				} else {
					want <<= 1
				}
			}
		}
		if got := UpdateCRC(0xffffffff, data[:i]); got != want {
			t.Fatalf("length %d: %08x, want %08x", i, got, want)
		}
	}
}

// TestUnrun: runs of four and more, counts of 0 and 255, the byte after a
// count starting afresh, read through buffers of every small size.
func TestUnrun(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"aaaa\x00", "aaaa"},
		{"aaaa\x03b", "aaaaaaab"},
		{"aaaa\x00aaaa\x01", "aaaaaaaaa"},
		{"aaaa\x00a", "aaaaa"}, // after the count, a starts a new run
		{"aaaa", "aaaa"},       // no count at the end of the block
		{"aaaa\xff", strings.Repeat("a", 259)},
	}
	for _, tc := range tests {
		for size := 1; size < 8; size++ {
			var u Unrun
			u.Reset([]byte(tc.in))
			var got []byte
			buf := make([]byte, size)
			for n := u.Read(buf); n > 0; n = u.Read(buf) {
				got = append(got, buf[:n]...)
			}
			if string(got) != tc.want {
				t.Fatalf("%q by %d: %q, want %q", tc.in, size, got, tc.want)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("BZh11AY&SY"), 80)
	f.Fuzz(func(t *testing.T, in []byte, start int) {
		if start < 0 || start > len(in)*8 {
			return
		}
		var d Decoder
		blk, err := d.Decode(padded(in), start, len(in)*8, 100000, make([]byte, 100000))
		if err == nil && (len(blk.Data) == 0 || blk.End > len(in)*8) {
			t.Fatalf("%d bytes ending at bit %d of %d", len(blk.Data), blk.End, len(in)*8)
		}
	})
}

// benchBlocks are two 900k blocks of mixed data.
func benchBlocks(b *testing.B) [2][]byte {
	var out [2][]byte
	for i := range out {
		out[i] = padded(cliStream(b, testData(899000 + i)["mixed"], "-9"))
	}
	return out
}

func BenchmarkDecode(b *testing.B) {
	s := benchBlocks(b)
	var d Decoder
	out := make([]byte, 900000)
	b.SetBytes(2 * 899000)
	for i := 0; i < b.N; i++ {
		for _, in := range s {
			if _, err := d.Decode(in, 80, (len(in)-Padding)*8, 900000, out); err != nil {
				b.Fatal(err)
			}
		}
	}
}
