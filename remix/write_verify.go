package remix

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/internal/chunkpipe"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// Read-back verification: the written segment is decoded and compared
// with what was meant to be written, while it is written or afterwards.

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
	pr, pw := chunkpipe.New(16)
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
