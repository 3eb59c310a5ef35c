package remix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// WriteMode chooses how an edited image is laid out.
type WriteMode string

const (
	// Rewrite keeps the early uncompressed archives byte for byte and
	// writes everything else as one new compressed archive of the merged
	// tree: the smallest result, and it drops what later entries shadowed.
	Rewrite WriteMode = "rewrite"
	// Append keeps the whole original file byte for byte and adds one
	// segment holding only the edits, which the kernel applies last: the
	// fastest result, since nothing is decompressed or recompressed.
	Append WriteMode = "append"
)

// ParseWriteMode accepts "rewrite" and "append".
func ParseWriteMode(s string) (WriteMode, error) {
	switch WriteMode(s) {
	case Rewrite, Append:
		return WriteMode(s), nil
	}
	return "", fmt.Errorf("unknown write mode %q (want rewrite or append)", s)
}

// WriteOptions control Image.WriteTo.
type WriteOptions struct {
	Mode        WriteMode
	Compression codec.Codec // of the new segment; "" means zstd
	Level       int         // codec level; 0 is the codec's default
	Concurrency int         // encoder threads; 0 is GOMAXPROCS
	// FrameSize is the uncompressed size of the independent zstd frames
	// or gzip members the new archive is cut into, at entry boundaries,
	// to compress them in parallel; 0 is codec.DefaultFrameSize.
	FrameSize int
	// Verify decodes the new segment while it is written, on another
	// core, and checks that it follows the kernel's layout rules and holds
	// exactly the entries and contents intended; WriteTo fails otherwise.
	Verify bool
	// Copied says w is the OpenOptions.CopyTo of the Open that made the
	// image, a CopiedOutput holding the whole input: WriteTo cuts it to
	// the bytes the mode keeps instead of reading the input again.
	Copied bool
}

// WriteResult describes what WriteTo produced.
type WriteResult struct {
	Mode        WriteMode   `json:"mode"`
	Compression codec.Codec `json:"compression"`
	Bytes       int64       `json:"bytes"`
	KeptBytes   int64       `json:"kept_bytes"`  // copied unchanged from the input
	NewEntries  int         `json:"new_entries"` // entries in the new segment
	// NewSegmentOffset is where the new segment starts, -1 if none.
	NewSegmentOffset int64 `json:"new_segment_offset"`
	// Streamed is set when Repack wrote the new archive while reading the
	// input (see Repack).
	Streamed bool `json:"streamed"`
	written  []writtenEntry
	// closesArchive is set when the new segment starts with a lone
	// trailer, closing an archive the kept bytes left open.
	closesArchive bool
}

// writtenEntry is what the new segment must hold, for Verify.
type writtenEntry struct {
	h       newc.Header
	target  string
	content Content // the body written, for regular files with one
}

