package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// multiBlockXZ is a stream of several blocks whose headers state their
// sizes, as `xz -T` writes them: the blocks decode in parallel.
func multiBlockXZ(t *testing.T, data []byte) []byte {
	return cli(t, data, "xz", "-c", "-T2", "--block-size=64KiB", "--check=crc32", "--lzma2=dict=64KiB")
}

// TestXZBlocksCloseEarly: a reader that stops (a cpio error) must get
// Close back with every block worker stopped, none left reading.
func TestXZBlocksCloseEarly(t *testing.T) {
	stream := multiBlockXZ(t, initrdLike(2<<20, 3))
	before := runtime.NumGoroutine()
	r, err := NewReader(XZ, bufio.NewReader(bytes.NewReader(stream)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close does not return while blocks are being decoded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left running after Close (%d before)", n-before, before)
	}
}

// TestXZBlocksIndexMustMatch: the index is checked against the blocks that
// were decoded, not only for its own CRC32.
func TestXZBlocksIndexMustMatch(t *testing.T) {
	data := initrdLike(300<<10, 4)
	stream := multiBlockXZ(t, data)
	if out, _, err := decode(XZ, stream, 4096); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("the intact stream: %v", err)
	}
	// The footer's backward size locates the index: indicator, count,
	// then (unpadded, uncompressed) per block.
	footer := stream[len(stream)-12:]
	size := int((binary.LittleEndian.Uint32(footer[4:8]) + 1) * 4)
	start := len(stream) - 12 - size
	idx := stream[start : start+size-4]
	p := 1
	count, k := binary.Uvarint(idx[p:])
	p += k
	if count < 2 {
		t.Fatalf("want a stream of several blocks, got %d", count)
	}
	_, k = binary.Uvarint(idx[p:]) // unpadded size of block 1
	p += k
	_, k = binary.Uvarint(idx[p:]) // its uncompressed size
	bad := append([]byte{}, stream...)
	bad[start+p+k-1] ^= 1 // same length, another value
	binary.LittleEndian.PutUint32(bad[start+size-4:], crc32.ChecksumIEEE(bad[start:start+size-4]))
	_, _, err := decode(XZ, bad, 4096)
	if err == nil || !strings.Contains(err.Error(), "index record 0") {
		t.Fatalf("an index that does not describe the blocks: %v", err)
	}
}

// TestXZBlocksBudget: with Decoders.ParallelMemory a block starts beside
// others only while their costs fit, and the output is the same whatever
// the bound (one block at a time when it is tiny).
func TestXZBlocksBudget(t *testing.T) {
	data := initrdLike(2<<20, 5)
	stream := multiBlockXZ(t, data)
	for _, budget := range []int64{0, 1, 256 << 10, 64 << 20} {
		d := Decoders{ParallelMemory: budget}
		r, err := d.NewReader(XZ, bufio.NewReader(bytes.NewReader(stream)))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(out, data) {
			t.Errorf("budget %d: %d bytes (want %d), %v", budget, len(out), len(data), err)
		}
	}
	for _, tc := range []struct {
		name    string
		budget  int64
		pending []int64 // costs of the blocks being decoded
		last    int64
		want    bool
	}{
		{"no bound", 0, []int64{1 << 30, 1 << 30}, 1 << 30, true},
		{"the first block always starts", 10, nil, 1 << 30, true},
		{"fits exactly", 100, []int64{60}, 40, true},
		{"one byte over", 100, []int64{60}, 41, false},
		{"two pending", 100, []int64{30, 30}, 30, true},
	} {
		x := newXZBlocks(nil, 1<<20, tc.budget)
		for _, c := range tc.pending {
			x.pending = append(x.pending, &xzJob{cost: c})
		}
		x.lastCost = tc.last
		if got := x.another(); got != tc.want {
			t.Errorf("%s: another() = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The bound also limits what a block decodes ahead: a quarter of it,
	// between two output chunks and xzMaxAhead.
	for budget, want := range map[int64]int{0: xzMaxAhead, 1: 2 * xzOutChunk, 24 << 20: 6 << 20, 1 << 30: xzMaxAhead} {
		if got := newXZBlocks(nil, 1<<20, budget).ahead; got != want {
			t.Errorf("budget %d: ahead %d, want %d", budget, got, want)
		}
	}
}
