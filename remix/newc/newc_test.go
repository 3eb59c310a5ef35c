package newc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

type testEntry struct {
	h    Header
	body string
	ls   string // mode column of `cpio -tv`, for the GNU cpio tests
}

// longName returns a relative name of exactly n bytes whose components stay
// within NAME_MAX, so that it can also be extracted.
func longName(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strings.Repeat(string(rune('a'+b.Len()%26)), min(200, n-b.Len())))
	}
	return b.String()[:n]
}

// sample covers every file type, device numbers beyond 8 bits, set-id and
// sticky bits, a three-name hard link with the data on the last name (as
// GNU cpio writes it), every body padding, extreme mtimes and a name of the
// maximum length.
func sample() []testEntry {
	const old = 1700000000 // more than 6 months ago: cpio -tv shows the year
	long := longName("long", MaxNameLen-1)
	return []testEntry{
		{Header{Name: ".", Mode: TypeDir | 0o755, Nlink: 4, Ino: 1, Mtime: old}, "", "drwxr-xr-x"},
		{Header{Name: "dev", Mode: TypeDir | 0o755, Nlink: 2, Ino: 2, Mtime: old}, "", "drwxr-xr-x"},
		{Header{Name: "dev/console", Mode: TypeChar | 0o600, Nlink: 1, Ino: 3, RDevMajor: 5, RDevMinor: 1, Mtime: old}, "", "crw-------"},
		{Header{Name: "dev/sda", Mode: TypeBlock | 0o660, GID: 6, Nlink: 1, Ino: 4, RDevMajor: 8, Mtime: old}, "", "brw-rw----"},
		{Header{Name: "dev/nvme0n1p300", Mode: TypeBlock | 0o660, GID: 6, Nlink: 1, Ino: 5, RDevMajor: 259, RDevMinor: 65537, Mtime: old}, "", "brw-rw----"},
		{Header{Name: "initctl", Mode: TypeFIFO | 0o600, Nlink: 1, Ino: 6, Mtime: old}, "", "prw-------"},
		{Header{Name: "sock", Mode: TypeSocket | 0o755, Nlink: 1, Ino: 7, Mtime: old}, "", "srwxr-xr-x"},
		{Header{Name: "bin", Mode: TypeSymlink | 0o777, Nlink: 1, Ino: 8, Size: 7, Mtime: old}, "usr/bin", "lrwxrwxrwx"},
		{Header{Name: "abs", Mode: TypeSymlink | 0o777, Nlink: 1, Ino: 9, Size: 11, Mtime: old}, "/usr/bin/sh", "lrwxrwxrwx"},
		{Header{Name: "usr", Mode: TypeDir | 0o755, Nlink: 3, Ino: 10, Mtime: old}, "", "drwxr-xr-x"},
		{Header{Name: "usr/bin", Mode: TypeDir | 0o755, Nlink: 2, Ino: 11, Mtime: old}, "", "drwxr-xr-x"},
		{Header{Name: "usr/bin/sh", Mode: TypeReg | 0o4755, Nlink: 1, Ino: 12, Size: 12, Mtime: old}, "#!/bin/true\n", "-rwsr-xr-x"},
		{Header{Name: "usr/bin/sg", Mode: TypeReg | 0o2755, GID: 5, Nlink: 1, Ino: 13, Size: 1, Mtime: old}, "x", "-rwxr-sr-x"},
		{Header{Name: "usr/bin/a", Mode: TypeReg | 0o750, UID: 1000, GID: 100, Nlink: 3, Ino: 14, Mtime: old}, "", "-rwxr-x---"},
		{Header{Name: "usr/bin/b", Mode: TypeReg | 0o750, UID: 1000, GID: 100, Nlink: 3, Ino: 14, Mtime: old}, "", "-rwxr-x---"},
		{Header{Name: "usr/bin/c", Mode: TypeReg | 0o750, UID: 1000, GID: 100, Nlink: 3, Ino: 14, Size: 5, Mtime: old}, "hello", "-rwxr-x---"},
		{Header{Name: "tmp", Mode: TypeDir | 0o1777, Nlink: 2, Ino: 15, Mtime: old}, "", "drwxrwxrwt"},
		{Header{Name: "empty", Mode: TypeReg | 0o644, Nlink: 1, Ino: 16, Mtime: old}, "", "-rw-r--r--"},
		{Header{Name: "p2", Mode: TypeReg | 0o644, Nlink: 1, Ino: 17, Size: 2, Mtime: old}, "ab", "-rw-r--r--"},
		{Header{Name: "p3", Mode: TypeReg | 0o644, Nlink: 1, Ino: 18, Size: 3, Mtime: old}, "abc", "-rw-r--r--"},
		{Header{Name: "p4", Mode: TypeReg | 0o644, Nlink: 1, Ino: 19, Size: 4, Mtime: old}, "abcd", "-rw-r--r--"},
		{Header{Name: "future", Mode: TypeReg | 0o400, UID: 0xfffe, GID: 0xfffe, Nlink: 1, Ino: 20, Size: 1, Mtime: 0xffffffff}, "\x00", "-r--------"},
		{Header{Name: long, Mode: TypeReg | 0o600, Nlink: 1, Ino: 21, Size: 3, Mtime: old}, "end", "-rw-------"},
	}
}