// WriteTo writes the image to w in the chosen mode. The original file at
// img.Path is re-read for the bytes that are kept.
func (img *Image) WriteTo(ctx context.Context, w io.Writer, opt WriteOptions) (*WriteResult, error) {
	if opt.Compression == "" {
		opt.Compression = codec.Zstd
	}
	if opt.Mode == "" {
		opt.Mode = Rewrite
	}
	if img.spool == nil {
		return nil, errors.New("image was opened for metadata only; it cannot be written")
	}
	res := &WriteResult{Mode: opt.Mode, Compression: opt.Compression, NewSegmentOffset: -1}
	cw := &countingWriter{w: w}
	var keep int64
	var minGen int
	switch opt.Mode {
	case Rewrite:
		first := img.FirstLate()
		keep = img.Size
		if first < len(img.Segments) {
			keep = img.Segments[first].Offset
		}
		minGen = first
	case Append:
		keep = img.Size
		minGen = img.EditGeneration()
	default:
		return nil, fmt.Errorf("unknown write mode %q", opt.Mode)
	}
	switch {
	case opt.Copied:
		if err := img.keepCopied(w, keep); err != nil {
			return nil, err
		}
		cw.n = keep
	case keep > 0:
		if err := copyPrefix(cw, img.Path, keep); err != nil {
			return nil, err
		}
	}
	res.KeptBytes = keep
	// The kernel continues an unterminated archive into the next segment,
	// with its hard-link table (major, minor, ino, mode) still full of the
	// kept entries: a new entry reusing one of their inode numbers would
	// become a hard link to an old file. A lone trailer first clears it.
	for _, s := range img.Segments {
		if s.End() <= keep && s.Length > 0 {
			res.closesArchive = s.Unterminated
		}
	}
	var nodes []*Node
	for _, n := range img.Tree.Nodes() {
		if n.Gen() >= minGen {
			nodes = append(nodes, n)
		}
	}
	nodes = withWholeLinkGroups(img.Tree, nodes)
	if len(nodes) > 0 {
		if err := padForNextSegment(cw, img.Segments, keep, opt.Mode); err != nil {
			return nil, err
		}
		res.NewSegmentOffset = cw.n
		n, err := writeVerified(ctx, cw, nodes, opt, res)
		if err != nil {
			return nil, err
		}
		res.NewEntries = n
		if err := padArchiveEnd(cw, opt.Compression); err != nil {
			return nil, err
		}
	}
	res.Bytes = cw.n
	return res, nil
}

// padArchiveEnd ends an uncompressed new archive as GNU cpio does: tools
// that split images (unmkinitramfs) find its end by the zero padding to a
// 512-byte block; the kernel skips zeros.
func padArchiveEnd(w *countingWriter, c codec.Codec) error {
	if c != codec.None {
		return nil
	}
	pad := 512 - w.n%512
	if pad < 4 {
		pad += 512
	}
	_, err := w.Write(make([]byte, pad))
	return err
}

// padForNextSegment adds the zero bytes the kernel needs before a new
// segment: archives must start 4-byte aligned after an uncompressed one,
// and a legacy lz4 stream, which has no end marker, only ends at a zero
// chunk size, so it must be followed by at least four zero bytes.
func padForNextSegment(w *countingWriter, segs []Segment, keep int64, mode WriteMode) error {
	pad := (4 - w.n%4) % 4
	if mode == Append && len(segs) > 0 {
		last := segs[len(segs)-1]
		if need := int64(codec.TrailingZeros(last.Compression)) - last.Padding - pad; need > 0 {
			pad += (need + 3) &^ 3 // still 4-byte aligned
		}
	}
	if pad == 0 {
		return nil
	}
	_, err := w.Write(make([]byte, pad))
	return err
}

func copyPrefix(w io.Writer, path string, n int64) error {
	f, _, err := OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.Copy(w, io.LimitReader(f, n))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if got != n {
		return fmt.Errorf("%s: changed while being read (%d bytes instead of %d)", path, got, n)
	}
	return nil
}

// withWholeLinkGroups adds the other names of every hard-linked inode, in
// tree order, because the kernel links names only within one archive.
func withWholeLinkGroups(t *Tree, nodes []*Node) []*Node {
	need := map[*Inode]bool{}
	for _, n := range nodes {
		if n.Inode.links > 1 {
			need[n.Inode] = true
		}
	}
	if len(need) == 0 {
		return nodes
	}
	var out []*Node
	in := map[*Node]bool{}
	for _, n := range nodes {
		in[n] = true
	}
	for _, n := range t.Nodes() {
		if in[n] || need[n.Inode] {
			out = append(out, n)
		}
	}
	return out
}

// detachTarget is the target of the symlink written before a name that
// Tree.Replace detached from its old inode.
const detachTarget = "initrd-remix-replaced"

