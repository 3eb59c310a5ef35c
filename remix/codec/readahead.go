package codec

import (
	"io"
	"sync"
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
	full    chan readaheadChunkT
	free    chan []byte
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	cur     []byte
	buf     []byte // the chunk cur points into, handed back once consumed
	err     error
	started bool
	// check sees every byte handed out and is done at the end of the
	// stream, on the caller's goroutine.
	check readerCheck
}

type readaheadChunkT struct {
	b   []byte
	err error
}

func newReadahead(src io.ReadCloser, cache *Decoders) *readahead {
	return &readahead{
		src:   src,
		cache: cache,
		full:  make(chan readaheadChunkT, readaheadChunks),
		free:  make(chan []byte, readaheadChunks),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// run decodes into chunks until the decoder fails or ends. Chunks are
// allocated on demand, up to readaheadChunks, so a small stream costs one.
func (r *readahead) run() {
	defer close(r.done)
	allocated := 0
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		default:
			if allocated < readaheadChunks {
				allocated++
				if r.cache != nil && len(r.cache.chunks) > 0 {
					// Only this goroutine touches the cache until Close.
					n := len(r.cache.chunks) - 1
					b, r.cache.chunks = r.cache.chunks[n], r.cache.chunks[:n]
				} else {
					b = make([]byte, readaheadChunk)
				}
			} else {
				select {
				case b = <-r.free:
				case <-r.stop:
					return
				}
			}
		}
		b = b[:cap(b)]
		n := 0
		var err error
		for n < len(b) && err == nil {
			var k int
			k, err = r.src.Read(b[n:])
			n += k
		}
		select {
		case r.full <- readaheadChunkT{b: b[:n], err: err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *readahead) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		go r.run()
	}
	for len(r.cur) == 0 {
		if r.err != nil {
			if r.err == io.EOF && r.check != nil {
				if err := r.check.done(); err != nil {
					r.err = err
				}
				r.check = nil
			}
			return 0, r.err
		}
		if r.buf != nil {
			r.free <- r.buf // never blocks: at most readaheadChunks exist
			r.buf = nil
		}
		c := <-r.full
		r.cur, r.buf, r.err = c.b, c.b, c.err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if r.check != nil {
		r.check.Write(p[:n])
	}
	return n, nil
}

func (r *readahead) Close() error {
	r.once.Do(func() {
		close(r.stop)
		if r.started {
			<-r.done
		}
		if r.cache != nil {
			// The goroutine has stopped: its chunks go back for the
			// next stream.
			if r.buf != nil {
				r.cache.chunks = append(r.cache.chunks, r.buf[:cap(r.buf)])
			}
			r.buf, r.cur = nil, nil
			for len(r.full) > 0 {
				c := <-r.full
				r.cache.chunks = append(r.cache.chunks, c.b[:cap(c.b)])
			}
			for len(r.free) > 0 {
				b := <-r.free
				r.cache.chunks = append(r.cache.chunks, b[:cap(b)])
			}
		}
	})
	return r.src.Close()
}
