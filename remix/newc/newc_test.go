package newc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/testtool"
)

type testEntry struct {
	h    Header
	body string
}

// sample covers every type, device numbers, a hard-link pair with the data
// on the last name (as GNU cpio writes it), and a long name.
func sample() []testEntry {
	long := strings.Repeat("n", 200) + "/" + strings.Repeat("x", 250)
	return []testEntry{
		{Header{Name: ".", Mode: TypeDir | 0o755, Nlink: 2, Ino: 1, Mtime: 1700000000}, ""},
		{Header{Name: "dev", Mode: TypeDir | 0o755, Nlink: 2, Ino: 2}, ""},
		{Header{Name: "dev/console", Mode: TypeChar | 0o600, Nlink: 1, Ino: 3, RDevMajor: 5, RDevMinor: 1}, ""},
		{Header{Name: "dev/sda", Mode: TypeBlock | 0o660, GID: 6, Nlink: 1, Ino: 4, RDevMajor: 8}, ""},
		{Header{Name: "fifo", Mode: TypeFIFO | 0o644, Nlink: 1, Ino: 5}, ""},
		{Header{Name: "sock", Mode: TypeSocket | 0o755, Nlink: 1, Ino: 6}, ""},
		{Header{Name: "bin", Mode: TypeSymlink | 0o777, Nlink: 1, Ino: 7, Size: 7}, "usr/bin"},
		{Header{Name: "a", Mode: TypeReg | 0o4755, UID: 1000, GID: 100, Nlink: 2, Ino: 8}, ""},
		{Header{Name: "b", Mode: TypeReg | 0o4755, UID: 1000, GID: 100, Nlink: 2, Ino: 8, Size: 5}, "hello"},
		{Header{Name: "odd", Mode: TypeReg | 0o644, Nlink: 1, Ino: 9, Size: 3, Mtime: 0xffffffff}, "abc"},
		{Header{Name: long, Mode: TypeReg | 0o600, Nlink: 1, Ino: 10}, ""},
	}
}

func build(t testing.TB, entries []testEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != w.Offset() || buf.Len()%4 != 0 {
		t.Fatalf("archive of %d bytes, offset %d", buf.Len(), w.Offset())
	}
	return buf.Bytes()
}

func readAll(t testing.TB, data []byte) []testEntry {
	t.Helper()
	r := NewReader(bytes.NewReader(data), 0)
	var out []testEntry
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		h.Offset, h.Magic = 0, ""
		out = append(out, testEntry{*h, string(b)})
	}
}

func TestRoundTrip(t *testing.T) {
	want := sample()
	got := readAll(t, build(t, want))
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestReaderStopsExactlyAfterTheTrailer(t *testing.T) {
	data := build(t, sample())
	src := bytes.NewReader(append(append([]byte{}, data...), "\x00\x00\x00\x00\x28\xb5\x2f\xfd"...))
	r := NewReader(src, 100)
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if src.Len() != 8 || r.Offset() != 100+int64(len(data)) {
		t.Fatalf("left %d bytes, offset %d", src.Len(), r.Offset())
	}
}

func TestTruncationAtEveryOffsetIsAnError(t *testing.T) {
	data := build(t, sample())
	for cut := 0; cut < len(data); cut++ {
		r := NewReader(bytes.NewReader(data[:cut]), 0)
		var err error
		for err == nil {
			_, err = r.Next()
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
		}
		var fe *FormatError
		if !errors.Is(err, ErrTruncated) || !errors.As(err, &fe) {
			t.Fatalf("cut at %d: err = %v, want a truncation FormatError", cut, err)
		}
	}
}

func TestMalformedHeaders(t *testing.T) {
	good := build(t, []testEntry{{Header{Name: "f", Mode: TypeReg | 0o644, Size: 2}, "hi"}})
	patch := func(off int, s string) []byte {
		b := append([]byte{}, good...)
		copy(b[off:], s)
		return b
	}
	dirWithSize := build(t, nil)
	{
		var buf bytes.Buffer
		buf.WriteString("070701")
		for _, v := range []string{"00000001", "000041ED", "0", "0", "00000002", "0", "00000004", "0", "0", "0", "0", "00000002", "0"} {
			buf.WriteString(strings.Repeat("0", 8-len(v)) + v)
		}
		buf.WriteString("d\x00")
		dirWithSize = buf.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bad magic", patch(0, "070707"), "bad cpio magic"},
		{"odc magic", patch(0, "07070X"), "bad cpio magic"},
		{"non-hex field", patch(6+8, "0000G000"), "not hex"},
		{"name size zero", patch(6+11*8, "00000000"), "name size 0"},
		{"name size too long", patch(6+11*8, "00001001"), "out of range"},
		{"name without NUL", patch(110+1, "X"), "not NUL-terminated"},
		{"directory with a body", dirWithSize, "non-zero size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.data), 0).Next()
			var fe *FormatError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want FormatError containing %q", err, tc.want)
			}
		})
	}
}

func TestCRCChecksumIsVerified(t *testing.T) {
	data := build(t, []testEntry{{Header{Name: "f", Mode: TypeReg | 0o644, Size: 3}, "abc"}})
	copy(data, MagicCRC)
	copy(data[6+12*8:], "00000126") // 'a'+'b'+'c'
	if got := readAll(t, data); got[0].body != "abc" {
		t.Fatal("crc archive not read")
	}
	copy(data[6+12*8:], "00000127")
	r := NewReader(bytes.NewReader(data), 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("err = %v, want a checksum mismatch", err)
	}
}

