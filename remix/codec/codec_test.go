package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/testtool"
)

// initrdLike returns data shaped like an initrd: text and binary runs.
func initrdLike(n int) []byte {
	rng := rand.New(rand.NewSource(1))
	var b bytes.Buffer
	for b.Len() < n {
		if rng.Intn(2) == 0 {
			b.WriteString(strings.Repeat("#!/bin/sh\necho initrd-remix test line\n", 1+rng.Intn(50)))
		} else {
			chunk := make([]byte, 1+rng.Intn(4096))
			rng.Read(chunk)
			b.Write(chunk)
		}
	}
	return b.Bytes()[:n]
}

func cli(t *testing.T, in []byte, name string, args ...string) []byte {
	t.Helper()
	testtool.Require(t, name)
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.Bytes()
}

var cliEncoders = []struct {
	name  string
	codec Codec
	cmd   []string
}{
	{"gzip -n", Gzip, []string{"gzip", "-n", "-c"}},
	{"zstd", Zstd, []string{"zstd", "-q", "-c"}},
	{"zstd --no-check", Zstd, []string{"zstd", "-q", "-c", "--no-check", "-19"}},
	{"xz crc32", XZ, []string{"xz", "-c", "--check=crc32", "--lzma2=dict=1MiB"}},
	{"xz crc64", XZ, []string{"xz", "-c"}},
	{"lz4 legacy", LZ4, []string{"lz4", "-l", "-c", "-q"}},
	{"bzip2", Bzip2, []string{"bzip2", "-c"}},
	{"lzma", LZMA, []string{"lzma", "-c"}},
}

// TestDecodeIsExact checks that each decoder consumes exactly its stream:
// the sentinel after it must be the next thing the source yields.
func TestDecodeIsExact(t *testing.T) {
	data := initrdLike(1 << 20)
	for _, tc := range cliEncoders {
		t.Run(tc.name, func(t *testing.T) {
			stream := cli(t, data, tc.cmd[0], tc.cmd[1:]...)
			if c, ok := Detect(stream); !ok || c != tc.codec {
				t.Fatalf("Detect = %v, %v", c, ok)
			}
			for _, sentinel := range [][]byte{{0, 0, 0, 0, '0', '7'}, []byte("\x1f\x8bnext"), nil} {
				if tc.codec == LZ4 && len(sentinel) > 0 && sentinel[0] != 0 {
					// Like the kernel's unlz4, only zero padding may end
					// a legacy stream; anything else reads as a chunk.
					r, _ := NewReader(tc.codec, bufio.NewReader(bytes.NewReader(append(append([]byte{}, stream...), sentinel...))))
					if _, err := io.ReadAll(r); err == nil {
						t.Fatal("lz4 followed by data must fail as it does in the kernel")
					}
					continue
				}
				src := bufio.NewReader(bytes.NewReader(append(append([]byte{}, stream...), sentinel...)))
				r, err := NewReader(tc.codec, src)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decoded %d bytes, want %d", len(got), len(data))
				}
				rest, _ := io.ReadAll(src)
				if !bytes.Equal(rest, sentinel) {
					t.Fatalf("after the stream the source holds %q, want %q", rest, sentinel)
				}
			}
		})
	}
}

