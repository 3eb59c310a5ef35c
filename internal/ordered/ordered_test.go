package ordered

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/leakcheck"
)

// sleepy returns i after a delay that makes later jobs finish first.
func sleepy(i, n int) Func[int] {
	return func(ctx context.Context, _ int) (int, error) {
		time.Sleep(time.Duration(n-i) * time.Millisecond)
		return i, nil
	}
}

func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workers, n int
		nextEvery  int // Next whenever this many are pending
	}{
		{"one worker", 1, 20, 1},
		{"two workers", 2, 30, 3},
		{"more workers than jobs", 8, 5, 100},
		{"zero workers means one", 0, 10, 2},
		{"all submitted first", 4, 4, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.NoLeak(t)
			p := New[int](context.Background(), tc.workers)
			defer p.Close()
			var got []int
			take := func() {
				v, err := p.Next()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			for i := range tc.n {
				if err := p.Submit(sleepy(i, tc.n)); err != nil {
					t.Fatal(err)
				}
				for p.Pending() >= tc.nextEvery {
					take()
				}
			}
			for p.Pending() > 0 {
				take()
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("results %v, want 0..%d in order", got, tc.n-1)
				}
			}
			if len(got) != tc.n {
				t.Fatalf("%d results, want %d", len(got), tc.n)
			}
			if v, err := p.Next(); v != 0 || err != nil {
				t.Errorf("Next with nothing pending = %d, %v", v, err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			if _, err := p.Next(); !errors.Is(err, ErrClosed) {
				t.Errorf("Next after Close = %v, want ErrClosed", err)
			}
			if err := p.Submit(sleepy(0, 0)); !errors.Is(err, ErrClosed) {
				t.Errorf("Submit after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// The error reported is the first in submission order, not the first in
// time; results before it are delivered; after it, everything fails with it.
func TestErrorOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    map[int]time.Duration // job index -> delay before failing
		n       int
		wantErr int // index of the job whose error Next reports
	}{
		{"late job fails first in time", map[int]time.Duration{3: 0, 1: 30 * time.Millisecond}, 5, 1},
		{"single failure", map[int]time.Duration{2: 0}, 4, 2},
		{"first job fails", map[int]time.Duration{0: 10 * time.Millisecond, 2: 0}, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.NoLeak(t)
			p := New[int](context.Background(), tc.n)
			for i := range tc.n {
				err := p.Submit(func(ctx context.Context, _ int) (int, error) {
					if d, ok := tc.fail[i]; ok {
						time.Sleep(d)
						return 0, fmt.Errorf("job %d", i)
					}
					return i, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := range tc.wantErr {
				if v, err := p.Next(); v != i || err != nil {
					t.Fatalf("Next #%d = %d, %v; want %d, nil", i, v, err, i)
				}
			}
			want := fmt.Sprintf("job %d", tc.wantErr)
			for k := tc.wantErr; k < tc.n+2; k++ {
				if _, err := p.Next(); err == nil || err.Error() != want {
					t.Fatalf("Next #%d = %v, want %q", k, err, want)
				}
			}
			if p.Pending() != 0 {
				t.Errorf("Pending = %d after every result, want 0", p.Pending())
			}
			if err := p.Submit(sleepy(0, 0)); err == nil || err.Error() != want {
				t.Errorf("Submit after the failure = %v, want %q", err, want)
			}
			if err := p.Close(); err == nil || err.Error() != want {
				t.Errorf("Close = %v, want %q", err, want)
			}
		})
	}
}

// A failure cancels the context of jobs still running, and jobs not started
// are not run.
func TestFailureCancels(t *testing.T) {
	leakcheck.NoLeak(t)
	p := New[int](context.Background(), 2)
	var ran atomic.Int32
	p.Submit(func(ctx context.Context, _ int) (int, error) { return 0, errors.New("boom") })
	p.Submit(func(ctx context.Context, _ int) (int, error) {
		ran.Add(1)
		<-ctx.Done() // would block forever without the cancellation
		return 0, ctx.Err()
	})
	if _, err := p.Next(); err == nil {
		t.Fatal("no error")
	}
	// Queued behind the blocked job: must not run once the pool failed.
	p.Close()
	if ran.Load() > 1 {
		t.Errorf("%d jobs ran", ran.Load())
	}
}

// Cancelling the parent context ends a Submit waiting for room and stops
// jobs that have not started.
func TestContextCancel(t *testing.T) {
	leakcheck.NoLeak(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := New[int](ctx, 1)
	defer p.Close()
	release := make(chan struct{})
	var started atomic.Int32
	block := func(ctx context.Context, _ int) (int, error) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 1, nil
	}
	p.Submit(block) // runs
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Submit(block) // waits in the queue
	done := make(chan error, 1)
	go func() { done <- p.Submit(block) }() // waits for room
	select {
	case err := <-done:
		t.Fatalf("Submit on a full pool returned %v without waiting", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting Submit = %v, want context.Canceled", err)
	}
	if v, err := p.Next(); err == nil {
		// The running job may finish before it sees the cancellation;
		// the queued one must not run.
		if v != 1 {
			t.Fatalf("Next = %d", v)
		}
		if _, err := p.Next(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next of the job queued before the cancel = %v, want context.Canceled", err)
		}
	}
	if started.Load() != 1 {
		t.Errorf("%d jobs started, want 1", started.Load())
	}
}

// Close with results never taken stops the workers; a job runs on one
// worker index at a time, so per-worker state needs no lock.
func TestCloseAndWorkerIndex(t *testing.T) {
	leakcheck.NoLeak(t)
	const workers = 3
	p := New[int](context.Background(), workers)
	var busy [workers]atomic.Int32
	for range 30 {
		err := p.Submit(func(ctx context.Context, w int) (int, error) {
			if w < 0 || w >= workers {
				return 0, fmt.Errorf("worker %d out of range", w)
			}
			if busy[w].Add(1) != 1 {
				return 0, fmt.Errorf("worker %d runs two jobs at once", w)
			}
			time.Sleep(time.Millisecond)
			busy[w].Add(-1)
			return w, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.Pending() > workers {
			if _, err := p.Next(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
