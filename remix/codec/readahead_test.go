package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// failingSource yields n pseudo-random bytes in uneven reads, then err.
type failingSource struct {
	data   []byte
	err    error
	closed bool
}

func (f *failingSource) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := min(len(p), 1+len(f.data)%7919, len(f.data))
	copy(p, f.data[:n])
	f.data = f.data[n:]
	return n, nil
}

func (f *failingSource) Close() error { f.closed = true; return nil }

func TestReadahead(t *testing.T) {
	data := make([]byte, 3*readaheadChunk*readaheadChunks+12345)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	boom := errors.New("corrupt block")
	for _, tc := range []struct {
		name    string
		size    int
		err     error
		readBuf int
	}{
		{"empty", 0, io.EOF, 100},
		{"less than a chunk", 1000, io.EOF, 3},
		{"many chunks", len(data), io.EOF, 64 << 10},
		{"error after data", len(data) - 5, boom, 32 << 10},
		{"error at once", 0, boom, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &failingSource{data: data[:tc.size], err: tc.err}
			r := newReadahead(src, nil)
			var got bytes.Buffer
			buf := make([]byte, tc.readBuf)
			var err error
			for {
				var n int
				n, err = r.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if err != tc.err {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if !bytes.Equal(got.Bytes(), data[:tc.size]) {
				t.Fatalf("read %d bytes, want the %d the source gave", got.Len(), tc.size)
			}
			// The error is sticky, as the decoders' own.
			if _, err := r.Read(buf); err != tc.err {
				t.Fatalf("second read: %v, want %v", err, tc.err)
			}
			if err := r.Close(); err != nil || !src.closed {
				t.Fatalf("Close: %v, source closed %v", err, src.closed)
			}
		})
	}
}

// TestReadaheadCloseEarly: a caller that stops reading (a parse error)
// must get Close back promptly, with the goroutine stopped, whether it
// read nothing or left the goroutine blocked on full chunks.
func TestReadaheadCloseEarly(t *testing.T) {
	for _, reads := range []int{0, 1} {
		src := &failingSource{data: make([]byte, 100*readaheadChunk), err: io.EOF}
		r := newReadahead(src, nil)
		buf := make([]byte, 10)
		for i := 0; i < reads; i++ {
			if _, err := r.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond) // let the goroutine fill its chunks
		done := make(chan struct{})
		go func() { r.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close after %d reads did not return", reads)
		}
		if r.started {
			select {
			case <-r.done:
			default:
				t.Fatal("the decoding goroutine still runs after Close")
			}
		}
		if len(src.data) == 0 {
			t.Fatal("the goroutine read the whole source instead of stopping")
		}
	}
}
