// Package imagetest builds the bytes of test initrds: newc archives from
// entries, compressed streams, and image files made of both. It imports
// only the cpio and codec packages, so that the tests of package remix can
// use it.
package imagetest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// Entry is one entry of a test archive, as its cpio header says it.
// Zero Ino gives the entry an inode number of its own (100 plus its
// index); zero Nlink means 1.
type Entry struct {
	Name  string
	Mode  uint32 // type and permission bits, newc.TypeReg|0o644 ...
	Body  string // content, or a symlink's target
	Ino   uint32
	Nlink uint32
	RDev  [2]uint32 // major, minor
	Mtime uint32
	UID   uint32
}

// Archive writes es as one newc archive with its trailer.
func Archive(t testing.TB, es ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newc.NewWriter(&buf)
	for i, e := range es {
		h := &newc.Header{Name: e.Name, Mode: e.Mode, Ino: e.Ino, Nlink: e.Nlink, Mtime: e.Mtime, UID: e.UID,
			RDevMajor: e.RDev[0], RDevMinor: e.RDev[1], Size: int64(len(e.Body))}
		if h.Ino == 0 {
			h.Ino = uint32(i + 100)
		}
		if h.Nlink == 0 {
			h.Nlink = 1
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Compress compresses data as one stream of c, on one thread.
func Compress(t testing.TB, c codec.Codec, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := codec.NewWriter(c, &buf, codec.WriterOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// WriteImage writes the concatenation of parts to a private file named
// name in a fresh temporary directory and returns its path.
func WriteImage(t testing.TB, name string, parts ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, bytes.Join(parts, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Dir is the entry of a directory (0755).
func Dir(name string) Entry { return Entry{Name: name, Mode: newc.TypeDir | 0o755} }

// File is the entry of a regular file with perm and body.
func File(name string, perm uint32, body string) Entry {
	return Entry{Name: name, Mode: newc.TypeReg | perm&0o7777, Body: body}
}

// Symlink is the entry of a symbolic link to target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: newc.TypeSymlink | 0o777, Body: target}
}