// planEntries returns the entries of the new archive for nodes, in order:
// what writeArchive writes and what a check of the written segment expects.
// Inode numbers are assigned afresh in output order, so the result depends
// only on the tree. Hard-linked names carry the data on the last one, as GNU
// cpio does; the kernel accepts either placement.
func planEntries(nodes []*Node, mode WriteMode) []writtenEntry {
	inos := map[*Inode]uint32{}
	total := map[*Inode]int{}
	for _, n := range nodes {
		if _, ok := inos[n.Inode]; !ok {
			inos[n.Inode] = uint32(len(inos) + 1)
		}
		total[n.Inode]++
	}
	seen := map[*Inode]int{}
	plan := make([]writtenEntry, 0, len(nodes))
	for i, n := range nodes {
		in := n.Inode
		if n.detached && mode == Append {
			// A symlink first: the kernel unlinks whatever has the name
			// (clean_path), so the entry after it makes a new inode.
			plan = append(plan, writtenEntry{h: newc.Header{Name: n.Path, Ino: uint32(len(nodes) + 1 + i),
				Mode: newc.TypeSymlink | 0o777, Nlink: 1, Mtime: in.Mtime, Size: int64(len(detachTarget))},
				target: detachTarget})
		}
		seen[in]++
		plan = append(plan, entryFor(n.Path, in, inos[in], total[in], seen[in] == total[in]))
	}
	return plan
}

// entryFor is the entry written for one name of inode in: ino its number in
// the archive, links its names there, last whether this name is the last
// of them (the one that carries a regular file's data).
func entryFor(name string, in *Inode, ino uint32, links int, last bool) writtenEntry {
	h := newc.Header{Name: name, Ino: ino, Mode: in.Mode, UID: in.UID, GID: in.GID,
		Nlink: 1, Mtime: in.Mtime, RDevMajor: in.RDevMajor, RDevMinor: in.RDevMinor}
	we := writtenEntry{}
	switch in.Type() {
	case newc.TypeDir:
		h.Nlink = 2
	case newc.TypeSymlink:
		h.Size = int64(len(in.Target))
		we.target = in.Target
	case newc.TypeReg:
		h.Nlink = uint32(links)
		if last {
			h.Size = in.Size()
			if h.Size > 0 {
				we.content = in.Content
			}
		}
	default:
		h.Nlink = uint32(links)
	}
	we.h = h
	return we
}

// archiveWriter writes one newc archive in one compressed stream or, for
// codecs that can cut it (codec.Cutter), in several independent streams
// ending at entry boundaries, compressed in parallel; the kernel reads them
// as one archive.
type archiveWriter struct {
	enc    io.WriteCloser
	cutter codec.Cutter
	bw     *bufio.Writer
	cw     *newc.Writer
	buf    []byte
	added  int // entries written
	closed bool
}

// newArchiveWriter starts the archive on w, after a lone trailer when
// closesArchive is set.
func newArchiveWriter(w io.Writer, opt WriteOptions, closesArchive bool) (*archiveWriter, error) {
	enc, err := codec.NewWriter(opt.Compression, w, codec.WriterOptions{Level: opt.Level, Concurrency: opt.Concurrency, FrameSize: opt.FrameSize})
	if err != nil {
		return nil, err
	}
	a := &archiveWriter{enc: enc, buf: make([]byte, 256<<10)}
	// A Cutter holds whole frames itself; other encoders want large writes.
	a.cutter, _ = enc.(codec.Cutter)
	var out io.Writer = enc
	if a.cutter == nil {
		a.bw = bufio.NewWriterSize(enc, 1<<20)
		out = a.bw
	}
	if closesArchive {
		if err := newc.NewWriter(out).Close(); err != nil {
			a.abort()
			return nil, err
		}
	}
	a.cw = newc.NewWriter(out)
	return a, nil
}

// add writes one entry; body writes its h.Size bytes (nil for none). The
// end of the entry before it is marked as a place where a stream may end;
// the last entry stays with the trailer, since a stream of a trailer alone
// would only cost a frame header.
func (a *archiveWriter) add(h *newc.Header, body func(w io.Writer) error) error {
	if a.added > 0 && a.cutter != nil {
		if err := a.cw.Pad(); err != nil {
			return err
		}
		if err := a.cutter.Cut(); err != nil {
			return err
		}
	}
	a.added++
	if err := a.cw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if body == nil {
		return nil
	}
	if err := body(a.cw); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}

