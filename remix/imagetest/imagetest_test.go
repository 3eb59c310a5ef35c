package imagetest

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// TestArchiveReadsBack: what Archive writes is a newc archive that says
// what the entries say, with the defaults for inode and link count, and
// the image file is the concatenation of its parts.
func TestArchiveReadsBack(t *testing.T) {
	es := []Entry{Dir("."), File("a", 0o4755, "body"), Symlink("l", "a"),
		{Name: "dev/c", Mode: newc.TypeChar | 0o600, RDev: [2]uint32{5, 1}, Ino: 7, Nlink: 2, Mtime: 9, UID: 3}}
	data := Archive(t, es...)
	r := newc.NewReader(bytes.NewReader(data), 0)
	for i, e := range es {
		h, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		ino, nlink := e.Ino, e.Nlink
		if ino == 0 {
			ino, nlink = uint32(i+100), 1
		}
		if h.Name != e.Name || h.Mode != e.Mode || string(body) != e.Body || h.Ino != ino || h.Nlink != nlink ||
			h.RDevMajor != e.RDev[0] || h.RDevMinor != e.RDev[1] || h.Mtime != e.Mtime || h.UID != e.UID {
			t.Errorf("entry %d: %+v %q, want %+v", i, h, body, e)
		}
	}
	if h, err := r.Next(); err != io.EOF || r.Offset() != int64(len(data)) {
		t.Fatalf("after the entries: %v, %v at %d; want the trailer ending the data", h, err, r.Offset())
	}
	z := Compress(t, codec.Gzip, data)
	if c, ok := codec.Detect(z); !ok || c != codec.Gzip {
		t.Fatalf("Compress wrote %v", c)
	}
	p := WriteImage(t, "x.img", data[:10], z)
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, append(data[:10:10], z...)) {
		t.Fatalf("WriteImage: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("WriteImage mode: %v %v", fi.Mode(), err)
	}
}
