// Package leakcheck fails a test that leaves goroutines running: tests of
// the project's concurrent pieces (pools, pipes) call it first.
package leakcheck

import (
	"runtime"
	"testing"
	"time"
)

// NoLeak fails t if, at its end, more goroutines run than at the call;
// goroutines get two seconds to return.
func NoLeak(t testing.TB) {
	t.Helper()
	before := settled()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines left running", n-before)
		}
	})
}

// settled counts the goroutines once the count stops falling: a test that
// ran just before may still be returning from its goroutine, and counting
// it would hide a leak of the same size.
func settled() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return n
		}
		n = m
	}
	return n
}
