package pipeline

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/remix"
)

// BenchmarkBuildLab is `build --mode append` on the lab's images (skipped
// without the lab), as the figures are taken: strip only
// (--preset none --drivers none), the rescue preset with --drivers none,
// and the rescue preset with the default driver classes. Compare it with
// the image's decompression floor (scripts/bench.sh); it asserts no time.
func BenchmarkBuildLab(b *testing.B) {
	lab := testtool.OpenLab(b)
	root, kver := lab.Var(b, "LAB_ROOT"), lab.Var(b, "LAB_KVER")
	for _, name := range []string{"itools-zstd", "dracut-sd-zstd"} {
		im := lab.Image(b, name)
		for _, bc := range []struct {
			name string
			ov   overlay.Options
		}{
			{"strip-only", overlay.Options{Root: root, Preset: "none", Drivers: []string{}}},
			{"rescue", overlay.Options{Root: root, Drivers: []string{}}},
			{"rescue-drivers", overlay.Options{Root: root}},
		} {
			b.Run(name+"/"+bc.name, func(b *testing.B) {
				out := filepath.Join(b.TempDir(), "rescue.img")
				var size int64
				for b.Loop() {
					res, err := Build(context.Background(), Options{Input: im.Path, Output: out, Kver: kver,
						Mode: remix.Append, Overlay: bc.ov, MemoryLimit: AppendMemoryLimit})
					if err != nil {
						b.Fatal(err)
					}
					size = res.Write.Bytes
				}
				b.ReportMetric(float64(size), "out-bytes")
			})
		}
	}
}