// addWritten writes a planned entry, its body taken from the tree.
func (a *archiveWriter) addWritten(we *writtenEntry) error {
	h := we.h
	switch {
	case h.Type() == newc.TypeSymlink:
		return a.add(&h, func(w io.Writer) error {
			_, err := io.WriteString(w, we.target)
			return err
		})
	case h.Size > 0:
		return a.add(&h, func(w io.Writer) error { return copyContent(w, we.content, a.buf) })
	}
	return a.add(&h, nil)
}

// finish writes the trailer and ends the last stream.
func (a *archiveWriter) finish() error {
	if err := a.cw.Close(); err != nil {
		a.abort()
		return err
	}
	if a.bw != nil {
		if err := a.bw.Flush(); err != nil {
			a.abort()
			return err
		}
	}
	a.closed = true
	return a.enc.Close()
}

// abort stops the encoder's goroutines after a failure; the output is
// unusable.
func (a *archiveWriter) abort() {
	if !a.closed {
		a.closed = true
		a.enc.Close()
	}
}

// writeArchive writes nodes as one new archive (see planEntries and
// archiveWriter), recording each entry before its bytes exist, so a checker
// decoding the output never waits on the writer.
func writeArchive(ctx context.Context, w io.Writer, nodes []*Node, opt WriteOptions, res *WriteResult, record func(writtenEntry)) (int, error) {
	plan := planEntries(nodes, opt.Mode)
	a, err := newArchiveWriter(w, opt, res.closesArchive)
	if err != nil {
		return 0, err
	}
	for i := range plan {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				a.abort()
				return 0, err
			}
		}
		record(plan[i])
		if err := a.addWritten(&plan[i]); err != nil {
			a.abort()
			return 0, err
		}
	}
	if err := a.finish(); err != nil {
		return 0, err
	}
	return len(plan), nil
}

func copyContent(w io.Writer, c Content, buf []byte) error {
	r, err := c.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyBuffer(w, r, buf)
	if err != nil {
		return err
	}
	if n != c.Size() {
		return fmt.Errorf("content is %d bytes, expected %d", n, c.Size())
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeVerified writes the new segment and, when asked, checks it as it
// is produced: a tee feeds a decoder on another goroutine, which compares
// each entry with a queue the writer fills. Entries are queued before their
// compressed bytes exist, so the checker never waits for a queue entry that
// the writer has not produced.
func writeVerified(ctx context.Context, w io.Writer, nodes []*Node, opt WriteOptions, res *WriteResult) (int, error) {
	return produceVerified(ctx, w, opt, res, func(w io.Writer, record func(writtenEntry)) (int, error) {
		return writeArchive(ctx, w, nodes, opt, res, record)
	})
}

// produceVerified runs produce, which writes the new part to the writer it
// is given and records each entry (before writing it), and checks the part
// as writeVerified does when opt.Verify is set.
func produceVerified(ctx context.Context, w io.Writer, opt WriteOptions, res *WriteResult,
	produce func(w io.Writer, record func(writtenEntry)) (int, error)) (int, error) {
	q := &entryQueue{}
	q.cond = sync.NewCond(&q.mu)
	record := func(we writtenEntry) {
		res.written = append(res.written, we)
		if opt.Verify {
			q.push(we)
		}
	}
	if !opt.Verify {
		return produce(w, record)
	}
	pr, pw := newBufferedPipe(16)
	checked := make(chan error, 1)
	go func() {
		err := checkSegment(ctx, pr, opt.Compression, res.archives(), q.get)
		pr.CloseWithError(err)
		checked <- err
	}()
	n, err := produce(io.MultiWriter(w, pw), record)
	q.close()
	pw.CloseWithError(err)
	cerr := <-checked
	if err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, &VerifyError{Err: cerr}
	}
	return n, nil
}

// VerifyError reports a written segment that did not read back as it was
// meant to (WriteOptions.Verify): a defect of the writer, not of the input.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "verify: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// entryQueue hands the entries the writer produced to the checker.
type entryQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []writtenEntry
	closed bool
}

