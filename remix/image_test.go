package remix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// ent is one entry of a test archive.
type ent = imagetest.Entry

const (
	dirMode  = newc.TypeDir | 0o755
	fileMode = newc.TypeReg | 0o644
	linkMode = newc.TypeSymlink | 0o777
)

// distroImage is laid out like dracut's output: an early microcode archive,
// a main compressed archive (usr-merged), zero padding, and a second
// compressed segment that overrides files, as an appended update would.
func distroImage(t testing.TB, last codec.Codec) []byte {
	early := imagetest.Archive(t, ent{Name: ".", Mode: dirMode}, ent{Name: "early_cpio", Mode: fileMode, Body: "1\n"},
		ent{Name: "kernel", Mode: dirMode}, ent{Name: "kernel/x86", Mode: dirMode}, ent{Name: "kernel/x86/microcode", Mode: dirMode},
		ent{Name: "kernel/x86/microcode/GenuineIntel.bin", Mode: fileMode, Body: strings.Repeat("\x01µcode", 500)})
	main := imagetest.Archive(t, ent{Name: ".", Mode: dirMode, Mtime: 5}, ent{Name: "usr", Mode: dirMode}, ent{Name: "usr/bin", Mode: dirMode},
		ent{Name: "usr/lib", Mode: dirMode}, ent{Name: "bin", Mode: linkMode, Body: "usr/bin"}, ent{Name: "lib", Mode: linkMode, Body: "usr/lib"},
		ent{Name: "init", Mode: fileMode | 0o755, Body: "#!/bin/sh\nexec /bin/sh\n"},
		ent{Name: "dev", Mode: dirMode}, ent{Name: "dev/console", Mode: newc.TypeChar | 0o600, RDev: [2]uint32{5, 1}},
		ent{Name: "usr/bin/sh", Mode: fileMode | 0o755, Body: strings.Repeat("ELF sh ", 3000)},
		ent{Name: "usr/bin/ln1", Mode: fileMode | 0o755, Ino: 7, Nlink: 2},
		ent{Name: "usr/bin/ln2", Mode: fileMode | 0o755, Ino: 7, Nlink: 2, Body: "hardlinked"},
		ent{Name: "usr/lib/modules", Mode: dirMode}, ent{Name: "usr/lib/modules/6.1.0-test", Mode: dirMode},
		ent{Name: "usr/lib/modules/6.1.0-test/modules.dep", Mode: fileMode, Body: "kernel/x.ko:\n"},
		ent{Name: "etc", Mode: dirMode}, ent{Name: "etc/old", Mode: fileMode, Body: "stale"})
	update := imagetest.Archive(t, ent{Name: "etc/old", Mode: fileMode, Body: "fresh", UID: 3},
		ent{Name: "bin/added", Mode: fileMode | 0o755, Body: "through the usr-merge link"},
		ent{Name: "etc/setuid", Mode: newc.TypeReg | 0o4755, Body: "s"})
	var img []byte
	img = append(img, early...)
	img = append(img, imagetest.Compress(t, codec.Zstd, main)...)
	img = append(img, make([]byte, 7)...)
	img = append(img, imagetest.Compress(t, last, update)...)
	return img
}

