package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// initrdLike returns n deterministic bytes shaped like an initrd's
// contents: shell scripts and configuration text, and ELF-like binary code
// (a limited set of instruction patterns with varying operands, string and
// pointer tables, zero padding), so that every codec finds matches and
// entropy to work on at roughly the ratios real images give.
func initrdLike(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	zipf := rand.NewZipf(rng, 1.2, 4, 1999)
	words := make([]string, 2000)
	for i := range words {
		w := make([]byte, 2+rng.Intn(9))
		for j := range w {
			w[j] = "abcdefghijklmnopqrstuvwxyz_-/."[rng.Intn(30)]
		}
		words[i] = string(w)
	}
	ops := make([][]byte, 2000)
	for i := range ops {
		ops[i] = make([]byte, 2+rng.Intn(6))
		rng.Read(ops[i])
	}
	var b bytes.Buffer
	b.Grow(n + 64<<10)
	for b.Len() < n {
		switch rng.Intn(3) {
		case 0: // text: lines of words
			for lines := 20 + rng.Intn(400); lines > 0; lines-- {
				b.WriteString(strings.Repeat("\t", rng.Intn(3)))
				for w := 1 + rng.Intn(10); w > 0; w-- {
					b.WriteString(words[zipf.Uint64()])
					b.WriteByte(" \n"[btoi(w == 1)])
				}
			}
		case 1: // code: instruction patterns with small operands
			for ins := 500 + rng.Intn(8000); ins > 0; ins-- {
				b.Write(ops[zipf.Uint64()])
				if rng.Intn(3) == 0 {
					var imm [4]byte
					binary.LittleEndian.PutUint32(imm[:], uint32(rng.Intn(1<<12)))
					b.Write(imm[:1+rng.Intn(3)])
				}
			}
		default: // tables: ascending pointers, strings, alignment padding
			base := uint64(0x400000 + rng.Intn(1<<20))
			for i := 100 + rng.Intn(1000); i > 0; i-- {
				base += uint64(8 + 8*rng.Intn(8))
				binary.Write(&b, binary.LittleEndian, base)
			}
			for i := 50 + rng.Intn(300); i > 0; i-- {
				b.WriteString(words[zipf.Uint64()])
				b.WriteByte(0)
			}
			b.Write(make([]byte, rng.Intn(4096)))
		}
	}
	return b.Bytes()[:n]
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cli runs a program with stdin, returning its stdout.
func cli(t testing.TB, in []byte, name string, args ...string) []byte {
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

// cliFile runs a program on a file holding in (for tools that report on
// files, or that record a file name), returning its stdout.
func cliFile(t testing.TB, in []byte, name string, args ...string) []byte {
	t.Helper()
	testtool.Require(t, name)
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, in, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(name, append(args, p)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.Bytes()
}

// decode reads one stream of codec c from the start of src and returns
// what it decoded and what src holds after it.
func decode(c Codec, in []byte, bufSize int) (out, rest []byte, err error) {
	src := bufio.NewReaderSize(bytes.NewReader(in), bufSize)
	r, err := NewReader(c, src)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out, err = io.ReadAll(r)
	rest, _ = io.ReadAll(src)
	return out, rest, err
}

func TestDetect(t *testing.T) {
	tests := []struct {
		in   string
		want Codec
	}{
		{"\x1f\x8b\x08\x00", Gzip},
		{"\x1f\x8b", Gzip},
		{"\x1f\x9e", Gzip},
		{"BZh91AY&SY", Bzip2},
		{"\x5d\x00\x00\x80\x00", LZMA},
		{"\xfd7zXZ\x00\x00\x01", XZ},
		{"\x89LZO\x00\r\n\x1a\n", LZO},
		{"\x02\x21\x4c\x18\x00", LZ4},
		{"\x28\xb5\x2f\xfd\x04", Zstd},
		// unknown magics
		{"070701", ""},
		{"\x00\x00\x00\x00", ""},
		{"\x1f\x8c", ""},
		{"BZ0", ""},
		{"\x5d\x00\x01", ""},
		{"\xfd7zXZ\x01", ""},
		{"\x04\x22\x4d\x18", ""}, // lz4 frame format: the kernel reads only legacy
		{"\x28\xb5\x2f\xfe", ""},
		{"\x50\x2a\x4d\x18", ""}, // zstd skippable frame
		// short input
		{"", ""},
		{"\x1f", ""},
		{"BZ", ""},
		{"\x5d\x00", ""},
		{"\xfd7zXZ", ""},
		{"\x89LZ", ""},
		{"\x02\x21\x4c", ""},
		{"\x28\xb5\x2f", ""},
	}
	for _, tc := range tests {
		c, ok := Detect([]byte(tc.in))
		if c != tc.want || ok != (tc.want != "") {
			t.Errorf("Detect(%q) = %q, %v; want %q", tc.in, c, ok, tc.want)
		}
		if len(tc.in) > MagicLen && tc.want != "" {
			if c2, _ := Detect([]byte(tc.in[:MagicLen])); c2 != tc.want {
				t.Errorf("Detect needs more than MagicLen bytes for %q", tc.in)
			}
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Codec{
		"none": None, "cat": None, "uncompressed": None, "gzip": Gzip, "gz": Gzip, " GZIP ": Gzip,
		"zstd": Zstd, "zst": Zstd, "xz": XZ, "lz4": LZ4, "bzip2": Bzip2, "bz2": Bzip2, "lzma": LZMA, "lzo": LZO,
	} {
		if c, err := Parse(in); err != nil || c != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, c, err, want)
		}
	}
	for _, in := range []string{"", "zip", "lz4hc", "brotli"} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), "none, gzip, zstd, xz, lz4") {
			t.Errorf("Parse(%q) error = %v, want one listing the valid names", in, err)
		}
	}
	for _, c := range Writable() {
		if p, err := Parse(string(c)); err != nil || p != c {
			t.Errorf("Parse(%q) = %q, %v", c, p, err)
		}
	}
}

func TestWritable(t *testing.T) {
	w := Writable()
	if want := []Codec{None, Gzip, Zstd, XZ, LZ4}; !slicesEqual(w, want) {
		t.Fatalf("Writable() = %v, want %v", w, want)
	}
	w[0] = "changed"
	if Writable()[0] != None {
		t.Fatal("Writable returns shared state")
	}
	for _, c := range []Codec{Bzip2, LZMA, LZO} {
		if _, err := NewWriter(c, io.Discard, WriterOptions{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewWriter(%s) error = %v, want ErrUnsupported", c, err)
		}
	}
	if _, err := NewWriter("brotli", io.Discard, WriterOptions{}); err == nil {
		t.Error("NewWriter accepts an unknown codec")
	}
	if _, err := NewReader("brotli", bufio.NewReader(strings.NewReader("x"))); err == nil {
		t.Error("NewReader accepts an unknown codec")
	}
	for _, tc := range []struct {
		c     Codec
		level int
	}{{Gzip, 10}, {Gzip, -1}, {Zstd, 23}, {Zstd, -5}, {LZ4, 13}, {LZ4, -1}} {
		if _, err := NewWriter(tc.c, io.Discard, WriterOptions{Level: tc.level}); err == nil {
			t.Errorf("NewWriter(%s, level %d) accepted", tc.c, tc.level)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNoneReadsEverything(t *testing.T) {
	out, rest, err := decode(None, []byte("070701 and the rest"), 16)
	if err != nil || string(out) != "070701 and the rest" || len(rest) != 0 {
		t.Fatalf("got %q, %q, %v", out, rest, err)
	}
}
