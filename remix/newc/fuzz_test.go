package newc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// FuzzReader reads every entry and body of arbitrary input. Besides not
// panicking, the reader must report only FormatErrors on in-memory input,
// keep its offsets consistent with the bytes consumed, and everything it
// accepts must be writable and read back identically.
func FuzzReader(f *testing.F) {
	f.Add(build(f, sample()[:12]))
	f.Add(build(f, nil))
	f.Add(crcArchive(f, []testEntry{{h: Header{Name: "f", Mode: TypeReg | 0o644, Size: 3}, body: "abc"}}))
	f.Add([]byte("070701"))
	f.Add(append(header(MagicNewc, [11]uint32{1: TypeReg | 0o644, 4: 1}, 0, ""), header(MagicNewc, [11]uint32{4: 1}, 0, Trailer)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		r := NewReader(src, 0)
		var entries []testEntry
		var err error
		for {
			var h *Header
			if h, err = r.Next(); err != nil {
				break
			}
			if h.Offset > r.Offset() || len(h.Name) >= MaxNameLen || h.Size < 0 || h.Size > maxSize || h.IsTrailer() {
				t.Fatalf("inconsistent header at %d (reader at %d): %+v", h.Offset, r.Offset(), h)
			}
			var body []byte
			if body, err = io.ReadAll(r); err != nil {
				break
			}
			h.Offset, h.Magic, h.Check = 0, "", 0
			// An empty name is valid input (the kernel fails to create it and
			// moves on) but not valid output: it is the one thing read and
			// not rewritten.
			if h.Name != "" {
				entries = append(entries, testEntry{h: *h, body: string(body)})
			}
		}
		if consumed := int64(len(data) - src.Len()); r.Offset() != consumed {
			t.Fatalf("Offset %d, but %d bytes consumed", r.Offset(), consumed)
		}
		if err != io.EOF {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != r.Offset() && errors.Is(err, ErrTruncated) || fe.Offset > r.Offset() {
				t.Fatalf("error %v at reader offset %d", err, r.Offset())
			}
			return
		}
		again, _ := readAll(t, bytes.NewReader(build(t, entries)))
		if len(again) != len(entries) {
			t.Fatalf("rewritten archive holds %d entries, want %d", len(again), len(entries))
		}
		for i := range entries {
			if again[i] != entries[i] {
				t.Fatalf("entry %d changed in a rewrite:\n got %+v\nwant %+v", i, again[i], entries[i])
			}
		}
	})
}

// FuzzRoundTrip writes one arbitrary entry between two fixed ones: whatever
// WriteHeader accepts must read back identically and keep the archive
// aligned for the entry after it.
func FuzzRoundTrip(f *testing.F) {
	f.Add("dev/console", TypeChar|0o600, uint32(5), uint32(1), uint32(1700000000), []byte(nil))
	f.Add("bin", TypeSymlink|0o777, uint32(0), uint32(0), uint32(0), []byte("usr/bin"))
	f.Add("init", TypeReg|0o755, uint32(0), uint32(0), uint32(1), []byte("#!/bin/sh\n"))
	f.Add(Trailer, TypeReg, uint32(0), uint32(0), uint32(0), []byte("x"))
	f.Fuzz(func(t *testing.T, name string, mode, rmaj, rmin, mtime uint32, body []byte) {
		entries := []testEntry{
			{h: Header{Name: ".", Mode: TypeDir | 0o755, Nlink: 2}},
			{h: Header{Name: name, Mode: mode, Nlink: 1, Ino: mode ^ mtime, UID: rmin, GID: rmaj, Mtime: mtime,
				RDevMajor: rmaj, RDevMinor: rmin, DevMajor: rmin, DevMinor: rmaj, Size: int64(len(body))}, body: string(body)},
			{h: Header{Name: "after", Mode: TypeReg | 0o644, Nlink: 1, Size: 1}, body: "z"},
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		var written []testEntry
		for i, e := range entries {
			if err := w.WriteHeader(&e.h); err != nil {
				if i != 1 {
					t.Fatal(err)
				}
				continue // refused: the archive must go on as if it had not been offered
			}
			if _, err := io.WriteString(w, e.body); err != nil {
				t.Fatal(err)
			}
			written = append(written, e)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, _ := readAll(t, &buf)
		if len(got) != len(written) {
			t.Fatalf("%d entries, want %d", len(got), len(written))
		}
		for i := range written {
			if got[i] != written[i] {
				t.Fatalf("entry %d:\n got %+v\nwant %+v", i, got[i], written[i])
			}
		}
	})
}

// The seed corpus in testdata/fuzz/FuzzReader holds archives made by GNU
// cpio, which the fuzzer cannot run, and damaged variants of them. Set
// NEWC_UPDATE_CORPUS=1 to regenerate the files; otherwise the test checks
// that the intact ones still read without error, so the seeds keep
// reaching past the header checks.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if os.Getenv("NEWC_UPDATE_CORPUS") == "1" {
		testtool.Require(t, "cpio")
		writeSeedCorpus(t, dir)
	}
	for _, name := range []string{"gnu-newc", "gnu-crc", "gnu-two-archives"} {
		data := readSeed(t, filepath.Join(dir, name))
		src := bytes.NewReader(data)
		entries, _ := readAll(t, src)
		if len(entries) < 5 {
			t.Fatalf("%s: only %d entries", name, len(entries))
		}
	}
}

func writeSeedCorpus(t *testing.T, dir string) {
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "t/d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		os.WriteFile(filepath.Join(tree, "t/d/f"), []byte("hello\n"), 0o644),
		os.WriteFile(filepath.Join(tree, "t/e"), nil, 0o600),
		os.Symlink("d/f", filepath.Join(tree, "t/l")),
		os.Link(filepath.Join(tree, "t/d/f"), filepath.Join(tree, "t/h")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	list := strings.NewReader("t\nt/d\nt/d/f\nt/e\nt/l\nt/h\n")
	newc := gnuCpio(t, tree, list, "-o", "--quiet", "-H", "newc")
	list.Seek(0, io.SeekStart)
	crc := gnuCpio(t, tree, list, "-o", "--quiet", "-H", "crc")
	// Keep one 512-byte block of padding at most: it is what GNU cpio
	// leaves after an archive, and the fuzzer need not carry more.
	trim := func(b []byte) []byte {
		end := bytes.Index(b, []byte(Trailer)) + len(Trailer) + 1
		return b[:min(len(b), (end+3)&^3+8)]
	}
	newc, crc = trim(newc), trim(crc)
	badSum := append([]byte{}, crc...)
	copy(badSum[bytes.Index(badSum, []byte("hello\n")):], "jello\n")
	seeds := map[string][]byte{
		"gnu-newc":             newc,
		"gnu-crc":              crc,
		"gnu-two-archives":     append(append([]byte{}, newc...), crc...),
		"gnu-newc-cut-in-body": newc[:bytes.Index(newc, []byte("hello"))+2],
		"gnu-newc-cut-in-name": newc[:headerLen+1],
		"gnu-crc-bad-checksum": badSum,
		"gnu-newc-odc-magic":   append([]byte("070707"), newc[6:]...),
		"gnu-newc-bad-hex":     append(append([]byte{}, newc[:20]...), append([]byte("zz"), newc[22:]...)...),
	}
	for name, data := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readSeed decodes a corpus file of a single []byte written by
// writeSeedCorpus (a Go quoted string).
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lit string
	if _, err := fmt.Sscanf(strings.TrimPrefix(string(raw), "go test fuzz v1\n"), "[]byte(%q)", &lit); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(lit)
}