// build writes entries with the Writer and checks that Offset tracks the
// bytes written and that each header starts where Offset said.
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

// readAll reads every entry and body; Offset and Magic are cleared so that
// entries compare with what was written. offsets records where each header was.
func readAll(t testing.TB, src io.Reader) (entries []testEntry, offsets []int64) {
	t.Helper()
	r := NewReader(src, 0)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return entries, offsets
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, h.Offset)
		h.Offset, h.Magic, h.Check = 0, "", 0
		entries = append(entries, testEntry{h: *h, body: string(b)})
	}
}

func headerOffsets(entries []testEntry) []int64 {
	var offs []int64
	var off int64
	for _, e := range entries {
		offs = append(offs, off)
		off += headerLen + int64(len(e.h.Name)) + 1
		off += pad4(off) + e.h.Size
		off += pad4(off)
	}
	return offs
}

func sameEntries(t *testing.T, got, want []testEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].h != want[i].h || got[i].body != want[i].body {
			t.Errorf("entry %d:\n got %+v %q\nwant %+v %q", i, got[i].h, got[i].body, want[i].h, want[i].body)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var names, pads []testEntry
	for n := MaxNameLen - 8; n < MaxNameLen; n++ {
		names = append(names, testEntry{h: Header{Name: longName("n", n), Mode: TypeReg | 0o644, Nlink: 1, Size: int64(n % 4)}, body: "xyz"[:n%4]})
	}
	for n := 0; n <= 9; n++ {
		pads = append(pads, testEntry{h: Header{Name: strings.Repeat("p", n+1), Mode: TypeReg | 0o644, Nlink: 1, Size: int64(n)}, body: strings.Repeat("b", n)})
	}
	max := Header{Name: "m", Ino: ^uint32(0), Mode: ^uint32(0)&^TypeMask | TypeChar, UID: ^uint32(0), GID: ^uint32(0), Nlink: ^uint32(0),
		Mtime: ^uint32(0), DevMajor: ^uint32(0), DevMinor: ^uint32(0), RDevMajor: ^uint32(0), RDevMinor: ^uint32(0)}
	tests := []struct {
		name    string
		entries []testEntry
	}{
		{"every type", sample()},
		{"names near the limit", names},
		{"every body padding", pads},
		{"all fields at their maximum", []testEntry{{h: max}}},
		{"largest symlink target", []testEntry{{h: Header{Name: "l", Mode: TypeSymlink | 0o777, Size: MaxNameLen}, body: strings.Repeat("t", MaxNameLen)}}},
		{"duplicates are all kept (the kernel keeps the last)", []testEntry{
			{h: Header{Name: "etc/x", Mode: TypeReg | 0o644, Size: 3}, body: "old"},
			{h: Header{Name: "etc/x", Mode: TypeReg | 0o600, Size: 3}, body: "new"},
			{h: Header{Name: "etc/x", Mode: TypeSymlink | 0o777, Size: 1}, body: "y"},
		}},
		{"type bits the kernel ignores", []testEntry{{h: Header{Name: "odd", Mode: 0o070644}}}},
		{"only the trailer", nil},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte at a time", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
		{"EOF with the data", iotest.DataErrReader},
	}
	for _, tc := range tests {
		data := build(t, tc.entries)
		for _, rd := range readers {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				got, offs := readAll(t, rd.wrap(bytes.NewReader(data)))
				sameEntries(t, got, tc.entries)
				if want := headerOffsets(tc.entries); fmt.Sprint(offs) != fmt.Sprint(want) {
					t.Errorf("header offsets %v, want %v", offs, want)
				}
			})
		}
	}
}

