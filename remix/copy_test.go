package remix

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
)

// TestCopyToMakesTheSameOutput: an output filled by OpenOptions.CopyTo and
// written with WriteOptions.Copied is byte for byte the output of a write
// that reads the input again, in both modes (a rewrite cuts the copy to the
// early archives).
func TestCopyToMakesTheSameOutput(t *testing.T) {
	in := distroImage(t, codec.Gzip)
	inPath := imagetest.WriteImage(t, "initrd.img", in)
	for _, mode := range []WriteMode{Append, Rewrite} {
		t.Run(string(mode), func(t *testing.T) {
			edit := func(img *Image) {
				img.Tree.SetGeneration(img.EditGeneration())
				if _, err := img.Tree.Put(Entry{Name: "etc/rescue", Mode: fileMode, Content: BytesContent("edit")}); err != nil {
					t.Fatal(err)
				}
			}
			opt := WriteOptions{Mode: mode, Compression: codec.Zstd, Verify: true}
			img := open(t, inPath)
			edit(img)
			want, _ := rewrite(t, img, opt)

			out, err := os.Create(filepath.Join(t.TempDir(), "copied.img"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			img2, err := Open(context.Background(), inPath, OpenOptions{CopyTo: out})
			if err != nil {
				t.Fatal(err)
			}
			defer img2.Close()
			if st, _ := out.Stat(); st.Size() != int64(len(in)) {
				t.Fatalf("the copy holds %d bytes of %d", st.Size(), len(in))
			}
			edit(img2)
			opt.Copied = true
			res, err := img2.WriteTo(context.Background(), out, opt)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out.Name())
			wantData, _ := os.ReadFile(want)
			if !bytes.Equal(got, wantData) || res.Bytes != int64(len(got)) {
				t.Fatalf("copied output differs: %d bytes against %d (result says %d)", len(got), len(wantData), res.Bytes)
			}
			if err := res.Verify(context.Background(), out.Name()); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("copied without a copy", func(t *testing.T) {
		img := open(t, inPath)
		out, err := os.Create(filepath.Join(t.TempDir(), "x.img"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if _, err := img.WriteTo(context.Background(), out, WriteOptions{Mode: Append, Copied: true}); err == nil {
			t.Fatal("WriteOptions.Copied on an image opened without CopyTo must fail")
		}
	})
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestCopyToFailureFailsOpen: a copy that cannot be written makes Open
// fail (naming it), without disturbing or hanging the decoding.
func TestCopyToFailureFailsOpen(t *testing.T) {
	inPath := imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip))
	for _, after := range []int{0, 100} {
		_, err := Open(context.Background(), inPath, OpenOptions{CopyTo: &failingWriter{after: after}})
		if err == nil || !strings.Contains(err.Error(), "copy to the output") || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("failing after %d bytes: %v", after, err)
		}
	}
}
