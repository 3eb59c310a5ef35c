package countio

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCounts(t *testing.T) {
	tests := []struct {
		name string
		src  io.Reader
	}{
		{"plain", strings.NewReader("hello, world")},
		{"one byte a read", iotest.OneByteReader(strings.NewReader("hello, world"))},
		{"byte reader", bufio.NewReader(strings.NewReader("hello, world"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := &ByteReader{Reader{R: tt.src}}
			b, err := br.ReadByte()
			if err != nil || b != 'h' || br.N != 1 {
				t.Fatalf("ReadByte = %q, %v, N=%d; want 'h', nil, 1", b, err, br.N)
			}
			var out bytes.Buffer
			w := &Writer{W: &out}
			n, err := io.Copy(w, br)
			if err != nil || n != 11 || w.N != 11 || br.N != 12 || out.String() != "ello, world" {
				t.Fatalf("copy: n=%d err=%v w.N=%d r.N=%d out=%q", n, err, w.N, br.N, out.String())
			}
			if _, err := br.ReadByte(); err != io.EOF || br.N != 12 {
				t.Fatalf("ReadByte at the end: %v, N=%d; want EOF, 12", err, br.N)
			}
		})
	}
}

// A failing writer's short count is what is counted.
func TestWriterShort(t *testing.T) {
	w := &Writer{W: shortWriter{}}
	n, err := w.Write([]byte("abcdef"))
	if n != 3 || err == nil || w.N != 3 {
		t.Fatalf("Write = %d, %v, N=%d; want 3, error, 3", n, err, w.N)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, io.ErrShortWrite }
