package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// Compressing the root's files ahead of the write. The largest part of an
// append's new segment is the root's programs and libraries, which the
// overlay's preparation knows before the input is decoded; compressing
// them meanwhile, on a core the decoder leaves idle, takes most of the
// compression off the path from the end of decoding to the written file.
// Each such body becomes a frame of its own (codec.Splicer).
//
// The output does not depend on timing or GOMAXPROCS: a body is spliced
// if it is in the list (the prepared closure's files of spliceMin bytes
// or more, a function of the root) and written, whoever compresses it and
// whenever. What is compressed ahead is only a guess at what will be
// written: the programs first, then the libraries, except those the image
// turns out to hold at the same path (the overlay keeps the image's own
// copy); one that is written all the same is compressed by the writer.

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

	// decoded is closed once the input is decoded and the overlay
	// applied (decoded, from the pipeline).
	decoded     chan struct{}
	decodedOnce sync.Once

	// heavy: the input's decoder uses every core or a large window
	// (heavyDecoder); the workers then wait for the end of decoding.
	heavy atomic.Bool

	mu      sync.Mutex
	jobs    map[remix.FileContent]*preJob
	order   []*preJob          // programs first
	byPath  map[string]*preJob // loaded files, by canonical path in the root
	stopped bool
	workers sync.WaitGroup
	enc     *codec.SpliceEncoder // the writer's own, for what no worker did
}

type preJob struct {
	c       remix.FileContent
	ready   chan struct{} // closed once s and err are set, if started
	s       *codec.Spliced
	err     error
	started bool // by a worker or the writer
	skip    bool // workers leave it: the image has the file, or it is not written
	taken   bool // handed to the writer
}

// newPrecompressor lists the files of spliceMin bytes or more, as they
// are now, and keeps what it compresses in a spool file in dir ("":
// remix.DefaultSpoolDir()). No worker runs before start.
func newPrecompressor(ctx context.Context, files []overlay.RootFile, opt codec.WriterOptions, dir string) (*precompressor, error) {
	if dir == "" {
		dir = remix.DefaultSpoolDir()
	}
	spool, err := codec.NewSpliceSpool(dir)
	if err != nil {
		return nil, err
	}
	p := &precompressor{opt: opt, ctx: ctx, spool: spool, decoded: make(chan struct{}),
		jobs: map[remix.FileContent]*preJob{}, byPath: map[string]*preJob{}}
	var loaded []*preJob
	for _, f := range files {
		c, err := remix.NewFileContent(f.Host)
		if err != nil || c.Len < spliceMin {
			continue // written as any other body, or an error there
		}
		if _, dup := p.jobs[c]; dup {
			continue
		}
		j := &preJob{c: c, ready: make(chan struct{})}
		p.jobs[c] = j
		if f.Loaded {
			loaded = append(loaded, j)
			p.byPath[remix.Canonical(f.Path)] = j
		} else {
			p.order = append(p.order, j)
		}
	}
	p.order = append(p.order, loaded...)
	return p, nil
}

// imageHas says that the image holds a regular file at name: a library
// of the root at the same path is likely kept, not written.
func (p *precompressor) imageHas(name string) {
	if len(p.byPath) == 0 {
		return
	}
	p.mu.Lock()
	if j := p.byPath[remix.Canonical(name)]; j != nil {
		j.skip = true
	}
	p.mu.Unlock()
}

// heavyDecoder tells the codecs whose decoding leaves no core idle (xz's
// blocks and bzip2's are decoded on every core) or holds a large window
// (lzma's dictionary, up to 64 MiB): compressing beside them only slows
// them, and its buffers and garbage add to their memory (a rescue build
// peaked at 70-74 MiB on xz and bzip2 inputs with it, 58-61 without, and
// at 117 MiB on lzma's against 87-91).
func heavyDecoder(c codec.Codec) bool {
	return c == codec.XZ || c == codec.Bzip2 || c == codec.LZMA
}

// decoding says which codec the input's decoder is reading now.
func (p *precompressor) decoding(c codec.Codec) { p.heavy.Store(heavyDecoder(c)) }

// start adds a worker.
func (p *precompressor) start() {
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		p.work()
	}()
}

// take returns the next job for a worker, or nil.
func (p *precompressor) take() *preJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	for _, j := range p.order {
		if !j.started && !j.skip {
			j.started = true
			return j
		}
	}
	return nil
}