func open(t testing.TB, p string) *Image {
	t.Helper()
	img, err := Open(context.Background(), p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func view(t testing.TB, img *Image) []FileInfo {
	t.Helper()
	v, err := img.Tree.View(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenReadsSegmentsAndMergesLikeTheKernel(t *testing.T) {
	img := open(t, imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip)))
	if len(img.Segments) != 3 {
		t.Fatalf("segments: %+v", img.Segments)
	}
	s := img.Segments
	if s[0].Compression != codec.None || !s[0].Early || !s[0].Microcode || s[0].Offset != 0 {
		t.Errorf("segment 0: %+v", s[0])
	}
	if s[1].Compression != codec.Zstd || s[1].Early || s[1].Offset != s[0].Length || s[1].Padding != 7 || s[1].Entries != 17 {
		t.Errorf("segment 1: %+v", s[1])
	}
	if s[2].Compression != codec.Gzip || s[2].Offset != s[1].End() || s[2].End() != img.Size {
		t.Errorf("segment 2: %+v", s[2])
	}
	tr := img.Tree
	if got := string(Head(tr.Get("etc/old").Inode.Content, 100)); got != "fresh" || tr.Get("etc/old").Inode.UID != 3 {
		t.Errorf("etc/old = %q: the later entry must win", got)
	}
	if tr.Get("usr/bin/added") == nil || tr.Get("bin").Inode.Type() != newc.TypeSymlink {
		t.Error("bin/added must land in usr/bin through the link")
	}
	ln1, ln2 := tr.Get("usr/bin/ln1"), tr.Get("usr/bin/ln2")
	if ln1.Inode != ln2.Inode || string(Head(ln1.Inode.Content, 100)) != "hardlinked" {
		t.Error("hard links must share one inode with the data")
	}
	if c := tr.Get("dev/console").Inode; c.RDevMajor != 5 || c.RDevMinor != 1 {
		t.Errorf("console %d,%d", c.RDevMajor, c.RDevMinor)
	}
	if d := DetectUsrMerge(tr); d.State != "merged" && d.State != "partial" {
		t.Errorf("usr-merge %+v", d)
	}
	if k := KernelVersions(tr); len(k) != 1 || k[0] != "6.1.0-test" {
		t.Errorf("kernel versions %v", k)
	}
	if v := MicrocodeVendors(img); len(v) != 1 || v[0] != "GenuineIntel" {
		t.Errorf("microcode %v", v)
	}
}

func rewrite(t testing.TB, img *Image, opt WriteOptions) (string, *WriteResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := img.WriteTo(context.Background(), f, opt)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := res.Verify(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	return out, res
}

func TestRewriteKeepsTheMergedTreeWithEveryCodec(t *testing.T) {
	in := distroImage(t, codec.XZ)
	img := open(t, imagetest.WriteImage(t, "initrd.img", in))
	want := view(t, img)
	for _, c := range codec.Writable() {
		t.Run(string(c), func(t *testing.T) {
			out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: c})
			data, _ := os.ReadFile(out)
			if !bytes.Equal(data[:res.KeptBytes], in[:img.Segments[1].Offset]) || res.KeptBytes != img.Segments[1].Offset {
				t.Fatal("early archive not kept byte for byte")
			}
			again := open(t, out)
			if d := DiffViews(want, view(t, again)); d != nil {
				t.Fatalf("merged trees differ:\n%s", strings.Join(d, "\n"))
			}
			if len(again.Segments) != 2 || !again.Segments[0].Early || again.Segments[1].Compression != c {
				t.Fatalf("layout %+v", again.Segments)
			}
			out2, _ := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: c, Concurrency: 2})
			if data2, _ := os.ReadFile(out2); !bytes.Equal(data, data2) {
				t.Fatal("rewrite is not reproducible")
			}
		})
	}
}

func TestAppendKeepsTheOriginalAndAddsOnlyEdits(t *testing.T) {
	for _, last := range []codec.Codec{codec.Gzip, codec.LZ4, codec.None} {
		t.Run("after "+string(last), func(t *testing.T) {
			var in []byte
			if last == codec.None {
				// An uncompressed main archive of odd length: the new
				// segment must still start 4-byte aligned.
				in = imagetest.Archive(t, ent{Name: "a", Mode: fileMode, Body: "x"}, ent{Name: "etc", Mode: dirMode})
			} else {
				in = distroImage(t, last)
			}
			img := open(t, imagetest.WriteImage(t, "initrd.img", in))
			img.Tree.SetGeneration(img.EditGeneration())
			if _, err := img.Tree.Put(Entry{Name: "etc/rescue", Mode: fileMode, Content: BytesContent("edit")}); err != nil {
				t.Fatal(err)
			}
			want := view(t, img)
			out, res := rewrite(t, img, WriteOptions{Mode: Append, Compression: codec.Zstd})
			data, _ := os.ReadFile(out)
			if !bytes.Equal(data[:len(in)], in) || res.NewEntries != 1 {
				t.Fatalf("original bytes must be kept; %d new entries", res.NewEntries)
			}
			if last == codec.LZ4 && strings.Trim(string(data[len(in):res.NewSegmentOffset]), "\x00") != "" || (last == codec.LZ4 && res.NewSegmentOffset-int64(len(in)) < 4) {
				t.Fatal("an lz4 segment must be followed by at least 4 zero bytes")
			}
			if d := DiffViews(want, view(t, open(t, out))); d != nil {
				t.Fatalf("merged trees differ:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

func TestBadInputIsRefusedWithTheOffset(t *testing.T) {
	good := distroImage(t, codec.Gzip)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "not an initrd"},
		{"only zeros", make([]byte, 512), "not an initrd"},
		{"unknown magic", []byte("MZ\x90\x00 a PE file"), "unknown magic"},
		{"lzo with a bad header", append([]byte("\x89LZO\x00\r\n\x1a\n"), make([]byte, 40)...), "lzo"},
		{"misaligned archive", append([]byte{0x1f}, good...), "unknown magic"},
		{"junk inside a compressed stream", imagetest.Compress(t, codec.Gzip, []byte("hello world, not cpio")), "junk within compressed archive"},
		{"compressed stream ends inside an archive", imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, ent{Name: "a", Mode: fileMode, Body: "x"})[:40]), "truncated"},
		{"junk after an uncompressed archive", append(imagetest.Archive(t, ent{Name: "a", Mode: fileMode}), "XYZ"...), "unknown magic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), imagetest.WriteImage(t, "initrd.img", tc.data), OpenOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "initrd.img") {
				t.Fatalf("err = %v, want it to name the file and contain %q", err, tc.want)
			}
		})
	}
}

