package remix

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// The archive writer: one newc archive, in one compressed stream or in
// several cut at entry boundaries.

// archiveWriter writes one newc archive in one compressed stream or, for
// codecs that can cut it (codec.Cutter), in several independent streams
// ending at entry boundaries, compressed in parallel; the kernel reads them
// as one archive.
type archiveWriter struct {
	enc    io.WriteCloser
	cutter codec.Cutter
	// splicer and splice, both set or both nil: bodies compressed ahead
	// of time (WriteOptions.Splice).
	splicer codec.Splicer
	splice  func(Content) (*codec.Spliced, error)
	bw      *bufio.Writer
	cw      *newc.Writer
	buf     []byte
	added   int // entries written
	closed  bool
}

// newArchiveWriter starts the archive on w, after a lone trailer when
// closesArchive is set.
func newArchiveWriter(w io.Writer, opt WriteOptions, closesArchive bool) (*archiveWriter, error) {
	enc, err := codec.NewWriter(opt.Compression, w, codec.WriterOptions{Level: opt.Level, Concurrency: opt.Concurrency, FrameSize: opt.FrameSize, Window: opt.Window})
	if err != nil {
		return nil, err
	}
	a := &archiveWriter{enc: enc, buf: make([]byte, 256<<10)}
	// A Cutter holds whole frames itself; other encoders want large writes.
	a.cutter, _ = enc.(codec.Cutter)
	if sp, ok := enc.(codec.Splicer); ok && opt.Splice != nil && opt.Compression == codec.Zstd {
		a.splicer, a.splice = sp, opt.Splice
	}
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
		if a.splice != nil {
			s, err := a.splice(we.content)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if s != nil {
				return a.addSpliced(&h, we.content, s)
			}
		}
		return a.add(&h, func(w io.Writer) error { return copyContent(w, we.content, a.buf) })
	}
	return a.add(&h, nil)
}

// addSpliced writes a regular file's entry as a frame of its own around
// s, its body compressed ahead of time: the body's bytes are still read
// and go through the writer, which counts and checksums them.
func (a *archiveWriter) addSpliced(h *newc.Header, c Content, s *codec.Spliced) error {
	if s.Size() != h.Size {
		return fmt.Errorf("%s: body compressed ahead of time is %d bytes, the entry %d", h.Name, s.Size(), h.Size)
	}
	if a.added > 0 {
		if err := a.cw.Pad(); err != nil {
			return err
		}
	}
	if err := a.splicer.Splice(s); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	a.added++
	if err := a.cw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if err := a.splicer.SpliceBody(); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if err := copyContent(a.cw, c, a.buf); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
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
	// Through buf: an *os.File's WriteTo would take a fresh buffer for
	// every body.
	n, err := io.CopyBuffer(onlyWriter{w}, onlyReader{r}, buf)
	if err != nil {
		return err
	}
	if n != c.Size() {
		return fmt.Errorf("content is %d bytes, expected %d", n, c.Size())
	}
	return nil
}