// TestWriterBytes pins the encoding: uppercase hex as GNU cpio and
// gen_init_cpio write it, NUL-terminated names, and padding to 4 bytes
// after the name and after the body.
func TestWriterBytes(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "dev/console", Mode: TypeChar | 0o600, Nlink: 1, Ino: 0xabc, Mtime: 0x6553F100, RDevMajor: 5, RDevMinor: 1,
		Magic: MagicCRC, Check: 7, Offset: 99}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Header{Name: "init", Mode: TypeReg | 0o755, Nlink: 1, Size: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "#!/sh"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000ABC" + "00002180" + "00000000" + "00000000" + "00000001" + "6553F100" + "00000000" +
		"00000000" + "00000000" + "00000005" + "00000001" + "0000000C" + "00000000" + "dev/console\x00" + // 122 bytes
		"\x00\x00" +
		"070701" + "00000000" + "000081ED" + "00000000" + "00000000" + "00000001" + "00000000" + "00000005" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" + "init\x00" + // 115 bytes
		"\x00" + "#!/sh" + "\x00\x00\x00" +
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "0000000B" + "00000000" + "TRAILER!!!\x00" + "\x00\x00\x00"
	if got := buf.String(); got != want {
		t.Fatalf("archive bytes:\n got %q\nwant %q", got, want)
	}
}

// countingWriter records every Write call, to prove the Writer holds
// nothing back that would need a Flush.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) { c.calls++; return c.Buffer.Write(p) }

