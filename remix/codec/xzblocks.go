package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec/internal/lzmadec"
)

// Block-parallel xz decoding. The .xz format cuts a stream into blocks that
// are compressed independently; encoders that work in parallel (`xz -T`,
// which initramfs-tools and dracut use) write each block's compressed size
// in its header. Such blocks are read whole and decoded on several
// goroutines at once, in order of output (lzmadec decodes a sized block
// straight from its bytes). A block whose header has no size (a
// single-threaded `xz`) is decoded as it is read, after the blocks before
// it: its LZMA2 chunks are read one by one, exactly.
const (
	// xzOutChunk is the unit decoded blocks are handed over in.
	xzOutChunk = 1 << 20
	// xzMaxAhead bounds the decoded bytes one block may hold before the
	// reader takes them: memory stays at about workers × xzMaxAhead
	// whatever block sizes the headers claim. Half a block is enough to
	// keep two workers busy once the first block is out of the way (each
	// block then starts halfway through its predecessor); `xz -T` cuts
	// blocks of three dictionaries, 24 MiB at its default preset.
	xzMaxAhead = 12 << 20
	// xzMaxBlockRead bounds the compressed bytes read ahead for one
	// block; a larger block is decoded as it is read.
	xzMaxBlockRead = 64 << 20
)

// xzBlocks decodes one xz stream read through its walker (which checks the
// header, block header and index CRCs and the structure as the bytes pass).
// It verifies what the walker cannot: each block's check and sizes, and
// that the index and footer describe the blocks that were read.
type xzBlocks struct {
	src       *framer
	maxDict   int64
	workers   int
	budget    int64 // bound on the in-flight blocks' costs; 0: none
	ahead     int   // decoded bytes a block may hold for the reader
	lastCost  int64 // the last block's cost, to judge the next one
	flags     [2]byte
	checkSize int
	newHash   func() hash.Hash

	pending []*xzJob
	records []xzRecord
	atIndex bool // the index indicator was read: no more blocks
	ended   bool // index and footer verified
	err     error

	started bool   // the stream header was read
	cur     []byte // what the reader has not taken of curBuf
	curBuf  []byte // the chunk being handed out, recycled after it
	free    chan []byte

	// Decoders and compressed-data buffers of finished blocks, taken
	// again by the next ones (on the reader's goroutine only): a stream
	// of many blocks sets up as many of each as blocks are decoded at
	// once, not one per block (each a dictionary of up to 64 MiB).
	readers []*lzmadec.Reader2
	bufs    [][]byte
}

// xzJob is one block being decoded.
type xzJob struct {
	hdrSize      int64
	r            *lzmadec.Reader2
	data         []byte // the compressed data read whole, or nil
	compressed   int64  // -1 until known, for a block decoded as it is read
	uncompressed int64  // -1: the header does not say
	dict         int64
	cost         int64  // memory the block holds while decoded
	ahead        int    // decoded bytes it may hold for the reader
	check        []byte // the stored check; nil until read, for a streamed block
	streamed     bool

	mu       sync.Mutex
	cond     *sync.Cond
	chunks   [][]byte
	buffered int
	done     bool
	stopped  bool
	err      error
	total    int64
	sum      []byte
}

// newXZBlocks decodes with up to GOMAXPROCS blocks at once; with a budget,
// a block starts beside others only while their costs stay within it, and
// each holds at most a quarter of it decoded ahead.
func newXZBlocks(src *framer, maxDict, budget int64) *xzBlocks {
	ahead := xzMaxAhead
	if budget > 0 {
		ahead = int(min(max(budget/4, 2*xzOutChunk), xzMaxAhead))
	}
	return &xzBlocks{src: src, maxDict: maxDict, workers: max(runtime.GOMAXPROCS(0), 1), budget: budget, ahead: ahead,
		free: make(chan []byte, ahead/xzOutChunk+4)}
}

