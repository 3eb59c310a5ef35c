package codec

import (
	"errors"
	"io"
	"sync"

	"github.com/initrd-remix/initrd-remix/remix/internal/chunkpipe"
)

// Readahead sizes: four chunks of 256 KiB keep the decoder a megabyte
// ahead of the reader, enough to absorb the reader's bursts (a large file
// body) without holding more than that.
const (
	readaheadChunk  = 256 << 10
	readaheadChunks = 4
)

// readahead runs a decoder on a goroutine of its own, so decoding overlaps
// with whatever the caller does with the output (parsing cpio, copying
// bodies): on two cores that hides most of the parsing behind the decoder,
// which a decoder's internal concurrency cannot do (klauspost's zstd with
// concurrency 2 splits one frame's work between goroutines that wait on
// each other and was measured slower than one synchronous decoder on a
// goroutine of its own).
//
// The goroutine is the only one that reads the source until it has
// delivered the decoder's final error or io.EOF, and it reads nothing after
// that, so NewReader's contract holds: once the caller has seen io.EOF the
// source sits just after the stream. Close stops the goroutine and waits
// for it before the decoder is released.
type readahead struct {
	src     io.ReadCloser
	cache   *Decoders // where chunks come from and go back to; may be nil
	pr      *chunkpipe.Reader
	pw      *chunkpipe.Writer
	done    chan struct{}
	once    sync.Once
	err     error
	started bool
	// check sees every byte handed out and is done at the end of the
	// stream, on the caller's goroutine.
	check readerCheck
}

// errStopped stops the goroutine of a closed readahead.
var errStopped = errors.New("readahead closed")

func newReadahead(src io.ReadCloser, cache *Decoders) *readahead {
	pr, pw := chunkpipe.New(readaheadChunks)
	return &readahead{src: src, cache: cache, pr: pr, pw: pw, done: make(chan struct{})}
}

// run decodes into chunks until the decoder fails or ends. Chunks are
// allocated on demand, up to readaheadChunks, so a small stream costs one;
// then the ones the reader consumed are filled again.
func (r *readahead) run() {
	defer close(r.done)
	allocated := 0
	for {
		b, err := r.pw.Recycled(allocated >= readaheadChunks)
		if err != nil {
			return
		}
		if b == nil {
			allocated++
			if r.cache != nil && len(r.cache.chunks) > 0 {
				// Only this goroutine touches the cache until Close.
				n := len(r.cache.chunks) - 1
				b, r.cache.chunks = r.cache.chunks[n], r.cache.chunks[:n]
			} else {
				b = make([]byte, readaheadChunk)
			}
		}
		b = b[:cap(b)]
		n := 0
		for n < len(b) && err == nil {
			var k int
			k, err = r.src.Read(b[n:])
			n += k
		}
		if n > 0 {
			if r.pw.Send(b[:n]) != nil {
				return
			}
		}
		if err != nil {
			r.pw.CloseWithError(err)
			return
		}
	}
}

func (r *readahead) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		go r.run()
	}
	if r.err == nil {
		n, err := r.pr.Read(p)
		if n > 0 {
			if r.check != nil {
				r.check.Write(p[:n])
			}
			return n, nil
		}
		r.err = err
	}
	if r.err == io.EOF && r.check != nil {
		if err := r.check.done(); err != nil {
			r.err = err
		}
		r.check = nil
	}
	return 0, r.err
}

func (r *readahead) Close() error {
	r.once.Do(func() {
		r.pr.CloseWithError(errStopped)
		if r.started {
			<-r.done
		}
		if r.cache != nil {
			// The goroutine has stopped: its chunks go back for the
			// next stream.
			for _, c := range r.pr.Chunks() {
				r.cache.chunks = append(r.cache.chunks, c[:cap(c)])
			}
		}
	})
	return r.src.Close()
}