func TestWriterWritesThrough(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	check := func(step string, calls int) {
		t.Helper()
		if int64(cw.Len()) != w.Offset() || cw.calls != calls {
			t.Fatalf("after %s: %d bytes in %d writes, Offset %d; want %d writes", step, cw.Len(), cw.calls, w.Offset(), calls)
		}
	}
	if err := w.WriteHeader(&Header{Name: "a", Mode: TypeReg, Size: 3}); err != nil {
		t.Fatal(err)
	}
	check("header", 1)
	w.Write([]byte("ab"))
	check("body part", 2)
	w.Write([]byte("c"))
	check("body end", 3)
	if err := w.WriteHeader(&Header{Name: "b", Mode: TypeDir}); err != nil {
		t.Fatal(err)
	}
	check("padding and header", 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check("trailer", 5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check("second Close", 5)
}

// TestReaderStopsExactlyAfterTheTrailer checks the property the image
// scanner depends on: after io.EOF the source is positioned just after the
// trailer's padding, whatever follows.
func TestReaderStopsExactlyAfterTheTrailer(t *testing.T) {
	archive := build(t, sample())
	trailerWithBody := []byte("070701" + strings.Repeat("0", 8*6) + "00000005" + strings.Repeat("0", 8*4) + "0000000B00000000TRAILER!!!\x00\x00\x00\x00" + "junk!\x00\x00\x00")
	tests := []struct {
		name     string
		archive  []byte
		base     int64
		trailing string
	}{
		{"nothing after", archive, 0, ""},
		{"zero padding", archive, 4, "\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"a zstd frame", archive, 1 << 20, "\x28\xb5\x2f\xfd\x00\x00"},
		{"another archive", archive, 512, string(build(t, sample()[:2]))},
		{"a single byte", build(t, nil), 0, "\x1f"},
		{"a trailer with a body", trailerWithBody, 8, "\x00\x00\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := bytes.NewReader(append(append([]byte{}, tc.archive...), tc.trailing...))
			r := NewReader(src, tc.base)
			for {
				_, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if src.Len() != len(tc.trailing) || r.Offset() != tc.base+int64(len(tc.archive)) {
				t.Fatalf("left %d bytes (want %d), Offset %d (want %d)", src.Len(), len(tc.trailing), r.Offset(), tc.base+int64(len(tc.archive)))
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("Next after the trailer: %v, want io.EOF", err)
			}
			if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF || src.Len() != len(tc.trailing) {
				t.Fatalf("Read after the trailer: %d, %v, and %d bytes left", n, err, src.Len())
			}
		})
	}
}

// TestTruncationAtEveryOffset cuts valid archives at every length; each cut
// must be a FormatError at the cut, whether bodies are read or skipped.
func TestTruncationAtEveryOffset(t *testing.T) {
	newc := build(t, sample()[1:12])
	crc := crcArchive(t, []testEntry{
		{h: Header{Name: "f", Mode: TypeReg | 0o644, Size: 5}, body: "hello"},
		{h: Header{Name: "l", Mode: TypeSymlink | 0o777, Size: 1}, body: "f"},
	})
	for _, tc := range []struct {
		name string
		data []byte
	}{{"newc", newc}, {"crc", crc}} {
		for _, readBodies := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/read bodies %v", tc.name, readBodies), func(t *testing.T) {
				for cut := 0; cut < len(tc.data); cut++ {
					r := NewReader(bytes.NewReader(tc.data[:cut]), 1000)
					var err error
					for err == nil {
						_, err = r.Next()
						if err == nil && readBodies {
							_, err = io.Copy(io.Discard, r)
						}
					}
					var fe *FormatError
					if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("cut at %d: err = %v, want a truncation FormatError", cut, err)
					}
					if fe.Offset != 1000+int64(cut) || r.Offset() != fe.Offset {
						t.Fatalf("cut at %d: error at offset %d, reader at %d", cut, fe.Offset, r.Offset())
					}
				}
			})
		}
	}
}

// header returns a newc header with the given fields (namesize is
// computed) followed by the name, its NUL and padding.
func header(magic string, fields [11]uint32, check uint32, name string) []byte {
	b := []byte(magic)
	for _, v := range fields {
		b = appendHex8(b, v)
	}
	b = appendHex8(b, uint32(len(name)+1))
	b = appendHex8(b, check)
	b = append(b, name...)
	b = append(b, 0)
	return append(b, zeros[:pad4(int64(len(b)))]...)
}

// crcArchive writes entries as GNU cpio -H crc would: magic 070702 and the
// byte sum of regular file bodies in the check field.
func crcArchive(t testing.TB, entries []testEntry) []byte {
	var b []byte
	for _, e := range entries {
		h := e.h
		var sum uint32
		if h.Type() == TypeReg {
			for i := 0; i < len(e.body); i++ {
				sum += uint32(e.body[i])
			}
		}
		b = append(b, header(MagicCRC, [11]uint32{h.Ino, h.Mode, h.UID, h.GID, h.Nlink, h.Mtime, uint32(h.Size),
			h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor}, sum, h.Name)...)
		b = append(b, e.body...)
		b = append(b, zeros[:pad4(int64(len(b)))]...)
	}
	b = append(b, header(MagicCRC, [11]uint32{4: 1}, 0, Trailer)...)
	return b
}