// another reports whether one more block may start beside the pending
// ones: the budget is judged with the last block's cost, as the next
// block's header is not read yet (the blocks of a stream are alike).
func (x *xzBlocks) another() bool {
	if len(x.pending) == 0 || x.budget <= 0 {
		return true
	}
	sum := x.lastCost
	for _, j := range x.pending {
		sum += j.cost
	}
	return sum <= x.budget
}

func (x *xzBlocks) Read(p []byte) (int, error) {
	for len(x.cur) == 0 {
		if x.err != nil {
			return 0, x.err
		}
		if x.ended {
			return 0, io.EOF
		}
		if err := x.step(); err != nil {
			x.err = err
			x.stop()
			return 0, err
		}
	}
	n := copy(p, x.cur)
	x.cur = x.cur[n:]
	return n, nil
}

// step makes progress: it starts blocks up to the worker count, then hands
// out the first block's next chunk, or retires that block.
func (x *xzBlocks) step() error {
	if !x.started {
		if err := x.header(); err != nil {
			return err
		}
		x.started = true
	}
	// The first block and one more per other worker: on two cores, one
	// block is read while the next is decoded.
	for !x.atIndex && len(x.pending) < x.workers && (len(x.pending) == 0 || !x.pending[len(x.pending)-1].streamed) && x.another() {
		if err := x.startBlock(); err != nil {
			return err
		}
	}
	if len(x.pending) == 0 {
		return x.index()
	}
	j := x.pending[0]
	j.mu.Lock()
	for len(j.chunks) == 0 && !j.done {
		j.cond.Wait()
	}
	if len(j.chunks) > 0 {
		c := j.chunks[0]
		j.chunks = j.chunks[1:]
		j.buffered -= len(c)
		j.mu.Unlock()
		j.cond.Broadcast()
		x.give(c)
		return nil
	}
	err := j.err
	j.mu.Unlock()
	if err != nil {
		return err
	}
	x.pending = x.pending[1:]
	return x.finishBlock(j)
}

// give hands a decoded chunk to the reader; the chunk before it, fully
// read, goes back to the free list for the workers.
func (x *xzBlocks) give(c []byte) {
	if x.curBuf != nil {
		select {
		case x.free <- x.curBuf[:0]:
		default:
		}
	}
	x.cur, x.curBuf = c, c
}

// header reads the stream header (the walker checked magic, CRC, flags).
func (x *xzBlocks) header() error {
	var h [12]byte
	if _, err := io.ReadFull(x.src, h[:]); err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	copy(x.flags[:], h[6:8])
	size, ok := xzCheckSize(h[7])
	if !ok {
		return fmt.Errorf("stream flags % x: %w", h[6:8], ErrUnsupported)
	}
	x.checkSize = size
	switch h[7] {
	case 0x00:
		x.newHash = func() hash.Hash { return nil }
	case 0x01:
		x.newHash = func() hash.Hash { return crc32.NewIEEE() }
	case 0x04:
		x.newHash = func() hash.Hash { return crc64.New(crc64.MakeTable(crc64.ECMA)) }
	case 0x0a:
		x.newHash = sha256.New
	}
	return nil
}

