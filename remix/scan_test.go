package remix

import (
	"context"
	"regexp"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
)

// TestScanErrorSaysOffsetOnce: an error names the file once and each
// offset once, however many layers it went through.
func TestScanErrorSaysOffsetOnce(t *testing.T) {
	good := imagetest.Archive(t, ent{Name: ".", Mode: dirMode}, ent{Name: "a", Mode: fileMode, Body: "hello"})
	badMagic := append([]byte("0707X1"), good[6:]...)
	tests := []struct {
		name string
		data []byte
	}{
		{"bad magic, uncompressed", badMagic},
		{"bad magic in a stream", imagetest.Compress(t, codec.Zstd, badMagic)},
		{"truncated, uncompressed", good[:len(good)-130]},
		{"stream ends inside an entry", imagetest.Compress(t, codec.Gzip, good[:len(good)-130])},
		{"metadata limit", manyEntries(t, codec.Zstd, 50, 8, 0, 0)},
	}
	offset := regexp.MustCompile(`(?:decompressed )?offset \d+`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := imagetest.WriteImage(t, "initrd.img", tc.data)
			_, err := Open(context.Background(), p, OpenOptions{ScanOptions: ScanOptions{MaxMetadata: 10 * EntryCost}})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			seen := map[string]bool{}
			for _, o := range offset.FindAllString(msg, -1) {
				if seen[o] {
					t.Errorf("%q is said twice: %s", o, msg)
				}
				seen[o] = true
			}
			if len(seen) == 0 || len(regexp.MustCompile(regexp.QuoteMeta(p)).FindAllString(msg, -1)) != 1 {
				t.Errorf("the file and an offset must be named once: %s", msg)
			}
		})
	}
}