// TestMalformedArchives covers every validation with the offset the error
// must point at.
func TestMalformedArchives(t *testing.T) {
	good := build(t, []testEntry{{h: Header{Name: "f", Mode: TypeReg | 0o644, Size: 2}, body: "hi"}})
	patch := func(off int, s string) []byte {
		b := append([]byte{}, good...)
		copy(b[off:], s)
		return b
	}
	withSize := func(mode, size uint32) []byte {
		return append(header(MagicNewc, [11]uint32{1: mode, 4: 1, 6: size}, 0, "x"), make([]byte, size+4)...)
	}
	type tc struct {
		name    string
		data    []byte
		readAll bool // the error comes from reading the body
		off     int64
		want    string
	}
	tests := []tc{
		{"odc magic", patch(0, "070707"), false, 0, `bad cpio magic "070707"`},
		{"garbage magic", patch(0, "\x1f\x8b\x08\x00\x00\x00"), false, 0, `bad cpio magic "\x1f\x8b\b\x00\x00\x00"`},
		{"empty name size", patch(offNameSize, "00000000"), false, offNameSize, "name size 0 is outside 1..4096"},
		{"name size above PATH_MAX", patch(offNameSize, "00001001"), false, offNameSize, "name size 4097"},
		{"huge name size", patch(offNameSize, "FFFFFFFF"), false, offNameSize, "name size 4294967295"},
		{"name without NUL", patch(headerLen+1, "X"), false, headerLen + 1, "not NUL-terminated"},
		{"NUL inside the name", header(MagicNewc, [11]uint32{1: TypeReg, 4: 1}, 0, "a\x00b"), false, headerLen + 1, "contains a NUL byte"},
		{"symlink target above PATH_MAX", withSize(TypeSymlink|0o777, MaxNameLen+1), false, offSize, "longer than PATH_MAX"},
		{"crc checksum mismatch", func() []byte {
			b := crcArchive(t, []testEntry{{h: Header{Name: "f", Mode: TypeReg, Size: 3}, body: "abc"}})
			copy(b[offCheck:], "00000127")
			return b
		}(), true, headerLen + 2 + 3, "checksum of the body is 0x126, header says 0x127"},
		{"crc checksum on an empty file", header(MagicCRC, [11]uint32{1: TypeReg | 0o644, 4: 1}, 1, "e"), false, offCheck, "non-zero 070702 checksum"},
	}
	for i, name := range strings.Fields(fieldNames) {
		for _, bad := range []string{"0000000G", "-0000001", " 0000001", "0x000001"} {
			tests = append(tests, tc{"non-hex " + name + " " + bad, patch(6+8*i, bad), false, int64(6 + 8*i), "header field " + name + " is not 8 hex digits"})
		}
	}
	for _, typ := range []uint32{TypeDir, TypeChar, TypeBlock, TypeFIFO, TypeSocket, 0, 0o070000} {
		tests = append(tests, tc{fmt.Sprintf("body on type %#o", typ), withSize(typ|0o644, 4), false, offSize, "only regular files and symlinks have a body"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.data), 0)
			_, err := r.Next()
			if tc.readAll {
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				_, err = io.ReadAll(r)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || fe.Offset != tc.off {
				t.Fatalf("err = %v, want a FormatError at offset %d containing %q", err, tc.off, tc.want)
			}
			if errors.Is(err, ErrTruncated) {
				t.Fatalf("%v must not be a truncation", err)
			}
			// Errors are sticky: nothing after a bad entry can be trusted.
			if _, again := r.Next(); again != err {
				t.Fatalf("Next after the error: %v", again)
			}
			if _, again := r.Read(make([]byte, 1)); again != err {
				t.Fatalf("Read after the error: %v", again)
			}
		})
	}
}

