package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// Compressing the root's files ahead of the write. The largest part of an
// append's new segment is the root's programs and libraries, which the
// overlay's preparation knows before the input is decoded; compressing
// them meanwhile, on a core the decoder leaves idle, takes most of the
// compression off the path from the end of decoding to the written file.
// Each such body becomes a frame of its own (codec.Splicer). Which bodies
// are spliced depends only on the root's files (the prepared closure and
// their sizes), and their blocks only on their bytes, never on which goroutine
// or when: the output is the same whatever the timing or GOMAXPROCS.

// spliceMin is the smallest body compressed ahead: a frame of its own
// costs its header and the matches it cannot share with the entries
// around it, worth it for a large body only. Measured on the lab's
// bookworm itools-zstd image with the rescue preset (33 MB of new
// entries): from 256 KiB, 28 bodies of 24 MB are spliced and the output
// grows by 0.17% (65.15 MB against 65.04); from 64 KiB, 81 bodies of
// 31 MB, for 1.2% (65.82 MB); from 1 MiB, 0.06%.
const spliceMin = 256 << 10

// precompressor compresses a fixed list of files on up to two workers.
type precompressor struct {
	opt codec.WriterOptions
	ctx context.Context
	// spool holds the compressed bodies: in memory they would add
	// their size (10 MB for the rescue preset) to the peak, while the
	// input is decoded.
	spool *codec.SpliceSpool
	jobs  map[remix.FileContent]*preJob
	order []remix.FileContent

	mu      sync.Mutex
	next    int // the first job no worker took
	workers sync.WaitGroup
}

type preJob struct {
	ready chan struct{}
	s     *codec.Spliced
	err   error
	taken bool // handed to the writer (under precompressor.mu)
}

// newPrecompressor lists the regular files of paths of spliceMin bytes or
// more, as they are now, and starts one worker on them, keeping what it
// compressed in a spool file in dir ("": remix.DefaultSpoolDir()).
func newPrecompressor(ctx context.Context, paths []string, opt codec.WriterOptions, dir string) (*precompressor, error) {
	if dir == "" {
		dir = remix.DefaultSpoolDir()
	}
	spool, err := codec.NewSpliceSpool(dir)
	if err != nil {
		return nil, err
	}
	p := &precompressor{opt: opt, ctx: ctx, spool: spool, jobs: map[remix.FileContent]*preJob{}}
	for _, path := range paths {
		c, err := remix.NewFileContent(path)
		if err != nil || c.Len < spliceMin {
			continue // written as any other body, or an error there
		}
		if _, dup := p.jobs[c]; dup {
			continue
		}
		p.jobs[c] = &preJob{ready: make(chan struct{})}
		p.order = append(p.order, c)
	}
	p.start()
	return p, nil
}

// start adds a worker, up to two.
func (p *precompressor) start() {
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		p.work()
	}()
}

func (p *precompressor) work() {
	enc, err := codec.NewSpliceEncoder(p.opt)
	if err == nil {
		defer enc.Close()
	}
	for {
		p.mu.Lock()
		i := p.next
		p.next++
		p.mu.Unlock()
		if i >= len(p.order) {
			return
		}
		c := p.order[i]
		j := p.jobs[c]
		switch {
		case err != nil:
			j.err = err
		case p.ctx.Err() != nil:
			j.err = p.ctx.Err()
		default:
			j.s, j.err = compressFile(enc, c, p.spool)
		}
		close(j.ready)
	}
}

func compressFile(enc *codec.SpliceEncoder, c remix.FileContent, spool *codec.SpliceSpool) (*codec.Spliced, error) {
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return enc.Encode(r, c.Len, spool)
}

// splice is the remix.WriteOptions.Splice of the write: the blocks of a
// listed file's body, waited for, once; nil for any other content.
func (p *precompressor) splice(c remix.Content) (*codec.Spliced, error) {
	fc, ok := c.(remix.FileContent)
	if !ok {
		return nil, nil
	}
	p.mu.Lock()
	j := p.jobs[fc]
	if j == nil || j.taken {
		p.mu.Unlock()
		return nil, nil
	}
	j.taken = true
	p.mu.Unlock()
	<-j.ready
	s, err := j.s, j.err
	j.s = nil // the writer holds it until its frame is out
	if err != nil {
		return nil, fmt.Errorf("compressed ahead of the write: %w", err)
	}
	return s, nil
}

// wait stops the workers (after the job each is on) and waits for them:
// the root is no longer read. Jobs no worker took fail. The spool is
// removed.
func (p *precompressor) wait() {
	p.mu.Lock()
	for _, c := range p.order[min(p.next, len(p.order)):] {
		j := p.jobs[c]
		j.err = errors.New("compression ahead of the write stopped")
		close(j.ready)
	}
	p.next = len(p.order)
	p.mu.Unlock()
	p.workers.Wait()
	p.spool.Close()
}