func TestTruncatedImagesFailAtEveryOffset(t *testing.T) {
	good := distroImage(t, codec.Gzip)
	for cut := 1; cut < len(good); cut += 1 + cut/8 {
		_, err := Read(context.Background(), bytes.NewReader(good[:cut]), OpenOptions{MetadataOnly: true})
		if err == nil {
			// A cut exactly at a segment boundary is a valid, shorter
			// image, and so is one at an entry boundary of an uncompressed
			// archive: the kernel accepts an archive without a trailer.
			atBoundary := false
			segs, _ := Scan(context.Background(), bytes.NewReader(good), ScanOptions{}, func(seg *Segment, _ int, h *newc.Header, _ io.Reader) error {
				if seg.Compression == codec.None && h.Offset == int64(cut) {
					atBoundary = true
				}
				return nil
			})
			for _, s := range segs {
				if int64(cut) == s.End() || int64(cut) == s.Offset+s.Length {
					atBoundary = true
				}
			}
			if !atBoundary {
				t.Fatalf("cut at %d of %d accepted", cut, len(good))
			}
			continue
		}
		var se *ScanError
		if !errors.As(err, &se) && !strings.Contains(err.Error(), "not an initrd") {
			t.Fatalf("cut at %d: %v is not a ScanError", cut, err)
		}
	}
}

