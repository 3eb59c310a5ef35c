package ldso

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// countingReaderAt counts the reads that reach the file.
type countingReaderAt struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(b, off)
}

func TestPagedReader(t *testing.T) {
	data := make([]byte, 3*pageSize+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	size := int64(len(data))
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"first bytes", 0, 64},
		{"within a page", 100, 24},
		{"across a page boundary", pageSize - 10, 20},
		{"across two boundaries", pageSize - 1, pageSize + 2},
		{"whole page aligned", pageSize, pageSize},
		{"larger than a page", 10, 2*pageSize + 5},
		{"up to the end", size - 16, 16},
		{"past the end", size - 8, 16},
		{"large past the end", size - 8, 2 * pageSize},
		{"at the end", size, 4},
		{"beyond the end", size + 100, 4},
		{"empty", 5, 0},
		{"last partial page", 3 * pageSize, 123},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]byte, tc.n)
			wn, werr := bytes.NewReader(data).ReadAt(want, tc.off)
			got := make([]byte, tc.n)
			p := newPagedReader(bytes.NewReader(data), size)
			gn, gerr := p.ReadAt(got, tc.off)
			if gn != wn || !bytes.Equal(got[:gn], want[:wn]) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, want %d (equal: %v)", tc.n, tc.off, gn, wn, bytes.Equal(got[:gn], want[:wn]))
			}
			if (gerr == nil) != (werr == nil) || (werr != nil && !errors.Is(gerr, werr)) {
				t.Fatalf("ReadAt(%d bytes at %d): error %v, want %v", tc.n, tc.off, gerr, werr)
			}
		})
	}
}

// Small reads of the same pages reach the file once per page; a file
// shorter than its stated size is an error, not a page of zeros.
func TestPagedReaderReadsPagesOnce(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), pageSize/8) // two pages
	c := &countingReaderAt{r: bytes.NewReader(data)}
	p := newPagedReader(c, int64(len(data)))
	b := make([]byte, 8)
	for off := int64(0); off+8 <= int64(len(data)); off += 4 {
		if _, err := p.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[off:off+8]) {
			t.Fatalf("at %d: %q, want %q", off, b, data[off:off+8])
		}
	}
	if c.reads != 2 {
		t.Errorf("%d reads of the file, want 2", c.reads)
	}
	short := newPagedReader(bytes.NewReader(data[:100]), int64(len(data)))
	if _, err := short.ReadAt(b, 200); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read of a file shorter than its size: %v, want %v", err, io.ErrUnexpectedEOF)
	}
}

// At most maxPages pages are held.
func TestPagedReaderBounded(t *testing.T) {
	data := make([]byte, (maxPages+10)*pageSize)
	p := newPagedReader(bytes.NewReader(data), int64(len(data)))
	b := make([]byte, 1)
	for off := int64(0); off < int64(len(data)); off += pageSize {
		if _, err := p.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if len(p.pages) > maxPages {
			t.Fatalf("%d pages held, at most %d", len(p.pages), maxPages)
		}
	}
}

// After reset, reads come from the new file, never from the pages of the
// one before.
func TestPagedReaderReset(t *testing.T) {
	a := bytes.Repeat([]byte{'a'}, 2*pageSize)
	b := bytes.Repeat([]byte{'b'}, pageSize/2)
	p := newPagedReader(bytes.NewReader(a), int64(len(a)))
	buf := make([]byte, 8)
	for _, off := range []int64{0, pageSize} {
		if _, err := p.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	p.reset(bytes.NewReader(b), int64(len(b)))
	if n, err := p.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], b[:8]) {
		t.Fatalf("after reset: %q, %v; want %q", buf[:n], err, b[:8])
	}
	if n, err := p.ReadAt(buf, pageSize); n != 0 || err != io.EOF {
		t.Fatalf("after reset, past the new file's end: %d bytes, %v; want 0, EOF", n, err)
	}
}
