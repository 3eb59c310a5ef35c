package remix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
)

// splicedFiles adds host files to img's tree, large and small, and
// returns the large ones' contents.
func splicedFiles(t *testing.T, img *Image) []FileContent {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	var large []FileContent
	for i, size := range []int{200 << 10, 100, 90 << 10, 5000, 300 << 10, 70 << 10, 200 << 10} {
		var b bytes.Buffer
		for b.Len() < size {
			fmt.Fprintf(&b, "lib%d.so.%d GLIBC_2.%d ", rng.IntN(50), rng.IntN(9), rng.IntN(40))
		}
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, b.Bytes()[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := NewFileContent(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := img.Tree.Install(File(fmt.Sprintf("usr/lib/x/f%d", i), 0o755, c)); err != nil {
			t.Fatal(err)
		}
		if size >= 64<<10 {
			large = append(large, c)
		}
	}
	return large
}

// splicer compresses contents ahead, as the pipeline does, and counts
// what it handed out.
func splicer(t *testing.T, o codec.WriterOptions, large []FileContent, swap bool) (func(Content) (*codec.Spliced, error), *int) {
	t.Helper()
	enc, err := codec.NewSpliceEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	pre := map[FileContent]*codec.Spliced{}
	for i, c := range large {
		src := c
		if swap {
			// The blocks of another file: what a wrong cache would do.
			src = large[(i+1)%len(large)]
		}
		b, err := os.ReadFile(src.Path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := enc.Encode(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		pre[c] = s
	}
	n := 0
	return func(c Content) (*codec.Spliced, error) {
		fc, ok := c.(FileContent)
		if !ok || pre[fc] == nil {
			return nil, nil
		}
		n++
		return pre[fc], nil
	}, &n
}

// TestAppendSplicesBodies: bodies compressed ahead become frames of their
// own that the verifying reader, the zstd CLI and this package's reader
// read back as the same tree, whatever the concurrency.
func TestAppendSplicesBodies(t *testing.T) {
	in := imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Zstd))
	o := codec.WriterOptions{Level: 1, Window: 64 << 10}
	var first []byte
	for _, threads := range []int{1, 3} {
		img := open(t, in)
		large := splicedFiles(t, img)
		splice, used := splicer(t, o, large, false)
		want := view(t, img)
		out, res := rewrite(t, img, WriteOptions{Mode: Append, Compression: codec.Zstd, Level: o.Level, Window: o.Window,
			FrameSize: 8 << 10, Concurrency: threads, Verify: true, Splice: splice})
		if *used != len(large) {
			t.Fatalf("%d bodies spliced, want %d", *used, len(large))
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		s, err := scanAll(data[res.NewSegmentOffset:])
		if err != nil {
			t.Fatal(err)
		}
		if len(s.segs) < len(large)+1 {
			t.Fatalf("%d zstd frames, want at least %d (one per spliced body)", len(s.segs), len(large)+1)
		}
		checkCLIList(t, "zstd", data[res.NewSegmentOffset:], nil)
		if d := DiffViews(want, view(t, open(t, out))); d != nil {
			t.Fatalf("merged trees differ:\n%s", strings.Join(d, "\n"))
		}
		if first == nil {
			first = data
		} else if !bytes.Equal(first, data) {
			t.Fatalf("output with %d threads differs from 1 thread", threads)
		}
	}
}

// TestAppendSpliceVerified: blocks that do not hold the content (a stale
// or wrong cache) fail the read-back check, and a splice of another level
// or window fails the write.
func TestAppendSpliceVerified(t *testing.T) {
	in := imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Zstd))
	tests := []struct {
		name  string
		enc   codec.WriterOptions
		swap  bool
		check func(error) bool
	}{
		{"other bodies' blocks", codec.WriterOptions{Level: 1, Window: 64 << 10}, true,
			func(err error) bool { return errors.As(err, new(*VerifyError)) }},
		{"other window", codec.WriterOptions{Level: 1, Window: 128 << 10}, false,
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "window") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := open(t, in)
			large := splicedFiles(t, img)
			// The first and last large files have the same size.
			splice, _ := splicer(t, tc.enc, large, tc.swap)
			if tc.swap {
				splice = sameSize(splice)
			}
			_, err := img.WriteTo(context.Background(), io.Discard, WriteOptions{Mode: Append, Compression: codec.Zstd, Level: 1,
				Window: 64 << 10, FrameSize: 8 << 10, Verify: true, Splice: splice})
			if !tc.check(err) {
				t.Fatalf("WriteTo: %v", err)
			}
		})
	}
}

// sameSize passes on only the blocks whose size is the content's, so a
// swapped body reaches the check of what was written rather than the
// writer's check of the size.
func sameSize(f func(Content) (*codec.Spliced, error)) func(Content) (*codec.Spliced, error) {
	return func(c Content) (*codec.Spliced, error) {
		s, err := f(c)
		if s != nil && s.Size() != c.Size() {
			return nil, nil
		}
		return s, err
	}
}
