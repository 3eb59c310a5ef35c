package pipeline

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// TestPrecompressorWaitsForHeavyDecoders: while the input's decoder is
// one that uses every core or a large window, a worker compresses no more
// than the body it had started; once decoding ends it does the rest.
func TestPrecompressorWaitsForHeavyDecoders(t *testing.T) {
	for _, tc := range []struct {
		c     codec.Codec
		heavy bool
	}{{codec.XZ, true}, {codec.Bzip2, true}, {codec.LZMA, true}, {codec.Zstd, false}, {codec.Gzip, false}, {codec.LZ4, false}, {codec.None, false}} {
		if got := heavyDecoder(tc.c); got != tc.heavy {
			t.Errorf("heavyDecoder(%s) = %v, want %v", tc.c, got, tc.heavy)
		}
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	var files []overlay.RootFile
	for _, name := range []string{"a", "b", "c"} {
		b := make([]byte, spliceMin+1000)
		rng.Read(b[:len(b)/2])
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, overlay.RootFile{Path: "/usr/bin/" + name, Host: p})
	}
	p, err := newPrecompressor(context.Background(), files, codec.WriterOptions{Level: 1}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the workers are let go (the end of decoding)
	// before they are waited for.
	defer func() { p.afterDecode(); p.wait() }()
	p.decoding(codec.XZ)
	p.start()
	<-p.order[0].ready
	time.Sleep(200 * time.Millisecond)
	p.mu.Lock()
	started := p.order[1].started || p.order[2].started
	p.mu.Unlock()
	if started {
		t.Fatal("a worker went on compressing while an xz input was decoded")
	}
	p.afterDecode()
	for i, j := range p.order {
		select {
		case <-j.ready:
			if j.err != nil || j.s == nil {
				t.Errorf("body %d: %v", i, j.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("body %d not compressed after the end of decoding", i)
		}
	}
}
