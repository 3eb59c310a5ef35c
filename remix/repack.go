package remix

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// RepackOptions control Repack.
type RepackOptions struct {
	ScanOptions
	// Write must have Mode Rewrite (or ""); Copied is ignored.
	Write WriteOptions
	// SpoolDir and Progress are as in OpenOptions (a streaming repack
	// spools nothing; the ordinary one does).
	SpoolDir string
	Progress func(read int64)
}

// Repack writes the initrd at path to out rewritten with no change to any
// entry: exactly the bytes Open with OpenOptions.CopyTo out followed by
// WriteTo in Rewrite mode with WriteOptions.Copied would write, and checked
// the same way when Write.Verify is set. It is faster: the new archive is
// compressed while the input is still being decoded, and file bodies go
// from the decoder to the encoder without being kept.
//
// That streaming is a wager that the merged tree lists the entries of the
// compressed segments in the order they came, each name once, hard-linked
// names with their data on the last one: what every generator writes. The
// wager is checked against the tree once the input is read, and where it
// fails (names given twice, a later archive overriding, data on the first
// hard link...), the input is read again and written the ordinary way, so
// the output never depends on it. WriteResult.Streamed tells which way was
// taken.
func Repack(ctx context.Context, path string, out CopiedOutput, opt RepackOptions) (*WriteResult, error) {
	if opt.Write.Mode == "" {
		opt.Write.Mode = Rewrite
	}
	if opt.Write.Mode != Rewrite {
		return nil, fmt.Errorf("Repack writes in %s mode, not %s", Rewrite, opt.Write.Mode)
	}
	if opt.Write.Compression == "" {
		opt.Write.Compression = codec.Zstd
	}
	opt.Write.Copied = true
	res, err := repackStreaming(ctx, path, out, opt)
	if err == nil || !errors.Is(err, errNotStreamable) {
		return res, err
	}
	// The ordinary way, from the start: nothing of the attempt is kept.
	if err := out.Truncate(0); err != nil {
		return nil, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, err := Open(ctx, path, OpenOptions{ScanOptions: opt.ScanOptions, SpoolDir: opt.SpoolDir,
		Progress: opt.Progress, CopyTo: out})
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return img.WriteTo(ctx, out, opt.Write)
}

// errNotStreamable abandons a streaming repack for the ordinary one.
var errNotStreamable = errors.New("the image cannot be rewritten as it is read")

func repackStreaming(ctx context.Context, path string, out CopiedOutput, opt RepackOptions) (*WriteResult, error) {
	f, _, r, err := openInput(path, opt.Progress)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The input is copied to out as it is read, for the early archives
	// kept in front; the copy stops where the first compressed segment
	// starts and is cut back to it.
	cp := newInputCopy(r, out)
	defer cp.finish()
	res := &WriteResult{Mode: Rewrite, Compression: opt.Write.Compression, NewSegmentOffset: -1, Streamed: true}
	s := &streamer{ctx: ctx, out: out, cp: cp, opt: opt.Write, res: res, seed: maphash.MakeSeed(),
		inos: map[*Inode]uint32{}, links: map[*Inode]*linkCount{}}
	img := &Image{Tree: NewTree()}
	b := &treeBuilder{img: img, links: map[linkKey]string{}, stream: s}
	s.tree = img.Tree
	var segs []Segment
	n, err := produceVerified(ctx, io.Discard, opt.Write, res, func(check io.Writer, record func(writtenEntry)) (int, error) {
		s.check, s.record = check, record
		var err error
		segs, err = Scan(ctx, cp, opt.ScanOptions, b.entry)
		if err == nil {
			err = s.finish(img, segs)
		}
		if err != nil {
			s.abort()
			return 0, err
		}
		return len(res.written), nil
	})
	if err != nil {
		if errors.Is(err, errNotStreamable) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := padArchiveEnd(s.cw, opt.Write.Compression); err != nil {
		return nil, err
	}
	res.NewEntries = n
	res.Bytes = s.cw.N
	return res, nil
}

// streamer writes the new archive while the image is read: each entry of
// the compressed segments goes to the encoder as soon as the tree has
// applied it, with the header the ordinary writer would give it (see
// planEntries), and its body straight from the decoder.
type streamer struct {
	ctx  context.Context
	out  CopiedOutput
	cp   *inputCopy
	opt  WriteOptions
	res  *WriteResult
	seed maphash.Seed
	tree *Tree

	check  io.Writer // the checker's side of the output, from produceVerified
	record func(writtenEntry)

	started  bool
	startSeg int // index of the segment the new archive replaces from
	cw       *countio.Writer
	aw       *archiveWriter
	pending  *streamedContent // the body being copied
	inos     map[*Inode]uint32
	links    map[*Inode]*linkCount
}

// linkCount tracks the names of a hard-linked inode: how many the input's
// header announced and how many were written.
type linkCount struct{ want, seen int }

// content stands for a body the streamer will copy (see streamedContent).
func (s *streamer) content(size int64) Content {
	return &streamedContent{size: size, seed: s.seed, done: make(chan struct{})}
}

// entry writes one entry the tree has just applied: n is its node (nil if
// the kernel would drop it), fresh whether it is a new name, c the content
// the entry gave, body its unread body.
func (s *streamer) entry(seg *Segment, h *newc.Header, n *Node, fresh bool, c Content, body io.Reader) error {
	if seg.Compression == codec.None {
		// Early archives are kept as they are; an uncompressed archive
		// with other names, or after the new archive began, is not
		// something the stream can follow.
		if s.started || !isEarlyName(Canonical(h.Name)) {
			return errNotStreamable
		}
		return nil
	}
	if n == nil {
		return errNotStreamable
	}
	if !s.started {
		if err := s.start(seg, n); err != nil {
			return err
		}
	}
	if !fresh && !(n.Path == "." && len(s.res.written) == 0) {
		return errNotStreamable
	}
	in := n.Inode
	ino, ok := s.inos[in]
	if !ok {
		ino = uint32(len(s.inos) + 1)
		s.inos[in] = ino
	}
	links, last := 1, true
	if typ := in.Type(); typ != newc.TypeDir && typ != newc.TypeSymlink && h.Nlink >= 2 {
		lc := s.links[in]
		if lc == nil {
			lc = &linkCount{want: int(h.Nlink)}
			s.links[in] = lc
		}
		lc.seen++
		links, last = lc.want, lc.seen == lc.want
		// The data must come with the last name, which is where it is
		// written: a body on an earlier one is not kept to move it.
		if lc.seen > lc.want || (!last && h.Size > 0) {
			return errNotStreamable
		}
	}
	we := entryFor(n.Path, in, ino, links, last)
	sc, _ := c.(*streamedContent)
	if we.content != nil && (sc == nil || we.content != Content(sc)) {
		return errNotStreamable
	}
	return s.write(we, sc, body)
}

// start begins the new archive at the first compressed segment: the copy of
// the input is cut back to the bytes before it, which are kept.
func (s *streamer) start(seg *Segment, n *Node) error {
	if seg.Continues {
		// An early archive left open would need a lone trailer first.
		return errNotStreamable
	}
	s.started, s.startSeg = true, seg.Index
	l, err := planLayout(nil, seg.Offset, Rewrite)
	if err != nil {
		return err
	}
	copied, err := s.cp.finish()
	if err != nil {
		return err
	}
	if copied < l.keep {
		return fmt.Errorf("copy of the input holds %d bytes, %d are kept", copied, l.keep)
	}
	if err := l.cutCopy(s.out); err != nil {
		return err
	}
	s.cw = &countio.Writer{W: s.out, N: l.keep}
	s.res.KeptBytes = l.keep
	if err := l.padBefore(s.cw); err != nil {
		return err
	}
	s.res.NewSegmentOffset = s.cw.N
	if s.aw, err = newArchiveWriter(io.MultiWriter(s.cw, s.check), s.opt, l.closesArchive); err != nil {
		return err
	}
	// With nothing before the new archive, the root is written whether or
	// not the input lists it; when the input does, it is its first entry.
	if seg.Index == 0 && n.Path != "." {
		root := s.tree.Get(".")
		s.inos[root.Inode] = 1
		return s.write(entryFor(".", root.Inode, 1, 1, true), nil, nil)
	}
	return nil
}

// write records an entry and writes it, its body copied from the input and
// hashed on the way for the check.
func (s *streamer) write(we writtenEntry, sc *streamedContent, body io.Reader) error {
	if len(s.res.written)&1023 == 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	s.record(we)
	switch {
	case we.h.Type() == newc.TypeSymlink:
		return s.aw.addWritten(&we)
	case we.h.Size > 0:
		s.pending = sc
		if err := s.aw.add(&we.h, func(w io.Writer) error { return sc.copyFrom(w, body, s.aw.buf) }); err != nil {
			return err
		}
		s.pending = nil
		return nil
	}
	return s.aw.add(&we.h, nil)
}

// finish checks the wager against the tree the input built and, if it
// holds, ends the archive.
func (s *streamer) finish(img *Image, segs []Segment) error {
	img.Segments = segs
	if !s.started || countEntries(segs) == 0 {
		return errNotStreamable
	}
	img.Tree.SetGeneration(len(segs))
	first := img.FirstLate()
	if first != s.startSeg || len(img.Dropped) > 0 {
		return errNotStreamable
	}
	plan := planEntries(newNodes(img.Tree, first), Rewrite)
	if len(plan) != len(s.res.written) {
		return errNotStreamable
	}
	for i := range plan {
		if plan[i] != s.res.written[i] {
			return errNotStreamable
		}
	}
	return s.aw.finish()
}

// abort stops the encoder of an abandoned or failed stream.
func (s *streamer) abort() {
	if s.aw != nil {
		s.aw.abort()
	}
	// A checker waiting for the hash of a body cut short must not hang.
	if c := s.pending; c != nil {
		select {
		case <-c.done:
		default:
			c.err = errors.New("write abandoned")
			close(c.done)
		}
	}
}

// streamedContent is a body that went from the input to the output while
// the image was read (Repack). It is not kept: only its size and a hash of
// its bytes, for the check of the written segment, which compares the hash
// of what it reads back.
type streamedContent struct {
	size int64
	seed maphash.Seed
	sum  uint64
	err  error
	done chan struct{} // closed once sum (or err) is set
}

// Size implements Content.
func (c *streamedContent) Size() int64 { return c.size }

// Open implements Content: the body was not kept.
func (c *streamedContent) Open() (io.ReadCloser, error) { return nil, ErrContentNotKept }

// copyFrom copies the body from r to w, hashing it.
func (c *streamedContent) copyFrom(w io.Writer, r io.Reader, buf []byte) error {
	var h maphash.Hash
	h.SetSeed(c.seed)
	n, err := io.CopyBuffer(io.MultiWriter(w, &h), io.LimitReader(r, c.size), buf)
	if err == nil && n != c.size {
		err = fmt.Errorf("body is %d bytes, header says %d", n, c.size)
	}
	c.sum, c.err = h.Sum64(), err
	close(c.done)
	return err
}

// matches reads body to its end and checks it hashes as the copied bytes.
func (c *streamedContent) matches(body io.Reader, buf []byte) error {
	var h maphash.Hash
	h.SetSeed(c.seed)
	n, err := io.CopyBuffer(&h, body, buf)
	if err != nil {
		return err
	}
	<-c.done
	if c.err != nil {
		return c.err
	}
	if n != c.size {
		return fmt.Errorf("reads back %d bytes, %d were written", n, c.size)
	}
	if h.Sum64() != c.sum {
		return errors.New("content differs from the input's")
	}
	return nil
}
