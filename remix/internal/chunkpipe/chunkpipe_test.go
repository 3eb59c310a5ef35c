package chunkpipe

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/leakcheck"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestStream(t *testing.T) {
	for _, tc := range []struct {
		name          string
		chunks, total int
		write, read   int
		writeTo       bool
	}{
		{"one chunk, small writes", 1, 10000, 3, 5, false},
		{"reads larger than writes", 4, 1 << 20, 1000, 64 << 10, false},
		{"reads smaller than writes", 16, 1 << 20, 64 << 10, 100, false},
		{"empty stream", 2, 0, 1, 1, false},
		{"WriteTo", 3, 300000, 4096, 0, true},
		{"zero chunks means one", 0, 5000, 7, 11, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.NoLeak(t)
			want := pattern(tc.total)
			r, w := New(tc.chunks)
			go func() {
				for b := want; len(b) > 0; {
					n := min(len(b), tc.write)
					if _, err := w.Write(b[:n]); err != nil {
						w.CloseWithError(err)
						return
					}
					b = b[n:]
				}
				w.CloseWithError(nil)
			}()
			var got bytes.Buffer
			if tc.writeTo {
				n, err := r.WriteTo(&got)
				if err != nil || n != int64(tc.total) {
					t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, tc.total)
				}
			} else {
				buf := make([]byte, tc.read)
				for {
					n, err := r.Read(buf)
					got.Write(buf[:n])
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("read %d bytes that differ from the %d written", got.Len(), len(want))
			}
		})
	}
}

func TestWriterError(t *testing.T) {
	leakcheck.NoLeak(t)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"error", boom, boom},
		{"nil is EOF", nil, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := New(2)
			w.Write([]byte("abc"))
			w.CloseWithError(tc.err)
			got, err := io.ReadAll(struct{ io.Reader }{r})
			if string(got) != "abc" {
				t.Errorf("read %q before the close, want abc", got)
			}
			if tc.want == io.EOF {
				if err != nil {
					t.Errorf("ReadAll error %v, want none", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Errorf("ReadAll error %v, want %v", err, tc.want)
			}
		})
	}
}

// The reader's close releases a writer waiting on a full pipe, and every
// later write fails with the reader's error.
func TestReaderCloseStopsWriter(t *testing.T) {
	leakcheck.NoLeak(t)
	stop := errors.New("checker failed")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"error", stop, stop},
		{"nil", nil, io.ErrClosedPipe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := New(1)
			if _, err := w.Write([]byte("fills the pipe")); err != nil {
				t.Fatal(err)
			}
			blocked := make(chan error, 1)
			go func() {
				_, err := w.Write([]byte("waits"))
				blocked <- err
			}()
			select {
			case err := <-blocked:
				t.Fatalf("Write on a full pipe returned %v without waiting", err)
			case <-time.After(20 * time.Millisecond):
			}
			r.CloseWithError(tc.err)
			r.CloseWithError(errors.New("second close is ignored"))
			if err := <-blocked; !errors.Is(err, tc.want) {
				t.Errorf("blocked Write = %v, want %v", err, tc.want)
			}
			if _, err := w.Write([]byte("later")); !errors.Is(err, tc.want) {
				t.Errorf("later Write = %v, want %v", err, tc.want)
			}
			w.CloseWithError(nil)
		})
	}
}

// Chunks come back to the writer: a long stream through a small pipe
// allocates about as many chunk buffers as the pipe holds, not one per
// write.
func TestChunksRecycled(t *testing.T) {
	r, w := New(4)
	data := make([]byte, 32<<10)
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(done)
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 2000 {
		w.Write(data)
	}
	w.CloseWithError(nil)
	<-done
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 200*uint64(len(data)) {
		t.Errorf("2000 writes of %d bytes allocated %d bytes: chunks are not reused", len(data), got)
	}
}