// startBlock reads the next block header and starts decoding the block, or
// notes the index indicator.
func (x *xzBlocks) startBlock() error {
	b, err := x.src.ReadByte()
	if err != nil {
		return fmt.Errorf("block header: %w", err)
	}
	if b == 0 {
		x.atIndex = true
		return nil
	}
	h := make([]byte, int(b)*4+4)
	h[0] = b
	if _, err := io.ReadFull(x.src, h[1:]); err != nil {
		return fmt.Errorf("block header: %w", err)
	}
	bh, err := parseXZBlockHeader(h, x.maxDict)
	if err != nil {
		return fmt.Errorf("block header: %w", err)
	}
	j := &xzJob{hdrSize: int64(len(h)), compressed: bh.compressed, uncompressed: bh.uncompressed, dict: bh.dict, ahead: x.ahead}
	// What it holds: its dictionary, its compressed data if read whole,
	// what it may decode ahead.
	j.cost = bh.dict + int64(x.ahead)
	if bh.uncompressed >= 0 {
		j.cost = min(bh.dict, bh.uncompressed) + min(int64(x.ahead), bh.uncompressed)
	}
	if bh.compressed >= 0 && bh.compressed <= xzMaxBlockRead {
		j.cost += bh.compressed
	}
	x.lastCost = j.cost
	j.cond = sync.NewCond(&j.mu)
	r := x.reader()
	j.r = r
	if bh.compressed >= 0 && bh.compressed <= xzMaxBlockRead {
		// Compressed data, padding and check: read now, decode anywhere.
		pad := (4 - (j.hdrSize+bh.compressed)%4) % 4
		data := x.buf(bh.compressed + pad + int64(x.checkSize))
		j.data = data
		if _, err := io.ReadFull(x.src, data); err != nil {
			return fmt.Errorf("block data: %w", err)
		}
		if !allZero(data[bh.compressed : bh.compressed+pad]) {
			return errors.New("non-zero block padding")
		}
		j.check = data[bh.compressed+pad:]
		r.ResetBytes(data[:bh.compressed], bh.dict, bh.uncompressed)
	} else {
		// Decoded as it is read: nothing else reads the source until it
		// is done.
		j.streamed = true
		r.Reset(x.src, bh.dict, bh.uncompressed)
	}
	x.pending = append(x.pending, j)
	go j.run(r, x.newHash(), x.free)
	return nil
}

// reader returns a decoder a finished block left, or a new one.
func (x *xzBlocks) reader() *lzmadec.Reader2 {
	if n := len(x.readers); n > 0 {
		r := x.readers[n-1]
		x.readers = x.readers[:n-1]
		return r
	}
	return new(lzmadec.Reader2)
}

// buf returns n bytes for a block's compressed data: a buffer a finished
// block left, if one is large enough, or a new one.
func (x *xzBlocks) buf(n int64) []byte {
	for i, b := range x.bufs {
		if int64(cap(b)) >= n {
			x.bufs = slices.Delete(x.bufs, i, i+1)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// recycle takes back a finished block's decoder and buffer, keeping one
// of each per worker.
func (x *xzBlocks) recycle(j *xzJob) {
	if len(x.readers) < x.workers {
		x.readers = append(x.readers, j.r)
	}
	if j.data != nil && len(x.bufs) < x.workers {
		x.bufs = append(x.bufs, j.data)
	}
	j.r, j.data, j.check = nil, nil, nil
}

// run decodes the block's LZMA2 data into chunks.
func (j *xzJob) run(r *lzmadec.Reader2, h hash.Hash, free chan []byte) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("LZMA2 decoder failed: %v", p)
		}
		if err == nil && h != nil {
			j.sum = h.Sum(nil)
			if h.Size() <= 8 {
				// CRC32 and CRC64 are stored little-endian; Sum is
				// big-endian. SHA-256 is stored as computed.
				slices.Reverse(j.sum)
			}
		}
		if j.streamed && err == nil {
			j.compressed = r.InputOffset()
		} else if err == nil && r.InputOffset() != j.compressed {
			err = errors.New("LZMA2 data ends before the compressed size the block header states")
		}
		j.mu.Lock()
		j.err, j.done = err, true
		j.mu.Unlock()
		j.cond.Broadcast()
	}()
	for {
		var c []byte
		select {
		case c = <-free:
		default:
			c = make([]byte, 0, xzOutChunk)
		}
		var n int
		n, err = io.ReadFull(r, c[:cap(c)])
		c = c[:n]
		j.total += int64(n)
		if h != nil {
			h.Write(c)
		}
		if j.uncompressed >= 0 && j.total > j.uncompressed {
			err = fmt.Errorf("block decodes to more than the %d bytes its header states", j.uncompressed)
			return
		}
		if n > 0 && !j.push(c) {
			err = errors.New("stopped")
			return
		}
		switch err {
		case nil:
			continue
		case io.EOF, io.ErrUnexpectedEOF:
			// io.ReadFull reports the decoder's io.EOF at the end marker
			// as io.ErrUnexpectedEOF after a short chunk.
			err = nil
		}
		return
	}
}

