package codec

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/initrd-remix/initrd-remix/internal/ordered"
	"github.com/initrd-remix/initrd-remix/remix/internal/hugemem"
)

// DefaultFrameSize is the uncompressed size after which a Cutter ends its
// current zstd frame or gzip member at the next Cut. Measured on the lab's
// Debian images (zstd level 3, two cores): 8 MiB frames cost about 1% in
// size against one frame and leave enough frames for the workers.
const DefaultFrameSize = 8 << 20

// Cutter is implemented by the writers NewWriter returns for zstd and gzip.
// The kernel decodes one zstd frame or one gzip member per call and then
// goes on with the next, keeping its cpio state, so a cpio archive may be
// cut over several streams at its entry boundaries. Cut tells the writer
// that the bytes written so far end at such a boundary: once the current
// stream holds WriterOptions.FrameSize bytes or more, Cut ends it there and
// the next byte starts a new, independent stream. The streams are compressed
// in parallel, so the output is several streams where one writer without
// Cut calls gives exactly one. Where the cuts fall depends only on the bytes
// and the Cut calls, never on Concurrency or timing.
type Cutter interface {
	Cut() error
}

// frameEncoder is one independent compressor, reused from stream to stream
// through Reset (which must forget all history).
type frameEncoder interface {
	Reset(w io.Writer)
	Write(p []byte) (int, error)
	Close() error
}

// frameJob is one stream to compress: its uncompressed bytes in, its
// compressed bytes out.
type frameJob struct {
	in  []byte
	out frameOut
	// parts, when set, is a spliced frame, written as it is.
	parts []framePart
}

// framedWriter cuts its input into streams at Cut calls and compresses them
// on a pool of workers, writing the results in order. At most workers+1
// streams are in flight, and a stream that outgrows maxBuffered (one huge
// entry, or a caller that never cuts) is compressed straight to w instead of
// being held, so memory stays bounded by a few frames whatever the input.
type framedWriter struct {
	w         io.Writer
	frameSize int
	newEnc    func() (frameEncoder, error)

	cur     []byte
	pool    *ordered.Pool[*frameJob] // streams submitted, not yet written
	encs    []frameEncoder           // each worker's, made on first use
	freeIn  [][]byte                 // input buffers of written streams
	freeJob []*frameJob              // written jobs, whose output buffers are reused
	workers int

	direct  frameEncoder // non-nil while a stream goes straight to w
	streams int          // streams started, written or in flight
	err     error        // sticky
	closed  bool

	// zstdWindow, when set, makes the writer a Splicer for bodies of
	// zstdLevel and zstdWindow; sp is the spliced frame being written.
	zstdLevel  zstd.EncoderLevel
	zstdWindow int
	sp         *splice
	copyBuf    []byte // for spliced blocks held in a file
}

// maxBufferedFrames bounds a held stream, in frames, before it is
// compressed straight to the output.
const maxBufferedFrames = 4

// writeChunk bounds the writes of compressed streams to the output.
const writeChunk = 256 << 10

func newFramedWriter(w io.Writer, frameSize, workers int, newEnc func() (frameEncoder, error)) *framedWriter {
	if frameSize <= 0 {
		frameSize = DefaultFrameSize
	}
	workers = max(workers, 1)
	return &framedWriter{w: w, frameSize: frameSize, newEnc: newEnc, workers: workers,
		pool: ordered.New[*frameJob](context.Background(), workers), encs: make([]frameEncoder, workers)}
}

// compress is the job of one stream, run by a worker with its own encoder.
func (f *framedWriter) compress(j *frameJob) ordered.Func[*frameJob] {
	return func(_ context.Context, worker int) (*frameJob, error) {
		enc := f.encs[worker]
		if enc == nil {
			var err error
			if enc, err = f.newEnc(); err != nil {
				return nil, err
			}
			f.encs[worker] = enc
		}
		// Room for the usual ratio up front: growing it step by step
		// copied and cleared the output several times per frame.
		j.out.reset(len(j.in) / 2)
		enc.Reset(&j.out)
		_, err := enc.Write(j.in)
		if cerr := enc.Close(); err == nil {
			err = cerr
		}
		return j, err
	}
}

