package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints a one-line status on a terminal and nothing elsewhere:
// kernel hooks and scripts log stderr, and a stream of \r updates there is
// noise.
type progress struct {
	w       io.Writer
	enabled bool
	label   string
	total   int64
	last    time.Time
}

func newProgress(e *env, quiet bool, label string, total int64) *progress {
	return &progress{w: e.stderr, enabled: e.stderrTTY && !quiet, label: label, total: total}
}

func (p *progress) update(n int64) {
	if !p.enabled || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s: %s of %s (%d%%)\x1b[K", p.label, humanBytes(n), humanBytes(p.total), n*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\r%s: %s\x1b[K", p.label, humanBytes(n))
	}
}

func (p *progress) step(label string) {
	p.label = label
	p.last = time.Time{}
	if p.enabled {
		fmt.Fprintf(p.w, "\r%s...\x1b[K", label)
	}
}

func (p *progress) done() {
	if p.enabled {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
