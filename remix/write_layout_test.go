package remix

import (
	"io"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

func TestPlanLayout(t *testing.T) {
	early := Segment{Index: 0, Offset: 0, Length: 1022, Padding: 0, Compression: codec.None, Early: true}
	openEarly := early
	openEarly.Unterminated = true
	zst := Segment{Index: 1, Offset: 1022, Length: 5000, Compression: codec.Zstd}
	lz4 := Segment{Index: 1, Offset: 1024, Length: 5001, Compression: codec.LZ4}
	lz4padded := lz4
	lz4padded.Padding = 3
	for _, tc := range []struct {
		name string
		segs []Segment
		size int64
		mode WriteMode
		want layout
	}{
		{"rewrite keeps the early archive", []Segment{early, zst}, 6022, Rewrite,
			layout{mode: Rewrite, keep: 1022, minGen: 1, pad: 2}},
		{"rewrite closes an early archive left open", []Segment{openEarly, zst}, 6022, Rewrite,
			layout{mode: Rewrite, keep: 1022, minGen: 1, closesArchive: true, pad: 2}},
		{"rewrite of an image with no early archive", []Segment{{Offset: 0, Length: 700, Compression: codec.Gzip}}, 700, Rewrite,
			layout{mode: Rewrite, keep: 0, minGen: 0}},
		{"rewrite of early archives only keeps everything", []Segment{early}, 1022, Rewrite,
			layout{mode: Rewrite, keep: 1022, minGen: 1, pad: 2}},
		{"append keeps everything", []Segment{early, zst}, 6022, Append,
			layout{mode: Append, keep: 6022, minGen: 2, pad: 2}},
		{"append after lz4 adds the zeros its end needs", []Segment{early, lz4}, 6025, Append,
			layout{mode: Append, keep: 6025, minGen: 2, pad: 7}},
		{"append after lz4 counts its padding", []Segment{early, lz4padded}, 6028, Append,
			layout{mode: Append, keep: 6028, minGen: 2, pad: 4}},
		{"streamer: bytes before the first compressed segment", nil, 1022, Rewrite,
			layout{mode: Rewrite, keep: 1022, minGen: 0, pad: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planLayout(tc.segs, tc.size, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("planLayout = %+v, want %+v", got, tc.want)
			}
			cw := &countio.Writer{W: io.Discard, N: got.keep}
			if err := got.padBefore(cw); err != nil {
				t.Fatal(err)
			}
			if cw.N%4 != 0 || cw.N-got.keep != got.pad {
				t.Errorf("padBefore wrote %d zeros to end at %d, want %d to a 4-byte boundary", cw.N-got.keep, cw.N, got.pad)
			}
		})
	}
	if _, err := planLayout(nil, 0, "sideways"); err == nil {
		t.Error("unknown mode accepted")
	}
	l := layout{keep: 10}
	if err := l.padBefore(&countio.Writer{W: io.Discard, N: 9}); err == nil {
		t.Error("padBefore accepted an output that does not hold the kept bytes")
	}
}