func (q *entryQueue) push(we writtenEntry) {
	q.mu.Lock()
	q.items = append(q.items, we)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *entryQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// get returns entry i, waiting for the writer; false once none will come.
func (q *entryQueue) get(i int) (writtenEntry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i >= len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if i >= len(q.items) {
		return writtenEntry{}, false
	}
	return q.items[i], true
}

// archives is the number of archives the new part starts: the new one, and
// the lone trailer that closes an archive the kept bytes left open.
func (res *WriteResult) archives() int {
	if res.closesArchive {
		return 2
	}
	return 1
}

// checkSegment reads the written new part and compares every entry's header,
// symlink target and body with want(i). Bodies are compared byte for byte
// with the content that was written (no digests: hashing both sides cost more
// than the comparison, and a comparison cannot collide). The part must be
// streams of codec c that start exactly archives archives, every later
// compressed stream continuing the archive of the one before (so no frame
// was lost or cut inside an entry), the last one terminated.
func checkSegment(ctx context.Context, r io.Reader, c codec.Codec, archives int, want func(int) (writtenEntry, bool)) error {
	n := 0
	buf := make([]byte, 64<<10)
	segs, err := Scan(ctx, r, ScanOptions{MaxMetadata: -1}, func(_ *Segment, _ int, h *newc.Header, body io.Reader) error {
		w, ok := want(n)
		if !ok {
			return fmt.Errorf("unexpected extra entry %q", h.Name)
		}
		n++
		content := w.content
		got := writtenEntry{h: *h}
		got.h.Offset, got.h.Magic, got.h.Check = 0, "", 0
		w.h.Offset, w.h.Magic, w.h.Check, w.content = 0, "", 0, nil
		if h.Type() == newc.TypeSymlink {
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			got.target = string(b)
		}
		if got != w {
			return fmt.Errorf("entry %q reads back as %+v, was written as %+v", h.Name, got.h, w.h)
		}
		if h.Type() == newc.TypeReg && h.Size > 0 {
			if content == nil {
				return fmt.Errorf("entry %q reads back with %d bytes, was written empty", h.Name, h.Size)
			}
			if err := sameContent(body, content, buf); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, more := want(n); more {
		return fmt.Errorf("only %d entries read back, more were written", n)
	}
	started := 0
	for i, s := range segs {
		if s.Compression != c {
			return fmt.Errorf("the new part's segment %d is %s, want %s", i, s.Compression, c)
		}
		if i > 0 && c != codec.None && !s.Continues {
			return fmt.Errorf("the new part's %s stream %d at offset %d starts a new archive instead of continuing the one before", c, i, s.Offset)
		}
		started += s.Archives
	}
	if len(segs) == 0 || started != archives || segs[len(segs)-1].Unterminated {
		return fmt.Errorf("the new part holds %d segments starting %d archives, want %d archives, the last one terminated", len(segs), started, archives)
	}
	return nil
}

// sameContent reads body to its end and checks it equals c.
func sameContent(body io.Reader, c Content, buf []byte) error {
	switch c := c.(type) {
	case BytesContent:
		return compareReader(body, c, buf)
	case *streamedContent:
		return c.matches(body, buf)
	}
	r, err := c.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	half := len(buf) / 2
	var off int64
	for {
		n, err := io.ReadFull(body, buf[:half])
		if n > 0 {
			if _, werr := io.ReadFull(r, buf[half:half+n]); werr != nil {
				return fmt.Errorf("content shorter than the %d bytes read back: %w", off+int64(n), werr)
			}
			if !bytes.Equal(buf[:n], buf[half:half+n]) {
				return fmt.Errorf("content differs within bytes %d-%d", off, off+int64(n))
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != c.Size() {
		return fmt.Errorf("reads back %d bytes, %d were written", off, c.Size())
	}
	return nil
}

// compareReader reads r to its end and checks it equals want.
func compareReader(r io.Reader, want []byte, buf []byte) error {
	var off int
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if off+n > len(want) || !bytes.Equal(buf[:n], want[off:off+n]) {
				return fmt.Errorf("content differs within bytes %d-%d", off, off+n)
			}
			off += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != len(want) {
		return fmt.Errorf("reads back %d bytes, %d were written", off, len(want))
	}
	return nil
}

// Verify re-reads what WriteTo wrote at path and checks it like the
// Verify option does; use it when the output went somewhere else first.
func (res *WriteResult) Verify(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != res.Bytes {
		return fmt.Errorf("%s: %d bytes on disk, %d written", path, st.Size(), res.Bytes)
	}
	if res.NewSegmentOffset < 0 {
		return nil
	}
	sr := io.NewSectionReader(f, res.NewSegmentOffset, st.Size()-res.NewSegmentOffset)
	err = checkSegment(ctx, sr, res.Compression, res.archives(), func(i int) (writtenEntry, bool) {
		if i < len(res.written) {
			return res.written[i], true
		}
		return writtenEntry{}, false
	})
	if err != nil {
		return fmt.Errorf("%s: verify at offset %d: %w", path, res.NewSegmentOffset, err)
	}
	return nil
}

// bufferedPipe decouples the writer from the checker by up to a number of
// chunks, so the encoder keeps working while the checker catches up (an
// io.Pipe would run the two in lockstep on one core). Chunk buffers are
// handed back to the writer once read: fresh memory costs a page fault per
// page on first touch, which showed in repack profiles.
type bufferedPipe struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	werr error // set by the writer's close
	rerr error // set by the reader's close
	cur  []byte
	buf  []byte // the chunk cur points into, recycled once consumed
}

type pipeReader struct{ p *bufferedPipe }
type pipeWriter struct{ p *bufferedPipe }

func newBufferedPipe(chunks int) (*pipeReader, *pipeWriter) {
	p := &bufferedPipe{ch: make(chan []byte, chunks), free: make(chan []byte, chunks+2), done: make(chan struct{})}
	return &pipeReader{p}, &pipeWriter{p}
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	rerr := p.rerr
	p.mu.Unlock()
	if rerr != nil {
		return 0, rerr
	}
	var c []byte
	select {
	case c = <-p.free:
	default:
	}
	c = append(c[:0], b...)
	select {
	case p.ch <- c:
		return len(b), nil
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return 0, p.rerr
	}
}

// CloseWithError ends the stream; the reader sees err, or io.EOF if nil.
func (w *pipeWriter) CloseWithError(err error) {
	w.p.mu.Lock()
	if err == nil {
		err = io.EOF
	}
	w.p.werr = err
	w.p.mu.Unlock()
	close(w.p.ch)
}

func (r *pipeReader) Read(b []byte) (int, error) {
	p := r.p
	for len(p.cur) == 0 {
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// next hands the consumed chunk back to the writer and takes the next one;
// at the end of the stream it returns the writer's error (io.EOF if none).
func (r *pipeReader) next() error {
	p := r.p
	if p.buf != nil {
		select {
		case p.free <- p.buf:
		default:
		}
		p.buf = nil
	}
	c, ok := <-p.ch
	if !ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.werr
	}
	p.cur, p.buf = c, c
	return nil
}

// WriteTo hands each chunk to w as it comes, with no copy through an
// intermediate buffer (io.Copy uses it).
func (r *pipeReader) WriteTo(w io.Writer) (int64, error) {
	p := r.p
	var total int64
	for {
		if len(p.cur) > 0 {
			n, err := w.Write(p.cur)
			total += int64(n)
			p.cur = p.cur[n:]
			if err != nil {
				return total, err
			}
		}
		if err := r.next(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
	}
}

// CloseWithError stops the writer: its next Write fails with err.
func (r *pipeReader) CloseWithError(err error) {
	p := r.p
	p.mu.Lock()
	if err == nil {
		err = io.ErrClosedPipe
	}
	if p.rerr == nil {
		p.rerr = err
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}
