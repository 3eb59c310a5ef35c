package remix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// manyEntries is a hostile image: a root and n empty files named to
// nameLen bytes, every symEvery-th one (if not 0) a symlink with a target
// of targetLen bytes. It is tiny on disk and in decompressed bytes.
func manyEntries(t testing.TB, c codec.Codec, n, nameLen, symEvery, targetLen int) []byte {
	t.Helper()
	es := []ent{{Name: ".", Mode: dirMode}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%07d", i)
		if len(name) < nameLen {
			name += strings.Repeat("x", nameLen-len(name))
		}
		e := ent{Name: name, Mode: fileMode}
		if symEvery > 0 && i%symEvery == 0 {
			e = ent{Name: name, Mode: linkMode, Body: strings.Repeat("t", max(targetLen, 1))}
		}
		es = append(es, e)
	}
	a := imagetest.Archive(t, es...)
	if c == codec.None {
		return a
	}
	return imagetest.Compress(t, c, a)
}

// chargeOf is what an entry costs the metadata budget.
func chargeOf(h *newc.Header) int64 {
	n := int64(EntryCost + len(h.Name))
	if h.Type() == newc.TypeSymlink {
		n += h.Size
	}
	return n
}

// checkBudget reads data with the given budget and checks what the budget
// promises: the read succeeds when what the image costs fits, fails with a
// *MetadataError when it does not, and in neither case hands on more than
// fits.
func checkBudget(t *testing.T, data []byte, budget int64, metadataOnly bool) {
	t.Helper()
	// What the image costs, counted without a limit.
	var want int64
	segs, err := Scan(context.Background(), bytes.NewReader(data), ScanOptions{MaxMetadata: -1}, func(_ *Segment, _ int, h *newc.Header, _ io.Reader) error {
		want += chargeOf(h)
		return nil
	})
	if err != nil {
		t.Fatalf("the image does not read without a limit: %v", err)
	}
	want += int64(len(segs)) * EntryCost
	var got int64
	opt := OpenOptions{ScanOptions: ScanOptions{MaxMetadata: budget}, MetadataOnly: metadataOnly,
		OnEntry: func(_ *Segment, h *newc.Header, _ string) { got += chargeOf(h) }}
	img, err := Read(context.Background(), bytes.NewReader(data), opt)
	if err == nil {
		img.Close()
	}
	var me *MetadataError
	switch {
	case want <= budget && err != nil:
		t.Fatalf("costs %d of a budget of %d, yet fails: %v", want, budget, err)
	case want > budget && !errors.As(err, &me):
		t.Fatalf("costs %d, over the budget of %d, yet reads with error %v", want, budget, err)
	case me != nil && (me.Limit != budget || !strings.Contains(err.Error(), "metadata limit of")):
		t.Fatalf("the error does not name the limit %d: %v", budget, err)
	}
	// Segments are charged before their entries: at least one was.
	if got+EntryCost > budget {
		t.Fatalf("entries costing %d were handed on under a budget of %d", got, budget)
	}
}

func TestMetadataBudget(t *testing.T) {
	tests := []struct {
		name                            string
		c                               codec.Codec
		n, nameLen, symEvery, targetLen int
		budget                          int64
	}{
		{"fits exactly", codec.None, 10, 8, 0, 0, 2*EntryCost + 1 + 10*(EntryCost+8)},
		{"one byte short", codec.None, 10, 8, 0, 0, 2*EntryCost + 1 + 10*(EntryCost+8) - 1},
		{"long names", codec.Zstd, 200, 4000, 0, 0, 64 << 10},
		{"long link targets", codec.Gzip, 200, 8, 1, 4000, 64 << 10},
		{"many empty files", codec.Zstd, 20000, 8, 0, 0, 1 << 20},
		{"many empty files fit", codec.Zstd, 20000, 8, 0, 0, 32 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := manyEntries(t, tc.c, tc.n, tc.nameLen, tc.symEvery, tc.targetLen)
			checkBudget(t, data, tc.budget, true)
			checkBudget(t, data, tc.budget, false)
		})
	}
}

// TestDefaultMetadataBudgetStopsEntryBombs: with no limit given, an image
// of a few hundred KiB holding 300,000 empty files is refused; before the
// budget, --max-size alone let it (and 30 times more) through.
func TestDefaultMetadataBudgetStopsEntryBombs(t *testing.T) {
	data := manyEntries(t, codec.Zstd, 300000, 8, 0, 0)
	_, err := Read(context.Background(), bytes.NewReader(data), OpenOptions{MetadataOnly: true})
	var me *MetadataError
	if !errors.As(err, &me) || me.Limit != DefaultMaxMetadata {
		t.Fatalf("%d bytes holding 300000 entries: got %v, want the default metadata limit", len(data), err)
	}
}

// FuzzMetadataBudget: generated images of any shape either read within the
// budget or fail with the budget's error, never handing on more than it.
func FuzzMetadataBudget(f *testing.F) {
	f.Add(uint16(10), uint16(8), uint8(0), uint16(0), uint32(20000), uint8(0))
	f.Add(uint16(300), uint16(2000), uint8(3), uint16(100), uint32(100000), uint8(1))
	f.Add(uint16(2000), uint16(1), uint8(1), uint16(4000), uint32(1<<20), uint8(2))
	f.Fuzz(func(t *testing.T, n, nameLen uint16, symEvery uint8, targetLen uint16, budget uint32, c uint8) {
		codecs := []codec.Codec{codec.None, codec.Zstd, codec.Gzip}
		data := manyEntries(t, codecs[int(c)%len(codecs)], int(n%4096), int(nameLen%newc.MaxNameLen), int(symEvery), int(targetLen%4000))
		checkBudget(t, data, int64(budget)+1, c&4 != 0)
	})
}
