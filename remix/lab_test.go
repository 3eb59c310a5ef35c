package remix

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// TestLabRewriteIsMultiFrame: a real image rewritten to zstd or gzip comes
// out as several streams of one archive (so the encoder works in parallel),
// every stream after the first continuing the archive, and reads back to the
// same merged tree. It fails if the writer ever stops cutting frames.
func TestLabRewriteIsMultiFrame(t *testing.T) {
	in := testtool.OpenLab(t).Image(t, "itools-zstd").Path
	if _, err := os.Stat(in); err != nil {
		t.Fatalf("lab image: %v", err)
	}
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		t.Run(string(c), func(t *testing.T) {
			img := open(t, in)
			want := view(t, img)
			out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: c, Verify: true})
			written := open(t, out)
			var streams, continuing int
			for _, s := range written.Segments {
				if s.Offset < res.NewSegmentOffset {
					continue
				}
				if s.Compression != c {
					t.Fatalf("segment %d is %s, want %s", s.Index, s.Compression, c)
				}
				streams++
				if s.Continues {
					continuing++
				}
			}
			// 139 MiB of cpio in frames of codec.DefaultFrameSize.
			if streams < 8 || continuing != streams-1 {
				t.Fatalf("%d %s streams, %d continuing the archive: want one archive over 8 or more", streams, c, continuing)
			}
			if d := DiffViews(want, view(t, written)); d != nil {
				t.Fatalf("merged trees differ:\n%s", strings.Join(d[:min(5, len(d))], "\n"))
			}
			t.Logf("%s: %d streams, %d bytes", c, streams, res.Bytes)
		})
	}
}

// TestLabFSPassesFSTest: the io/fs view of a real image's tree passes
// testing/fstest, every file read back through it, and the dynamic loader
// is reached through the image's own usr-merge link.
func TestLabFSPassesFSTest(t *testing.T) {
	lab := testtool.OpenLab(t)
	for _, name := range []string{"itools-gzip", "dracut-nosd-gzip"} {
		t.Run(name, func(t *testing.T) {
			img := open(t, lab.Image(t, name).Path)
			mountRuntime(t, img.Tree)
			if err := fstest.TestFS(img.Tree.FS(), "init", "usr/bin", "etc"); err != nil {
				t.Fatal(err)
			}
			if fi, err := fs.Stat(img.Tree.FS(), "lib64/ld-linux-x86-64.so.2"); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("the loader through lib64: %v, %v", fi, err)
			}
		})
	}
}

// mountRuntime gives the links into what the boot mounts (etc/mtab ->
// /proc/self/mounts, var/lock -> /run/lock) a file to reach, as the
// mounts will: fstest opens every name, and a dangling link fails Open.
func mountRuntime(t *testing.T, tr *Tree) {
	for _, n := range tr.Nodes() {
		if !n.IsSymlink() {
			continue
		}
		if _, tn, err := tr.Resolve(n.Path, true); err == nil && tn != nil {
			continue
		}
		target := n.Inode.Target
		if !strings.HasPrefix(target, "/") {
			target = ParentPath(n.Path) + "/" + target
		}
		if c := Canonical(target); !strings.HasPrefix(c, "proc/") && !strings.HasPrefix(c, "run/") && c != "run" {
			t.Fatalf("%s -> %s: dangling outside the runtime mounts", n.Path, n.Inode.Target)
		}
		if _, err := tr.Install(File(target, 0o644, nil)); err != nil {
			t.Fatalf("%s -> %s: %v", n.Path, n.Inode.Target, err)
		}
	}
}