func TestLowercaseHexIsAccepted(t *testing.T) {
	data := header(MagicNewc, [11]uint32{1: TypeDir | 0o755, 4: 1}, 0, "d")
	copy(data[6:], "0000abcd")
	data = append(data, header(MagicNewc, [11]uint32{4: 1}, 0, Trailer)...)
	got, _ := readAll(t, bytes.NewReader(data))
	if len(got) != 1 || got[0].h.Ino != 0xabcd {
		t.Fatalf("read %+v", got)
	}
}

// TestEmptyName pins an asymmetry: namesize 1 (just the NUL) passes the
// kernel's check, so the Reader returns the entry, but the kernel cannot
// create a file named "" and the Writer refuses to produce one.
func TestEmptyName(t *testing.T) {
	data := header(MagicNewc, [11]uint32{1: TypeDir | 0o755, 4: 1}, 0, "")
	data = append(data, header(MagicNewc, [11]uint32{4: 1}, 0, Trailer)...)
	got, _ := readAll(t, bytes.NewReader(data))
	if len(got) != 1 || got[0].h.Name != "" {
		t.Fatalf("read %+v", got)
	}
	if err := NewWriter(io.Discard).WriteHeader(&got[0].h); err == nil {
		t.Fatal("the Writer wrote an empty name")
	}
}

// TestCRC checks that the 070702 checksum is verified on regular files
// only, whether the body is read or skipped by Next.
func TestCRC(t *testing.T) {
	entries := []testEntry{
		{h: Header{Name: "f", Mode: TypeReg | 0o644, Nlink: 1, Size: 4}, body: "\xff\xff\xff\xff"},
		{h: Header{Name: "l", Mode: TypeSymlink | 0o777, Nlink: 1, Size: 1}, body: "f"},
		{h: Header{Name: "e", Mode: TypeReg | 0o644, Nlink: 1}},
	}
	good := crcArchive(t, entries)
	got, _ := readAll(t, iotest.OneByteReader(bytes.NewReader(good)))
	sameEntries(t, got, entries)

	r := NewReader(bytes.NewReader(good), 0)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("skipping bodies: %v", err)
		}
		if h.Magic != MagicCRC {
			t.Fatalf("magic %q", h.Magic)
		}
	}

	// A trailer's body is skipped, and not summed into the file before it.
	last := []testEntry{{h: Header{Name: "g", Mode: TypeReg | 0o644, Nlink: 1, Size: 1}, body: "g"}}
	arch := crcArchive(t, last)
	arch = append(arch[:len(arch)-124], header(MagicCRC, [11]uint32{4: 1, 6: 2}, 0, Trailer)...)
	arch = append(arch, "zz\x00\x00"...)
	got, _ = readAll(t, bytes.NewReader(arch))
	sameEntries(t, got, last)

	bad := append([]byte{}, good...)
	bad[headerLen+2] = 0xfe // first body byte, after "f\x00"
	r = NewReader(bytes.NewReader(bad), 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Next over a corrupt body: %v, want a checksum error", err)
	}
}

type failingWriter struct {
	n   int // bytes accepted before failing
	err error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	n := f.n
	f.n = 0
	return n, f.err
}

// TestIOErrors checks that errors of the underlying reader and writer are
// wrapped, not mistaken for truncation, and stick.
func TestIOErrors(t *testing.T) {
	boom := errors.New("boom")
	data := build(t, sample()[:12])

	r := NewReader(io.MultiReader(bytes.NewReader(data[:200]), iotest.ErrReader(boom)), 0)
	var err error
	for err == nil {
		_, err = r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrTruncated) {
		t.Fatalf("reader: %v, want the underlying error", err)
	}
	if _, again := r.Next(); again != err {
		t.Fatalf("reader error is not sticky: %v", again)
	}

	w := NewWriter(&failingWriter{n: 150, err: boom})
	if err := w.WriteHeader(&Header{Name: "a", Mode: TypeReg, Size: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 100)); !errors.Is(err, boom) {
		t.Fatalf("writer: %v, want the underlying error", err)
	}
	if w.Offset() != 150 {
		t.Fatalf("Offset %d after a partial write, want 150", w.Offset())
	}
	for _, again := range []error{w.WriteHeader(&Header{Name: "b"}), w.Close()} {
		if !errors.Is(again, boom) {
			t.Fatalf("writer error is not sticky: %v", again)
		}
	}
}