func (p *precompressor) work() {
	enc, err := codec.NewSpliceEncoder(p.opt)
	if err == nil {
		defer enc.Close()
	}
	var share cpuShare
	for j := p.take(); j != nil; j = p.take() {
		switch {
		case err != nil:
			j.err = err
		case p.ctx.Err() != nil:
			j.err = p.ctx.Err()
		default:
			j.s, j.err = compressFile(enc, j.c, p.spool)
		}
		close(j.ready)
		// Ahead of the write, a worker helps only on a core the decoder
		// leaves idle: where the process gets less than that (a busy
		// machine, GOMAXPROCS=1), or the decoder is a heavy one, it would
		// only slow the decoding, so it waits for the end of it.
		if p.heavy.Load() || !share.busy() {
			select {
			case <-p.decoded:
			case <-p.ctx.Done():
			}
		}
	}
}

// cpuShare measures the cores the process got since its first use:
// over a worker's whole run ahead of the write, not the few milliseconds
// of one body, in which the decoder may wait for a write of the copy.
type cpuShare struct {
	wall time.Time
	cpu  time.Duration
}

// minCores is the share of cores below which a worker ahead of the write
// stops: the decoder needs one and a bit (reading, copying the input),
// so a process held to one core has about one, and one with a core for
// the worker close to two.
const minCores = 1.5

// busy reports whether the process used at least minCores cores since
// the first call (true on the first).
func (c *cpuShare) busy() bool {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return true
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	if c.wall.IsZero() {
		c.wall, c.cpu = now, cpu
		return true
	}
	wall := now.Sub(c.wall)
	return wall <= 0 || float64(cpu-c.cpu) >= minCores*float64(wall)
}

// afterDecode lets the workers go on whatever the cores, and adds one:
// what is left is on the way to the write.
func (p *precompressor) afterDecode() {
	p.decodedOnce.Do(func() { close(p.decoded) })
	p.start()
}

func compressFile(enc *codec.SpliceEncoder, c remix.FileContent, spool *codec.SpliceSpool) (*codec.Spliced, error) {
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return enc.Encode(r, c.Len, spool)
}

// prune leaves to the writer the jobs no worker started whose content
// the tree does not hold (the overlay kept the image's own copy): the
// writer never asks for them.
func (p *precompressor) prune(t *remix.Tree) {
	held := map[remix.FileContent]bool{}
	for _, n := range t.Nodes() {
		if n.IsRegular() {
			if fc, ok := n.Inode.Content.(remix.FileContent); ok {
				held[fc] = true
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range p.order {
		if !held[j.c] {
			j.skip = true
		}
	}
}

// splice is the remix.WriteOptions.Splice of the write: the blocks of a
// listed file's body, compressed by a worker or now, once; nil for any
// other content. It is called by the writer's goroutine only.
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
	mine := !j.started
	j.started = true
	p.mu.Unlock()
	if mine {
		if p.enc == nil {
			enc, err := codec.NewSpliceEncoder(p.opt)
			if err != nil {
				return nil, err
			}
			p.enc = enc
		}
		j.s, j.err = compressFile(p.enc, fc, p.spool)
		close(j.ready)
	}
	<-j.ready
	s, err := j.s, j.err
	j.s = nil // the writer holds it until its frame is out
	if err != nil {
		return nil, fmt.Errorf("compressed ahead of the write: %w", err)
	}
	return s, nil
}

// wait stops the workers (after the job each is on) and waits for them:
// the root is no longer read. The spool is removed.
func (p *precompressor) wait() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.workers.Wait()
	if p.enc != nil {
		p.enc.Close()
	}
	p.spool.Close()
}

// imageNames hears the names of the regular files of the image as it is
// decoded (OpenOptions.KeepContent), and passes them on to the
// precompressor once there is one.
type imageNames struct {
	mu    sync.Mutex
	names []string
	codec codec.Codec // of the segment being read
	pre   *precompressor
}

// segment hears the codec of the segment the entries now come from.
func (n *imageNames) segment(c codec.Codec) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.codec = c
	if n.pre != nil {
		n.pre.decoding(c)
	}
}

func (n *imageNames) add(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pre != nil {
		n.pre.imageHas(name)
		return
	}
	n.names = append(n.names, name)
}

// attach passes the names heard so far, and from now on, to p.
func (n *imageNames) attach(p *precompressor) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, name := range n.names {
		p.imageHas(name)
	}
	p.decoding(n.codec)
	n.names, n.pre = nil, p
}
