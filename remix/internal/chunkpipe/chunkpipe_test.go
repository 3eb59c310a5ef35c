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

// A write larger than MaxChunk is cut: the pipe then holds at most its
// depth times MaxChunk whatever the writes (a 5 MiB block read whole went
// through in one chunk of 5 MiB, 16 of them deep).
func TestLargeWritesCut(t *testing.T) {
	leakcheck.NoLeak(t)
	r, w := New(4)
	want := pattern(5<<20 + 17)
	go func() {
		w.Write(want)
		w.Write(want[:3])
		w.CloseWithError(nil)
	}()
	var got bytes.Buffer
	var largest int
	for {
		if err := r.next(); err != nil {
			break
		}
		largest = max(largest, len(r.p.cur))
		got.Write(r.p.cur)
		r.p.cur = nil
	}
	if !bytes.Equal(got.Bytes(), append(want, want[:3]...)) || largest != MaxChunk {
		t.Errorf("read %d bytes (want %d), largest chunk %d (want %d)", got.Len(), len(want)+3, largest, MaxChunk)
	}
}

// A writer that fills its own chunks: Send hands them over without a copy,
// Recycled gives them back once read, Chunks returns all of them at the end.
func TestSendRecycled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks int
		sends  int
		stop   bool // the reader closes after the first chunk
	}{
		{"whole stream", 2, 50, false},
		{"reader stops", 2, 50, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.NoLeak(t)
			r, w := New(tc.chunks)
			const size = 64
			var allocated int
			done := make(chan error, 1)
			go func() {
				for i := range tc.sends {
					b, err := w.Recycled(allocated >= tc.chunks+1)
					if err != nil {
						done <- err
						return
					}
					if b == nil {
						allocated++
						b = make([]byte, 0, size)
					}
					b = append(b[:0], bytes.Repeat([]byte{byte(i)}, size)...)
					if err := w.Send(b); err != nil {
						done <- err
						return
					}
				}
				w.CloseWithError(nil)
				done <- nil
			}()
			buf := make([]byte, size)
			for i := 0; ; i++ {
				if tc.stop && i == 1 {
					r.CloseWithError(nil)
					break
				}
				_, err := io.ReadFull(r, buf)
				if err == io.EOF {
					if i != tc.sends {
						t.Fatalf("EOF after %d chunks, want %d", i, tc.sends)
					}
					break
				}
				if err != nil || buf[0] != byte(i) || buf[size-1] != byte(i) {
					t.Fatalf("chunk %d: %v, % x", i, err, buf[:4])
				}
			}
			err := <-done
			if tc.stop != (err != nil) {
				t.Fatalf("writer ended with %v", err)
			}
			if allocated > tc.chunks+1 {
				t.Errorf("%d chunks allocated for a pipe of %d", allocated, tc.chunks)
			}
			got := r.Chunks()
			if !tc.stop && len(got) != allocated {
				t.Errorf("Chunks returned %d, %d were allocated", len(got), allocated)
			}
			for _, c := range got {
				if len(c) != 0 || cap(c) != size {
					t.Errorf("Chunks returned a chunk of len %d cap %d", len(c), cap(c))
				}
			}
		})
	}
}