func TestDecompressedSizeIsBounded(t *testing.T) {
	bomb := imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, ent{Name: "big", Mode: fileMode, Body: strings.Repeat("\x00", 4<<20)}))
	_, err := Read(context.Background(), bytes.NewReader(bomb), OpenOptions{ScanOptions: ScanOptions{MaxUncompressed: 1 << 20}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestNamesCannotEscapeTheImage(t *testing.T) {
	data := imagetest.Archive(t, ent{Name: "/etc", Mode: dirMode}, ent{Name: "../../etc/passwd", Mode: fileMode, Body: "x"},
		ent{Name: "etc/../../../../shadow", Mode: fileMode, Body: "y"}, ent{Name: "lnk", Mode: linkMode, Body: "/../../.."},
		ent{Name: "lnk/etc/through", Mode: fileMode, Body: "z"})
	img, err := Read(context.Background(), bytes.NewReader(data), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, p := range []string{"etc/passwd", "shadow", "etc/through"} {
		if img.Tree.Get(p) == nil {
			t.Errorf("%s missing: %v", p, paths(img.Tree))
		}
	}
	for _, n := range img.Tree.Nodes() {
		if strings.Contains(n.Path, "..") || strings.HasPrefix(n.Path, "/") {
			t.Errorf("path escapes: %q", n.Path)
		}
	}
}

func FuzzScan(f *testing.F) {
	f.Add(distroImage(f, codec.Gzip))
	f.Add(imagetest.Archive(f, ent{Name: "a", Mode: fileMode, Body: "x"}))
	f.Add(imagetest.Compress(f, codec.LZ4, imagetest.Archive(f, ent{Name: "a", Mode: fileMode, Body: "x"})))
	f.Add(imagetest.Compress(f, codec.XZ, imagetest.Archive(f, ent{Name: "a", Mode: linkMode, Body: "b"})))
	// One archive over two zstd frames, over an uncompressed part and a
	// gzip member, and without a trailer.
	two := imagetest.Archive(f, ent{Name: "a", Mode: fileMode, Ino: 3, Nlink: 2}, ent{Name: "b", Mode: fileMode, Ino: 3, Nlink: 2, Body: "x"})
	f.Add(cat(imagetest.Compress(f, codec.Zstd, two[:112]), imagetest.Compress(f, codec.Zstd, two[112:])))
	f.Add(cat(two[:112], imagetest.Compress(f, codec.Gzip, two[112:])))
	f.Add(imagetest.Compress(f, codec.Zstd, two[:len(two)-124]))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Read(context.Background(), bytes.NewReader(data), OpenOptions{ScanOptions: ScanOptions{MaxUncompressed: 64 << 20}})
		if err == nil {
			img.Tree.View(true, nil)
			img.Close()
		}
	})
}

// TestVerifyCatchesCorruptedOutput damages a written image in ways an
// encoder or file-system bug could, and expects Verify to name the entry.
func TestVerifyCatchesCorruptedOutput(t *testing.T) {
	img := open(t, imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip)))
	out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: codec.None})
	good, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Index(good, []byte("ELF sh ELF sh"))
	mode := bytes.Index(good[res.NewSegmentOffset:], []byte("000041ED")) // a directory's mode field
	if body < 0 || mode < 0 {
		t.Fatal("test image lacks the expected bytes")
	}
	mode += int(res.NewSegmentOffset)
	for _, tc := range []struct {
		name    string
		damage  func([]byte) []byte
		wantErr string
	}{
		{"flipped body byte", func(b []byte) []byte { b[body+3] ^= 0x20; return b }, `"usr/bin/sh": content differs`},
		{"changed mode", func(b []byte) []byte { copy(b[mode:], "000041FF"); return b }, "reads back as"},
		{"swapped body bytes", func(b []byte) []byte { b[body], b[body+1] = b[body+1], b[body]; return b }, "content differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.img")
			if err := os.WriteFile(p, tc.damage(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			err := res.Verify(context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if err := res.Verify(context.Background(), out); err != nil {
		t.Fatalf("the undamaged output must verify: %v", err)
	}
}

// TestKeepContentSkipsBodies: bodies the filter rejects are not kept, an
// append of edits still works, and a rewrite that needs them says why.
func TestKeepContentSkipsBodies(t *testing.T) {
	p := imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip))
	img, err := Open(context.Background(), p, OpenOptions{KeepContent: func(name string, size int64) bool {
		return !strings.HasPrefix(name, "usr/bin/")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := img.Tree.Get("usr/bin/sh").Inode.Content.Open(); !errors.Is(err, ErrContentNotKept) {
		t.Fatalf("usr/bin/sh content: %v, want ErrContentNotKept", err)
	}
	if got := string(Head(img.Tree.Get("etc/old").Inode.Content, 100)); got != "fresh" {
		t.Fatalf("etc/old = %q", got)
	}
	if sz := img.Tree.Get("usr/bin/sh").Inode.Size(); sz != 21000 {
		t.Fatalf("usr/bin/sh size %d, want 21000", sz)
	}
	img.Tree.SetGeneration(img.EditGeneration())
	if _, err := img.Tree.Put(Entry{Name: "etc/added", Mode: fileMode, Content: BytesContent("x")}); err != nil {
		t.Fatal(err)
	}
	rewrite(t, img, WriteOptions{Mode: Append, Compression: codec.Zstd})
	_, err = img.WriteTo(context.Background(), io.Discard, WriteOptions{Mode: Rewrite, Compression: codec.Zstd})
	if !errors.Is(err, ErrContentNotKept) || !strings.Contains(err.Error(), "usr/bin/") {
		t.Fatalf("rewrite without the bodies: %v", err)
	}
}

// TestReplaceKeepsTheOtherHardLinks: a file put over one name of a hard-link
// group (busybox's applets) must not change the others, in the tree and in
// what the kernel builds from an appended segment; Put, like the kernel
// given the bare entry, writes through to every link.
func TestReplaceKeepsTheOtherHardLinks(t *testing.T) {
	for _, mode := range []WriteMode{Append, Rewrite} {
		t.Run(string(mode), func(t *testing.T) {
			img := open(t, imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip)))
			img.Tree.SetGeneration(img.EditGeneration())
			if _, err := img.Tree.Replace(Entry{Name: "usr/bin/ln1", Mode: fileMode | 0o755, Content: BytesContent("replaced")}); err != nil {
				t.Fatal(err)
			}
			check := func(tr *Tree, where string) {
				t.Helper()
				if got := string(Head(tr.Get("usr/bin/ln1").Inode.Content, 100)); got != "replaced" {
					t.Errorf("%s: ln1 = %q", where, got)
				}
				if got := string(Head(tr.Get("usr/bin/ln2").Inode.Content, 100)); got != "hardlinked" {
					t.Errorf("%s: ln2 = %q, the other link must keep its content", where, got)
				}
				if tr.Get("usr/bin/ln1").Inode == tr.Get("usr/bin/ln2").Inode {
					t.Errorf("%s: ln1 and ln2 still share an inode", where)
				}
			}
			check(img.Tree, "tree")
			out, _ := rewrite(t, img, WriteOptions{Mode: mode, Compression: codec.Zstd})
			check(open(t, out).Tree, "written image")
		})
	}
	// Put keeps the kernel's write-through semantics.
	img := open(t, imagetest.WriteImage(t, "initrd.img", distroImage(t, codec.Gzip)))
	if _, err := img.Tree.Put(Entry{Name: "usr/bin/ln1", Mode: fileMode | 0o755, Content: BytesContent("through")}); err != nil {
		t.Fatal(err)
	}
	if got := string(Head(img.Tree.Get("usr/bin/ln2").Inode.Content, 100)); got != "through" {
		t.Errorf("Put over a hard link: ln2 = %q, want the shared content", got)
	}
}

// TestSpoolFrom: with OpenOptions.SpoolFrom, bodies of at least that size
// go to the spool file in SpoolDir and the smaller ones stay in memory;
// both read back whole and at any offset, and an append of the opened
// image is the same file as without the option.
func TestSpoolFrom(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "in.img")
	if err := os.WriteFile(p, distroImage(t, codec.Gzip), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := open(t, p)
	defer plain.Close()
	spoolDir := t.TempDir()
	for _, tc := range []struct {
		from   int64
		onDisk int // bodies in the spool file
	}{
		{0, 0},
		{1000, 2}, // usr/bin/sh, GenuineIntel.bin
		{1, 10},   // every name with a body (ln1 and ln2 share one)
	} {
		t.Run(fmt.Sprint(tc.from), func(t *testing.T) {
			onDisk := 0
			img, err := Open(context.Background(), p, OpenOptions{SpoolFrom: tc.from, SpoolDir: spoolDir})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			for _, n := range img.Tree.Nodes() {
				if !n.IsRegular() || n.Inode.Size() == 0 {
					continue
				}
				_, inMemory := n.Inode.Content.(BytesContent)
				if want := tc.from == 0 || n.Inode.Size() < tc.from; inMemory != want {
					t.Errorf("%s (%d bytes): in memory %v, want %v", n.Path, n.Inode.Size(), inMemory, want)
				}
				if !inMemory {
					onDisk++
				}
				got, err := img.Tree.FS().ReadFile(n.Path)
				if err != nil {
					t.Fatal(err)
				}
				want, err := plain.Tree.FS().ReadFile(n.Path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s reads back %q, want %q", n.Path, got, want)
				}
				r, err := n.Inode.Content.Open()
				if err != nil {
					t.Fatal(err)
				}
				if ra, ok := r.(io.ReaderAt); ok {
					b := make([]byte, 1)
					if _, err := ra.ReadAt(b, int64(len(want)-1)); err != nil || b[0] != want[len(want)-1] {
						t.Errorf("%s: ReadAt of the last byte: %q, %v", n.Path, b, err)
					}
				} else if !inMemory {
					t.Errorf("%s: a spooled body opens without ReadAt", n.Path)
				}
				r.Close()
			}
			if onDisk != tc.onDisk {
				t.Errorf("%d names with bodies in the spool file, want %d", onDisk, tc.onDisk)
			}
			ents, err := os.ReadDir(spoolDir)
			if err != nil || len(ents) != 0 {
				t.Fatalf("the spool file is not unlinked: %v %v", ents, err)
			}
		})
	}
}