func TestEncodersAreKernelSafeAndReadByTheCLI(t *testing.T) {
	decoders := map[Codec][]string{Gzip: {"gzip", "-dc"}, Zstd: {"zstd", "-dc"}, XZ: {"xz", "-dc"}, LZ4: {"lz4", "-dc"}}
	for _, c := range []Codec{Gzip, Zstd, XZ, LZ4} {
		t.Run(string(c), func(t *testing.T) {
			size := 2 << 20
			if c == LZ4 || c == Zstd {
				size = 9 << 20 // more than one 8 MiB lz4 chunk and zstd window
			}
			data := initrdLike(size)
			var first []byte
			for _, threads := range []int{1, 4} {
				var buf bytes.Buffer
				w, err := NewWriter(c, &buf, WriterOptions{Concurrency: threads})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = buf.Bytes()
				} else if !bytes.Equal(first, buf.Bytes()) {
					t.Fatalf("output differs between 1 and %d threads", threads)
				}
			}
			if got := cli(t, first, decoders[c][0], decoders[c][1:]...); !bytes.Equal(got, data) {
				t.Fatalf("%s does not decode our output back", decoders[c][0])
			}
			r, err := NewReader(c, bufio.NewReader(bytes.NewReader(first)))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("own decoder: %v", err)
			}
			switch c {
			case XZ:
				info := string(cli(t, first, "sh", "-c", "cat > /tmp/.xzcheck.$$ && xz --robot --list /tmp/.xzcheck.$$; rm -f /tmp/.xzcheck.$$"))
				if !strings.Contains(info, "CRC32") || strings.Contains(info, "CRC64") {
					t.Fatalf("xz check is not CRC32 only:\n%s", info)
				}
			case Zstd:
				info := string(cli(t, first, "sh", "-c", "cat > /tmp/.zcheck.$$ && zstd -lv /tmp/.zcheck.$$; rm -f /tmp/.zcheck.$$"))
				if !strings.Contains(info, "# Zstandard Frames: 1") {
					t.Fatalf("want exactly one frame:\n%s", info)
				}
				if !strings.Contains(info, "Window Size: 8.00 MiB") && !strings.Contains(info, "Window Size: 8388608") {
					t.Fatalf("window must be 8 MiB at most:\n%s", info)
				}
			case LZ4:
				if binary.LittleEndian.Uint32(first) != lz4Magic {
					t.Fatal("lz4 output is not the legacy format")
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		in   string
		want Codec
		ok   bool
	}{
		{"\x1f\x8b\x08", Gzip, true}, {"\x1f\x9e", Gzip, true}, {"BZh9", Bzip2, true}, {"\x5d\x00\x00\x80", LZMA, true},
		{"\xfd7zXZ\x00", XZ, true}, {"\x89LZO\x00", LZO, true}, {"\x02\x21\x4c\x18", LZ4, true},
		{"\x28\xb5\x2f\xfd", Zstd, true}, {"0707", "", false}, {"", "", false}, {"\xfd7z", "", false}, {"\x5d\x00\x01", "", false},
	}
	for _, tc := range tests {
		c, ok := Detect([]byte(tc.in))
		if c != tc.want || ok != tc.ok {
			t.Errorf("Detect(%q) = %v, %v; want %v, %v", tc.in, c, ok, tc.want, tc.ok)
		}
	}
}

func TestLZOIsRefusedClearly(t *testing.T) {
	_, err := NewReader(LZO, bufio.NewReader(strings.NewReader("\x89LZO\x00\r\n\x1a\n")))
	if err == nil || !strings.Contains(err.Error(), "lzo is not supported") {
		t.Fatalf("err = %v", err)
	}
}

func TestCorruptInputFailsCleanly(t *testing.T) {
	data := initrdLike(256 << 10)
	for _, tc := range cliEncoders {
		t.Run(tc.name, func(t *testing.T) {
			stream := cli(t, data, tc.cmd[0], tc.cmd[1:]...)
			for _, cut := range []int{len(stream) / 3, len(stream) - 3} {
				src := bufio.NewReader(bytes.NewReader(stream[:cut]))
				r, err := NewReader(tc.codec, src)
				if err != nil {
					continue
				}
				if got, err := io.ReadAll(r); err == nil && bytes.Equal(got, data) {
					t.Fatalf("truncated at %d decoded without error", cut)
				}
			}
			bad := append([]byte{}, stream...)
			for i := len(bad) / 2; i < len(bad)/2+64 && i < len(bad); i++ {
				bad[i] ^= 0x55
			}
			r, err := NewReader(tc.codec, bufio.NewReader(bytes.NewReader(bad)))
			if err == nil {
				if got, err := io.ReadAll(r); err == nil && bytes.Equal(got, data) {
					t.Fatal("corrupted stream decoded to the original")
				}
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder their magic selects: no
// panic, no hang, bounded memory, and never more input consumed than given.
func FuzzDecode(f *testing.F) {
	small := initrdLike(4 << 10)
	for _, c := range []Codec{Gzip, Zstd, XZ, LZ4} {
		var buf bytes.Buffer
		w, _ := NewWriter(c, &buf, WriterOptions{Concurrency: 1})
		w.Write(small)
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Add([]byte("BZh91AY&SY"))
	f.Add([]byte("\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00"))
	f.Add([]byte("\x02\x21\x4c\x18\x00\x00\x00\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := Detect(data)
		if !ok {
			return
		}
		src := bufio.NewReader(bytes.NewReader(data))
		r, err := NewReader(c, src)
		if err != nil {
			return
		}
		defer r.Close()
		io.Copy(io.Discard, io.LimitReader(r, 64<<20))
	})
}
