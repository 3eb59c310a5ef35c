package lzmadec

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"testing"
)

func BenchmarkFileLZMA(b *testing.B) {
	f := os.Getenv("LZMA_FILE")
	if f == "" {
		b.Skip("LZMA_FILE not set")
	}
	data, err := os.ReadFile(f)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		r, err := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 256<<10), 1<<27)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n)
	}
}
