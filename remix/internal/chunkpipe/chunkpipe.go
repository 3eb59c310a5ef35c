// Package chunkpipe is an in-memory pipe that decouples a writer from a
// reader by a number of chunks, so the two run at their own pace on
// different cores (an io.Pipe runs them in lockstep). Chunk buffers are
// handed back to the writer once read: fresh memory costs a page fault per
// page on first touch, which showed in repack profiles.
//
// Close rules: the writer ends the stream with Writer.CloseWithError (the
// reader then sees that error, or io.EOF); the reader stops the writer with
// Reader.CloseWithError (the writer's next Write fails with it). Each side
// may close once; neither close waits for the other side.
package chunkpipe

import (
	"io"
	"sync"
)

type pipe struct {
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

// Reader is the reading side of a pipe; use it from one goroutine.
type Reader struct{ p *pipe }

// Writer is the writing side of a pipe; use it from one goroutine.
type Writer struct{ p *pipe }

// New returns a pipe that holds up to chunks writes the reader has not
// taken; a Write beyond that waits for the reader.
func New(chunks int) (*Reader, *Writer) {
	chunks = max(chunks, 1)
	p := &pipe{ch: make(chan []byte, chunks), free: make(chan []byte, chunks+2), done: make(chan struct{})}
	return &Reader{p}, &Writer{p}
}

// MaxChunk bounds the chunks Write copies into: a large write (a block of
// compressed data read whole) is cut into pieces, so the memory the pipe
// holds is bounded by its depth times MaxChunk, not by the largest write.
const MaxChunk = 256 << 10

// Write copies b into chunks of at most MaxChunk bytes and queues them,
// waiting while the pipe is full; it fails with the reader's error once
// the reader closed.
func (w *Writer) Write(b []byte) (int, error) {
	p := w.p
	n := 0
	for {
		if rerr := p.readerErr(); rerr != nil {
			return n, rerr
		}
		piece := b[n:min(len(b), n+MaxChunk)]
		var c []byte
		select {
		case c = <-p.free:
		default:
			c = make([]byte, 0, max(len(piece), 4<<10))
		}
		c = append(c[:0], piece...)
		select {
		case p.ch <- c:
		case <-p.done:
			return n, p.readerErr()
		}
		n += len(piece)
		if n == len(b) {
			return n, nil
		}
	}
}

// Send queues b itself, with no copy, for a writer that fills its own
// chunks (reading a source into them): the pipe owns b from then on and
// hands it back through Recycled once the reader consumed it. It waits
// while the pipe is full and fails with the reader's error once the reader
// closed (b is then dropped).
func (w *Writer) Send(b []byte) error {
	p := w.p
	if rerr := p.readerErr(); rerr != nil {
		return rerr
	}
	select {
	case p.ch <- b:
		return nil
	case <-p.done:
		return p.readerErr()
	}
}

// Recycled returns a chunk the reader has consumed, emptied, or nil if
// none is waiting. With wait it waits for one instead, and fails with the
// reader's error once the reader closed.
func (w *Writer) Recycled(wait bool) ([]byte, error) {
	p := w.p
	if !wait && len(p.free) == 0 { // only this side takes from free
		select {
		case <-p.done:
			return nil, p.readerErr()
		default:
			return nil, nil
		}
	}
	select {
	case c := <-p.free:
		return c[:0], nil
	case <-p.done:
		return nil, p.readerErr()
	}
}

// readerErr is the error the reader closed the pipe with.
func (p *pipe) readerErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rerr
}

// CloseWithError ends the stream; the reader sees err, or io.EOF if nil.
func (w *Writer) CloseWithError(err error) {
	w.p.mu.Lock()
	if err == nil {
		err = io.EOF
	}
	w.p.werr = err
	w.p.mu.Unlock()
	close(w.p.ch)
}

// Read reads queued bytes, waiting for the writer when none are.
func (r *Reader) Read(b []byte) (int, error) {
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
func (r *Reader) next() error {
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
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
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

// CloseWithError stops the writer: its next Write fails with err, or with
// io.ErrClosedPipe if err is nil. Only the first close counts.
func (r *Reader) CloseWithError(err error) {
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

// Chunks empties the pipe once the writer has stopped (returned, or will
// never write again) and returns every chunk it held: unread, consumed and
// the one being read, for reuse elsewhere. Unread bytes are lost.
func (r *Reader) Chunks() [][]byte {
	p := r.p
	var out [][]byte
	if p.buf != nil {
		out = append(out, p.buf[:0])
	}
	p.buf, p.cur = nil, nil
	for {
		select {
		case c, ok := <-p.ch:
			if ok {
				out = append(out, c[:0])
				continue
			}
		default:
		}
		break
	}
	for {
		select {
		case c := <-p.free:
			out = append(out, c[:0])
			continue
		default:
		}
		break
	}
	return out
}