// push queues a decoded chunk, waiting while the block holds j.ahead
// bytes the reader has not taken; false once the reader stopped.
func (j *xzJob) push(c []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.buffered >= j.ahead && !j.stopped {
		j.cond.Wait()
	}
	if j.stopped {
		return false
	}
	j.chunks = append(j.chunks, c)
	j.buffered += len(c)
	j.cond.Broadcast()
	return true
}

// finishBlock checks a fully read block: sizes, padding and check, and
// records it for the index.
func (x *xzBlocks) finishBlock(j *xzJob) error {
	if j.uncompressed >= 0 && j.total != j.uncompressed {
		return fmt.Errorf("block decodes to %d bytes, its header states %d", j.total, j.uncompressed)
	}
	if j.streamed {
		pad := (4 - (j.hdrSize+j.compressed)%4) % 4
		tail := make([]byte, pad+int64(x.checkSize))
		if _, err := io.ReadFull(x.src, tail); err != nil {
			return fmt.Errorf("block check: %w", err)
		}
		if !allZero(tail[:pad]) {
			return errors.New("non-zero block padding")
		}
		j.check = tail[pad:]
	}
	if j.sum != nil && !bytes.Equal(j.sum, j.check) {
		return fmt.Errorf("block check mismatch (stored % x, computed % x): corrupt data", j.check, j.sum)
	}
	x.records = append(x.records, xzRecord{unpadded: uint64(j.hdrSize + j.compressed + int64(x.checkSize)), uncompressed: uint64(j.total)})
	x.recycle(j)
	return nil
}

// index reads the index and the footer after the last block and checks
// them against the blocks read.
func (x *xzBlocks) index() error {
	var buf bytes.Buffer
	buf.WriteByte(0)
	rd := io.TeeReader(x.src, &buf)
	br := &countio.ByteReader{Reader: countio.Reader{R: rd}}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if n != uint64(len(x.records)) {
		return fmt.Errorf("index lists %d blocks, the stream has %d", n, len(x.records))
	}
	for i := range x.records {
		u, err1 := binary.ReadUvarint(br)
		c, err2 := binary.ReadUvarint(br)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if (xzRecord{u, c}) != x.records[i] {
			return fmt.Errorf("index record %d (%d, %d bytes) does not match the block (%d, %d)", i, u, c, x.records[i].unpadded, x.records[i].uncompressed)
		}
	}
	pad := make([]byte, (4-(1+br.N)%4)%4)
	if _, err := io.ReadFull(rd, pad); err != nil || !allZero(pad) {
		return fmt.Errorf("index padding: %v", errOr(err, "non-zero"))
	}
	size := buf.Len()
	var tail [16]byte
	if _, err := io.ReadFull(x.src, tail[:]); err != nil {
		return fmt.Errorf("index CRC32 and stream footer: %w", err)
	}
	if crc32.ChecksumIEEE(buf.Bytes()) != binary.LittleEndian.Uint32(tail[:4]) {
		return errors.New("index CRC32 mismatch")
	}
	f := tail[4:]
	if crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]) {
		return errors.New("stream footer CRC32 mismatch")
	}
	if backward := (uint64(binary.LittleEndian.Uint32(f[4:8])) + 1) * 4; backward != uint64(size+4) {
		return fmt.Errorf("stream footer gives an index of %d bytes, it has %d", backward, size+4)
	}
	if [2]byte{f[8], f[9]} != x.flags {
		return errors.New("stream footer flags differ from the header's")
	}
	x.ended = true
	return nil
}

// stop ends every block still decoding and waits for none: a stopped
// worker returns at its next chunk.
func (x *xzBlocks) stop() {
	for _, j := range x.pending {
		j.mu.Lock()
		j.stopped = true
		j.mu.Unlock()
		j.cond.Broadcast()
	}
}

// Close stops the workers and waits for them, so none reads the source
// afterwards.
func (x *xzBlocks) Close() {
	x.stop()
	for _, j := range x.pending {
		j.mu.Lock()
		for !j.done {
			j.cond.Wait()
		}
		j.mu.Unlock()
	}
	x.pending = nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}
