package remix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/testtool"
)

// TestLabRewriteIsMultiFrame: a real image rewritten to zstd or gzip comes
// out as several streams of one archive (so the encoder works in parallel),
// every stream after the first continuing the archive, and reads back to the
// same merged tree. It fails if the writer ever stops cutting frames.
func TestLabRewriteIsMultiFrame(t *testing.T) {
	lab := testtool.Lab(t)
	in := filepath.Join(lab, "images", "itools-zstd.img")
	if _, err := os.Stat(in); err != nil {
		t.Fatalf("lab image: %v", err)
	}
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		t.Run(string(c), func(t *testing.T) {
			img := open(t, in)
			want := view(t, img)
			out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: c, Verify: true})
			written := open(t, out)
			var streams, continuing int
			for _, s := range written.Segments {
				if s.Offset < res.NewSegmentOffset {
					continue
				}
				if s.Compression != c {
					t.Fatalf("segment %d is %s, want %s", s.Index, s.Compression, c)
				}
				streams++
				if s.Continues {
					continuing++
				}
			}
			// 139 MiB of cpio in frames of codec.DefaultFrameSize.
			if streams < 8 || continuing != streams-1 {
				t.Fatalf("%d %s streams, %d continuing the archive: want one archive over 8 or more", streams, c, continuing)
			}
			if d := DiffViews(want, view(t, written)); d != nil {
				t.Fatalf("merged trees differ:\n%s", strings.Join(d[:min(5, len(d))], "\n"))
			}
			t.Logf("%s: %d streams, %d bytes", c, streams, res.Bytes)
		})
	}
}
