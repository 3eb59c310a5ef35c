package leakcheck

import (
	"testing"
	"time"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed  bool
	cleanup []func()
}

func (r *recorder) Helper()                        {}
func (r *recorder) Cleanup(f func())               { r.cleanup = append(r.cleanup, f) }
func (r *recorder) Errorf(format string, a ...any) { r.failed = true }

func TestNoLeak(t *testing.T) {
	for _, tc := range []struct {
		name string
		leak bool
	}{
		{"goroutine returns", false},
		{"goroutine left running", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			r := &recorder{TB: t}
			NoLeak(r)
			go func() { <-stop }()
			if !tc.leak {
				close(stop)
			}
			for _, f := range r.cleanup {
				f()
			}
			if tc.leak {
				close(stop)
				time.Sleep(10 * time.Millisecond)
			}
			if r.failed != tc.leak {
				t.Errorf("NoLeak failed = %v, want %v", r.failed, tc.leak)
			}
		})
	}
}