func TestWriterRefusesBadHeaders(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"empty name", Header{}, "must be 1..4095 bytes"},
		{"name at PATH_MAX", Header{Name: strings.Repeat("x", MaxNameLen)}, "must be 1..4095 bytes"},
		{"NUL in the name", Header{Name: "a\x00b"}, "contains a NUL byte"},
		{"the trailer's name", Header{Name: Trailer, Mode: TypeReg}, "reserved for the end-of-archive marker"},
		{"negative size", Header{Name: "f", Mode: TypeReg, Size: -1}, "does not fit"},
		{"size above 32 bits", Header{Name: "f", Mode: TypeReg, Size: 1 << 32}, "does not fit"},
		{"directory with a body", Header{Name: "d", Mode: TypeDir | 0o755, Size: 1}, "only regular files and symlinks"},
		{"device with a body", Header{Name: "c", Mode: TypeChar | 0o600, Size: 1}, "only regular files and symlinks"},
		{"symlink target above PATH_MAX", Header{Name: "l", Mode: TypeSymlink | 0o777, Size: MaxNameLen + 1}, "longer than PATH_MAX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := w.WriteHeader(&tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatal("a refused header wrote bytes")
			}
			// A refused header leaves the writer usable.
			if err := w.Close(); err != nil || buf.Len() != 124 {
				t.Fatalf("Close: %v, %d bytes", err, buf.Len())
			}
		})
	}
}

func TestWriterBodyRules(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "f", Mode: TypeReg, Size: 2}); err != nil {
		t.Fatal(err)
	}
	off := w.Offset()
	if n, err := w.Write([]byte("abc")); err == nil || n != 0 || w.Offset() != off {
		t.Fatalf("write beyond the size: %d, %v, offset %d", n, err, w.Offset())
	}
	if _, err := w.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Header{Name: "g", Mode: TypeReg}); err == nil || !strings.Contains(err.Error(), "1 bytes short") {
		t.Fatalf("header after a short body: %v", err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "1 bytes short") {
		t.Fatalf("Close after a short body: %v", err)
	}
	if _, err := w.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Header{Name: "h", Mode: TypeReg}); err == nil {
		t.Fatal("WriteHeader after Close accepted")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close accepted")
	}
	got, _ := readAll(t, &buf)
	if len(got) != 1 || got[0].body != "ab" {
		t.Fatalf("read back %+v", got)
	}
}

// TestDeclaredSizesDoNotAllocate feeds headers claiming huge bodies over a
// short input: memory must not follow the claims.
func TestDeclaredSizesDoNotAllocate(t *testing.T) {
	data := header(MagicCRC, [11]uint32{1: TypeReg | 0o644, 4: 1, 6: 0xffffffff}, 1, longName("n", MaxNameLen-1))
	data = append(data, make([]byte, 1<<16)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		r := NewReader(bytes.NewReader(data), 0)
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); !errors.Is(err, ErrTruncated) {
			t.Fatalf("err = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading 10 huge claims allocated %d bytes", grew)
	}
}