func TestWriterRefusesBadEntries(t *testing.T) {
	w := NewWriter(io.Discard)
	for _, h := range []Header{
		{Name: ""}, {Name: "a\x00b"}, {Name: strings.Repeat("x", MaxNameLen)},
		{Name: "d", Mode: TypeDir | 0o755, Size: 1}, {Name: "big", Mode: TypeReg, Size: 1 << 33},
	} {
		if err := w.WriteHeader(&h); err == nil {
			t.Errorf("WriteHeader(%q, size %d) accepted", h.Name, h.Size)
		}
	}
	if err := w.WriteHeader(&Header{Name: "f", Mode: TypeReg, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err == nil {
		t.Error("write beyond size accepted")
	}
	if err := w.WriteHeader(&Header{Name: "g", Mode: TypeReg}); err == nil {
		t.Error("short body accepted")
	}
}

// TestGNUCpioReadsOurArchives lists and extracts what the Writer produced
// with GNU cpio, checking types, device numbers, links and modes.
func TestGNUCpioReadsOurArchives(t *testing.T) {
	testtool.Require(t, "cpio")
	data := build(t, sample())
	cmd := exec.Command("cpio", "-itv", "--numeric-uid-gid", "--quiet")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	listing := string(out)
	for _, want := range []string{"crw-------", "5,   1", "dev/console", "brw-rw----", "bin -> usr/bin", "-rwsr-xr-x", "prw-r--r--", "srwxr-xr-x"} {
		if !strings.Contains(listing, want) {
			t.Errorf("cpio -t output lacks %q:\n%s", want, listing)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	dir := t.TempDir()
	cmd = exec.Command("cpio", "-idm", "--no-absolute-filenames", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dir, "dev/console"), &st); err != nil || st.Rdev != 5<<8|1 {
		t.Fatalf("console rdev %#x, %v", st.Rdev, err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin")); l != "usr/bin" {
		t.Fatalf("bin -> %q", l)
	}
	a, _ := os.Stat(filepath.Join(dir, "a"))
	b, _ := os.Stat(filepath.Join(dir, "b"))
	if !os.SameFile(a, b) || a.Mode()&os.ModeSetuid == 0 {
		t.Fatal("a and b must be one setuid file")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a")); string(data) != "hello" {
		t.Fatalf("a holds %q", data)
	}
}

// TestGNUCpioArchivesAreReadAndReemittedByteForByte reads archives GNU cpio
// made (newc and crc) and writes them back: for newc the bytes up to the
// trailer must be identical.
func TestGNUCpioArchivesAreReadAndReemittedByteForByte(t *testing.T) {
	testtool.Require(t, "cpio")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "t/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "t/sub/f"), []byte("content\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "t/empty"), nil, 0o600)
	os.Symlink("sub/f", filepath.Join(dir, "t/l"))
	os.Link(filepath.Join(dir, "t/sub/f"), filepath.Join(dir, "t/hard"))
	for _, format := range []string{"newc", "crc"} {
		t.Run(format, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", "find t | LC_ALL=C sort | cpio -o --quiet -H "+format)
			cmd.Dir = dir
			data, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			entries := readAll(t, data)
			names := map[string]testEntry{}
			for _, e := range entries {
				names[e.h.Name] = e
			}
			if names["t/l"].body != "sub/f" || names["t/l"].h.Mode&TypeMask != TypeSymlink {
				t.Fatalf("symlink: %+v", names["t/l"])
			}
			if names["t/hard"].h.Ino != names["t/sub/f"].h.Ino || names["t/hard"].h.Nlink != 2 {
				t.Fatal("hard links must share an inode number")
			}
			if names["t/sub/f"].body+names["t/hard"].body != "content\n" {
				t.Fatal("the data of a hard-link pair is on exactly one of them")
			}
			if format != "newc" {
				return
			}
			again := build(t, entries)
			if !bytes.Equal(again, data[:len(again)]) {
				t.Fatal("re-emitted archive differs from GNU cpio's")
			}
			if strings.Trim(string(data[len(again):]), "\x00") != "" {
				t.Fatal("GNU cpio's archive has more than block padding after ours ends")
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add(build(f, sample()))
	f.Add(build(f, nil))
	f.Add([]byte("070701"))
	f.Add([]byte("0707020000000100000000"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 0)
		for i := 0; i < 10000; i++ {
			h, err := r.Next()
			if err != nil {
				return
			}
			if len(h.Name) >= MaxNameLen || h.Size < 0 {
				t.Fatalf("bad header accepted: %+v", h)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}

func BenchmarkReadWrite(b *testing.B) {
	var entries []testEntry
	body := strings.Repeat("x", 64<<10)
	for i := 0; i < 512; i++ {
		entries = append(entries, testEntry{Header{Name: "usr/lib/f" + strings.Repeat("y", i%40), Mode: TypeReg | 0o644, Size: int64(len(body))}, body})
	}
	data := build(b, entries)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		readAll(b, build(b, entries))
	}
}