func (f *framedWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.closed {
		return 0, errors.New("write after Close")
	}
	if f.sp != nil {
		f.sp.write(p)
		return len(p), nil
	}
	if f.direct != nil {
		n, err := f.direct.Write(p)
		if err != nil {
			f.err = err
		}
		return n, err
	}
	if f.cur == nil {
		f.cur = f.takeBuffer()
	}
	f.cur = append(f.cur, p...)
	if len(f.cur) > maxBufferedFrames*f.frameSize {
		if err := f.goDirect(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// goDirect writes out every stream before the current one, then feeds the
// current one through an encoder writing to w. The stream's bytes are the
// same as if a worker had compressed it: the encoders' output does not
// depend on how their input is split into writes.
func (f *framedWriter) goDirect() error {
	if err := f.drain(0); err != nil {
		return err
	}
	enc, err := f.newEnc()
	if err != nil {
		f.err = err
		return err
	}
	enc.Reset(f.w)
	f.direct = enc
	f.streams++
	_, err = enc.Write(f.cur)
	f.freeIn = append(f.freeIn, f.cur[:0])
	f.cur = nil
	if err != nil {
		f.err = err
	}
	return err
}

// takeBuffer returns an input buffer for a new stream: fresh memory costs
// a page fault per page on first touch, which showed in profiles.
func (f *framedWriter) takeBuffer() []byte {
	if n := len(f.freeIn); n > 0 {
		b := f.freeIn[n-1]
		f.freeIn = f.freeIn[:n-1]
		return b
	}
	return hugemem.Alloc(f.frameSize + f.frameSize/2)[:0]
}

// frameOut collects one compressed stream. Its buffer is kept from stream
// to stream and allocated with huge pages: the output buffers of a few
// frames, touched fresh, cost more in page faults than the compression.
type frameOut struct{ b []byte }

// reset empties the buffer, making room for at least n bytes.
func (o *frameOut) reset(n int) {
	if cap(o.b) < n {
		o.b = hugemem.Alloc(n)
	}
	o.b = o.b[:0]
}

func (o *frameOut) Write(p []byte) (int, error) {
	if len(o.b)+len(p) > cap(o.b) {
		nb := hugemem.Alloc(max(2*cap(o.b), len(o.b)+len(p)))
		o.b = nb[:copy(nb, o.b)]
	}
	o.b = append(o.b, p...)
	return len(p), nil
}

// Bytes returns what was written since the last reset.
func (o *frameOut) Bytes() []byte { return o.b }

// takeJob returns a job for the current stream, reusing the output buffer
// of a written one.
func (f *framedWriter) takeJob() *frameJob {
	j := &frameJob{}
	if n := len(f.freeJob); n > 0 {
		j = f.freeJob[n-1]
		f.freeJob = f.freeJob[:n-1]
	}
	j.in = f.cur
	return j
}

// Cut ends the current stream if it holds at least the frame size.
func (f *framedWriter) Cut() error {
	if f.err != nil {
		return f.err
	}
	if f.closed {
		return errors.New("cut after Close")
	}
	if f.sp != nil {
		return f.endSplice()
	}
	if f.direct != nil {
		// Only a frame's worth of data makes the held stream go direct,
		// so it is always long enough to end here.
		err := f.direct.Close()
		f.direct = nil
		if err != nil {
			f.err = err
		}
		return err
	}
	if len(f.cur) < f.frameSize {
		return nil
	}
	return f.submit()
}

// submit hands the current stream to the workers, first writing out the
// oldest streams so that no more than workers+1 are in flight.
func (f *framedWriter) submit() error {
	if err := f.drain(f.workers); err != nil {
		return err
	}
	j := f.takeJob()
	f.cur = nil
	f.streams++
	if err := f.pool.Submit(f.compress(j)); err != nil {
		f.err = err
	}
	return f.err
}

// drain writes the oldest finished-or-awaited streams until at most keep
// remain in flight.
func (f *framedWriter) drain(keep int) error {
	for f.pool.Pending() > keep {
		j, err := f.pool.Next()
		if err != nil {
			if f.err == nil {
				f.err = err
			}
			continue
		}
		// Pieces of at most writeChunk: whatever w feeds (a verifying
		// decoder through a pipe) then buffers that much, not a frame.
		parts := j.parts
		if parts == nil {
			parts = []framePart{{b: j.out.Bytes()}}
		}
		for _, p := range parts {
			if p.at != nil {
				f.writeFrom(p)
				continue
			}
			for b := p.b; f.err == nil && len(b) > 0; {
				n := min(len(b), writeChunk)
				if _, err := f.w.Write(b[:n]); err != nil {
					f.err = err
				}
				b = b[n:]
			}
		}
		if j.parts != nil {
			continue // a spliced frame: no buffers of the writer's
		}
		f.freeIn = append(f.freeIn, j.in[:0])
		j.in = nil
		f.freeJob = append(f.freeJob, j)
	}
	return f.err
}

// Close ends the last stream (an empty input still gives one stream) and
// writes everything out. It does not close w.
func (f *framedWriter) Close() error {
	if f.closed {
		return f.err
	}
	f.closed = true
	if f.err == nil {
		switch {
		case f.sp != nil:
			f.endSplice()
		case f.direct != nil:
			if err := f.direct.Close(); err != nil {
				f.err = err
			}
			f.direct = nil
		case len(f.cur) > 0 || f.streams == 0:
			if f.cur == nil {
				f.cur = []byte{}
			}
			f.submit()
		}
	}
	f.drain(0)
	f.pool.Close()
	f.encs, f.freeIn, f.freeJob, f.cur = nil, nil, nil, nil
	return f.err
}

// Splice implements Splicer.
func (f *framedWriter) Splice(s *Spliced) error {
	if f.err != nil {
		return f.err
	}
	if f.closed {
		return errors.New("splice after Close")
	}
	if f.zstdWindow == 0 {
		return errors.New("this writer cannot splice precompressed bodies")
	}
	if s.level != f.zstdLevel || s.window != f.zstdWindow {
		return fmt.Errorf("spliced body of level %v and window %d in a writer of level %v and window %d", s.level, s.window, f.zstdLevel, f.zstdWindow)
	}
	// End the current frame, whatever it holds.
	switch {
	case f.sp != nil:
		if err := f.endSplice(); err != nil {
			return err
		}
	case f.direct != nil:
		err := f.direct.Close()
		f.direct = nil
		if err != nil {
			f.err = err
			return err
		}
	case len(f.cur) > 0:
		if err := f.submit(); err != nil {
			return err
		}
	}
	f.sp = &splice{s: s, h: xxhash.New()}
	return nil
}

// SpliceBody implements Splicer.
func (f *framedWriter) SpliceBody() error {
	if f.err != nil {
		return f.err
	}
	if f.sp == nil || f.sp.inBody {
		return errors.New("SpliceBody without Splice")
	}
	f.sp.inBody = true
	return nil
}

// writeFrom writes a part held in a file, through a buffer of writeChunk.
func (f *framedWriter) writeFrom(p framePart) {
	if f.copyBuf == nil {
		f.copyBuf = make([]byte, writeChunk)
	}
	for off, end := p.off, p.off+p.n; f.err == nil && off < end; {
		b := f.copyBuf[:min(int64(writeChunk), end-off)]
		if n, err := p.at.ReadAt(b, off); n < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			f.err = fmt.Errorf("reading a spliced body back: %w", err)
			return
		}
		if _, err := f.w.Write(b); err != nil {
			f.err = err
		}
		off += int64(len(b))
	}
}

// endSplice puts the spliced frame in line for the output.
func (f *framedWriter) endSplice() error {
	sp := f.sp
	f.sp = nil
	parts, err := sp.frame()
	if err != nil {
		f.err = err
		return err
	}
	if err := f.drain(f.workers); err != nil {
		return err
	}
	j := &frameJob{parts: parts}
	f.streams++
	if err := f.pool.Submit(func(context.Context, int) (*frameJob, error) { return j, nil }); err != nil {
		f.err = err
	}
	return f.err
}