// TestAllocationsPerEntry keeps reading cheap: a Header and its name per
// entry, nothing per body byte.
func TestAllocationsPerEntry(t *testing.T) {
	entries := syntheticEntries(200)
	data := build(t, entries)
	src := bytes.NewReader(data)
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(5, func() {
		src.Reset(data)
		r := NewReader(src, 0)
		for {
			_, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := r.Read(buf); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if max := float64(2*len(entries) + 1); allocs > max {
		t.Fatalf("%v allocations for %d entries, want at most %v", allocs, len(entries), max)
	}
	var cw countingWriter
	cw.Grow(len(data))
	allocs = testing.AllocsPerRun(5, func() {
		cw.Reset()
		w := NewWriter(&cw)
		for i := range entries {
			w.WriteHeader(&entries[i].h)
			io.WriteString(w, entries[i].body)
		}
		w.Close()
	})
	if allocs > 2+float64(len(entries)) { // io.WriteString converts the body
		t.Fatalf("%v allocations writing %d entries", allocs, len(entries))
	}
}

// syntheticEntries resembles an initrd: directories, symlinks and files of
// mixed sizes with library-like names.
func syntheticEntries(n int) []testEntry {
	var entries []testEntry
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("usr/lib/x86_64-linux-gnu/lib%04d.so.%d", i, i%7)
		switch i % 8 {
		case 0:
			entries = append(entries, testEntry{h: Header{Name: fmt.Sprintf("usr/lib/dir%d", i), Mode: TypeDir | 0o755, Nlink: 2, Ino: uint32(i)}})
		case 1:
			entries = append(entries, testEntry{h: Header{Name: name, Mode: TypeSymlink | 0o777, Nlink: 1, Ino: uint32(i), Size: 12}, body: "libc.so.6.12"})
		default:
			size := (i * 7919) % (96 << 10)
			entries = append(entries, testEntry{h: Header{Name: name, Mode: TypeReg | 0o644, Nlink: 1, Ino: uint32(i), Size: int64(size)}, body: strings.Repeat("\x7fELF", size/4+1)[:size]})
		}
	}
	return entries
}

func BenchmarkRead(b *testing.B) {
	data := build(b, syntheticEntries(1000))
	src := bytes.NewReader(data)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		r := NewReader(src, 0)
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := r.Read(buf); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	entries := syntheticEntries(1000)
	bodies := make([][]byte, len(entries))
	for i, e := range entries {
		bodies[i] = []byte(e.body)
	}
	var buf bytes.Buffer
	buf.Grow(len(build(b, entries)))
	b.SetBytes(int64(buf.Cap()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		w := NewWriter(&buf)
		for i := range entries {
			if err := w.WriteHeader(&entries[i].h); err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(bodies[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSkippedBodiesWithDiscard: a caller that reads no body skips it with
// the source's Discard when there is no checksum to verify; headers,
// offsets and truncation errors are the same as through the scratch buffer.
func TestSkippedBodiesWithDiscard(t *testing.T) {
	data := build(t, sample())
	headers := func(r io.Reader) ([]string, error) {
		nr := NewReader(r, 0)
		var out []string
		for {
			h, err := nr.Next()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, fmt.Sprintf("%s@%d", h.Name, h.Offset))
		}
	}
	plain, err := headers(iotest.HalfReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	discarding, err := headers(bufio.NewReaderSize(bytes.NewReader(data), 16))
	if err != nil || fmt.Sprint(plain) != fmt.Sprint(discarding) {
		t.Fatalf("with Discard: %v %v, without: %v", discarding, err, plain)
	}
	for cut := 1; cut < len(data); cut++ {
		_, e1 := headers(iotest.HalfReader(bytes.NewReader(data[:cut])))
		_, e2 := headers(bufio.NewReaderSize(bytes.NewReader(data[:cut]), 16))
		var f1, f2 *FormatError
		if !errors.As(e1, &f1) || !errors.As(e2, &f2) || f1.Offset != f2.Offset || !errors.Is(e2, ErrTruncated) {
			t.Fatalf("cut at %d: %v, through Discard %v", cut, e1, e2)
		}
	}
}
