package codec

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec/internal/lzmadec"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// The benchmarks work on 32 MiB of initrd-like data (see initrdLike):
//
//	go test -run '^$' -bench . -benchtime 3x ./remix/codec/
const benchSize = 32 << 20

func BenchmarkEncode(b *testing.B) {
	data := initrdLike(benchSize, 30)
	for _, c := range Writable() {
		for _, level := range []int{0, 9} {
			if level != 0 && (c == None || c == XZ) {
				continue
			}
			name := string(c)
			if level != 0 {
				name += "-9"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var size int
				for i := 0; i < b.N; i++ {
					var buf bytes.Buffer
					buf.Grow(len(data))
					w, err := NewWriter(c, &buf, WriterOptions{Level: level})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := w.Write(data); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
					size = buf.Len()
				}
				b.ReportMetric(float64(len(data))/float64(size), "ratio")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := initrdLike(benchSize, 30)
	streams := []struct {
		c      Codec
		stream func(b *testing.B) []byte
	}{
		{Gzip, nil}, {Zstd, nil}, {XZ, nil}, {LZ4, nil},
		{Bzip2, func(b *testing.B) []byte { return cli(b, data, "bzip2", "-c", "-9") }},
		{LZMA, func(b *testing.B) []byte { return cli(b, data, "lzma", "-c", "-6") }},
		{LZO, func(b *testing.B) []byte { return cli(b, data, "lzop", "-c", "-9") }},
	}
	for _, s := range streams {
		b.Run(string(s.c), func(b *testing.B) {
			var stream []byte
			if s.stream == nil {
				stream = encode(b, s.c, data, WriterOptions{}, len(data))
			} else {
				stream = s.stream(b)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := NewReader(s.c, bufio.NewReaderSize(bytes.NewReader(stream), 256<<10))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				r.Close()
				if err != nil || n != int64(len(data)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkLZMADecoders compares the LZMA decoder of lzmadec with
// ulikunitz/xz's on one core: a .lzma stream and an xz stream of one
// block (`xz -T1`), both from the xz tool at preset 6.
//
//	go test -run '^$' -bench LZMADecoders -benchtime 3x ./remix/codec/
func BenchmarkLZMADecoders(b *testing.B) {
	data := initrdLike(benchSize, 30)
	lzmaStream := cli(b, data, "xz", "--format=lzma", "-6", "-c")
	xzStream := cli(b, data, "xz", "-T1", "-6", "-c")
	decoders := []struct {
		name string
		open func(in []byte) (io.Reader, error)
	}{
		{"lzma/lzmadec", func(in []byte) (io.Reader, error) {
			return lzmadec.NewReader(bufio.NewReaderSize(bytes.NewReader(in), 256<<10), MaxDictSize)
		}},
		{"lzma/ulikunitz", func(in []byte) (io.Reader, error) {
			return lzma.NewReader(bufio.NewReaderSize(bytes.NewReader(in), 256<<10))
		}},
		{"xz/lzmadec", func(in []byte) (io.Reader, error) {
			return NewReader(XZ, bufio.NewReaderSize(bytes.NewReader(in), 256<<10))
		}},
		{"xz/ulikunitz", func(in []byte) (io.Reader, error) {
			return xz.NewReader(bufio.NewReaderSize(bytes.NewReader(in), 256<<10))
		}},
	}
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			in := lzmaStream
			if strings.HasPrefix(d.name, "xz/") {
				in = xzStream
			}
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				r, err := d.open(in)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				if c, ok := r.(io.Closer); ok {
					c.Close()
				}
				if err != nil || n != int64(len(data)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}

// bzip2 benchmarks: the parallel decoder on streams of the bzip2 CLI, and
// on the bzip2 segment of the lab's dracut image when INITRD_REMIX_LAB
// names the lab (the real figure of issue 17).
//
//	go test -run '^$' -bench Bzip2 -benchtime 3x ./remix/codec/
func BenchmarkBzip2(b *testing.B) {
	data := initrdLike(benchSize, 31)
	streams := []struct {
		name   string
		stream func(b *testing.B) []byte
	}{
		{"initrdLike-9", func(b *testing.B) []byte { return cli(b, data, "bzip2", "-c", "-9") }},
		{"initrdLike-1", func(b *testing.B) []byte { return cli(b, data, "bzip2", "-c", "-1") }},
		{"lab-dracut", labBzip2Segment},
	}
	for _, s := range streams {
		b.Run(s.name, func(b *testing.B) {
			stream := s.stream(b)
			var n int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := NewReader(Bzip2, bufio.NewReaderSize(bytes.NewReader(stream), 256<<10))
				if err != nil {
					b.Fatal(err)
				}
				n, err = io.Copy(io.Discard, r)
				r.Close()
				if err != nil {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
			b.SetBytes(n)
		})
	}
}

// labBzip2Segment returns the first bzip2 stream of the lab's
// dracut-nosd-bzip2 image, skipping the benchmark without the lab.
func labBzip2Segment(b *testing.B) []byte {
	lab := os.Getenv("INITRD_REMIX_LAB")
	if lab == "" {
		b.Skip("INITRD_REMIX_LAB is not set")
	}
	img, err := os.ReadFile(filepath.Join(lab, "images", "dracut-nosd-bzip2.img"))
	if err != nil {
		b.Skip(err)
	}
	i := bytes.Index(img, []byte("BZh91AY&SY"))
	if i < 0 {
		b.Fatal("no bzip2 stream in the image")
	}
	return img[i:]
}
