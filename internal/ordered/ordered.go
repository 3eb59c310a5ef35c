// Package ordered runs jobs on a fixed number of goroutines and hands their
// results back in the order the jobs were submitted, the shape of every
// parallel encoder and decoder of the project: cut the input into pieces,
// work on several at once, write the results out in sequence.
//
// Rules: Submit queues a job (waiting while as many jobs as there are
// workers wait for one); Next returns the result of the oldest job not yet
// returned, waiting for it. Errors are reported in submission order: the
// first job (in that order) that fails, or that the context cancelled, is
// the error Next returns, and from then on the pool is failed: its context
// is cancelled so running jobs can stop early, jobs not started are not
// run, and every later Submit and Next returns that same error. Close
// cancels what is left and waits for every worker, so no goroutine
// outlives it. A Pool is used from one goroutine.
package ordered

import (
	"context"
	"errors"
	"sync"
)

// Func is one job: ctx is the pool's (cancelled once the pool fails or is
// closed), worker the index of the goroutine running it, from 0 to
// workers-1, for per-worker state that jobs reuse without locking.
type Func[T any] func(ctx context.Context, worker int) (T, error)

// Pool is a set of workers and the jobs submitted to them, in order.
type Pool[T any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan *job[T]
	queue  []*job[T] // submitted, not yet returned by Next, oldest first
	wg     sync.WaitGroup
	err    error // sticky: the first error returned by Next
	closed bool
}

type job[T any] struct {
	fn   Func[T]
	val  T
	err  error
	done chan struct{}
}

// ErrClosed is returned by Submit and Next after Close.
var ErrClosed = errors.New("ordered: pool closed")

// New starts workers goroutines (at least one) that run the jobs submitted
// to the pool until Close.
func New[T any](ctx context.Context, workers int) *Pool[T] {
	workers = max(workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	p := &Pool[T]{ctx: ctx, cancel: cancel, jobs: make(chan *job[T], workers)}
	p.wg.Add(workers)
	for i := range workers {
		go p.work(i)
	}
	return p
}

func (p *Pool[T]) work(worker int) {
	defer p.wg.Done()
	for j := range p.jobs {
		if err := p.ctx.Err(); err != nil {
			j.err = err
		} else {
			j.val, j.err = j.fn(p.ctx, worker)
		}
		close(j.done)
	}
}

// Submit queues fn after the jobs submitted before it. It waits while the
// workers are busy and as many jobs wait for them; it fails, without
// queueing fn, once the pool failed, was closed or its context ended.
func (p *Pool[T]) Submit(fn Func[T]) error {
	if p.err != nil {
		return p.err
	}
	if p.closed {
		return ErrClosed
	}
	j := &job[T]{fn: fn, done: make(chan struct{})}
	select {
	case p.jobs <- j:
	case <-p.ctx.Done():
		return p.fail(p.ctx.Err())
	}
	p.queue = append(p.queue, j)
	return nil
}

// Pending is the number of jobs submitted whose results Next has not
// returned yet.
func (p *Pool[T]) Pending() int { return len(p.queue) }

// Next returns the result of the oldest job submitted and not yet returned,
// waiting for it to finish. Without such a job it returns the pool's error
// if it failed, ErrClosed after Close, and otherwise a zero T and no error. Once a
// job's error is returned, every later call returns it too (and Pending
// still counts down to zero).
func (p *Pool[T]) Next() (T, error) {
	var zero T
	if len(p.queue) == 0 {
		if p.err == nil && p.closed {
			return zero, ErrClosed
		}
		return zero, p.err
	}
	j := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	if p.err != nil {
		return zero, p.err
	}
	<-j.done
	if j.err != nil {
		return zero, p.fail(j.err)
	}
	return j.val, nil
}

// fail makes err the pool's error and cancels the jobs still running.
func (p *Pool[T]) fail(err error) error {
	if p.err == nil {
		p.err = err
		p.cancel()
	}
	return p.err
}

// Close cancels the jobs not yet returned and waits for every worker to
// return. It returns the pool's error, if it failed. Close is idempotent.
func (p *Pool[T]) Close() error {
	if !p.closed {
		p.closed = true
		p.cancel()
		close(p.jobs)
		p.wg.Wait()
		p.queue = nil
	}
	return p.err
}
