package remix

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// entryOffsets returns where each header of an uncompressed archive starts,
// the trailer's included: the places the kernel lets a stream end.
func entryOffsets(t testing.TB, arch []byte) []int {
	t.Helper()
	var offs []int
	r := newc.NewReader(bytes.NewReader(arch), 0)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, int(h.Offset))
	}
	return append(offs, len(arch)-124) // the trailer: 110 + 11 + 3 bytes
}

// linkedArchive holds a hard-link pair (data on the second name, as GNU cpio
// writes it) between other entries, so a cut can fall between the two.
func linkedArchive(t testing.TB) []byte {
	return imagetest.Archive(t, ent{Name: "etc", Mode: dirMode}, ent{Name: "etc/a", Mode: fileMode, Body: "first"},
		ent{Name: "etc/ln1", Mode: fileMode, Ino: 7, Nlink: 2},
		ent{Name: "etc/b", Mode: fileMode, Body: strings.Repeat("b", 1000)},
		ent{Name: "etc/ln2", Mode: fileMode, Ino: 7, Nlink: 2, Body: "shared body"},
		ent{Name: "etc/c", Mode: linkMode, Body: "a"})
}

// seen is what Scan reports about an image.
type seen struct {
	segs     []Segment
	archives map[string]int // entry name -> archive index
}

func scanAll(data []byte) (seen, error) {
	s := seen{archives: map[string]int{}}
	segs, err := Scan(context.Background(), bytes.NewReader(data), ScanOptions{}, func(_ *Segment, archive int, h *newc.Header, _ io.Reader) error {
		s.archives[h.Name] = archive
		return nil
	})
	s.segs = segs
	return s, err
}

// TestArchivesContinueAcrossSegments models init/initramfs.c: the cpio state
// is not reset between compressed segments, so an archive may be cut at any
// entry boundary and go on in the next stream until its trailer.
func TestArchivesContinueAcrossSegments(t *testing.T) {
	arch := linkedArchive(t)
	offs := entryOffsets(t, arch)
	cut := offs[3] // after etc/ln1, before etc/b: the link pair is split
	head, tail := arch[:cut], arch[cut:]
	unterminated := arch[:offs[len(offs)-1]]
	type segWant struct {
		c                       codec.Codec
		archives                int
		continues, unterminated bool
	}
	tests := []struct {
		name    string
		data    []byte
		want    []segWant
		wantErr string
	}{
		{"split over 2 zstd frames", cat(imagetest.Compress(t, codec.Zstd, head), imagetest.Compress(t, codec.Zstd, tail)),
			[]segWant{{codec.Zstd, 1, false, true}, {codec.Zstd, 0, true, false}}, ""},
		{"split over 2 gzip members", cat(imagetest.Compress(t, codec.Gzip, head), imagetest.Compress(t, codec.Gzip, tail)),
			[]segWant{{codec.Gzip, 1, false, true}, {codec.Gzip, 0, true, false}}, ""},
		{"uncompressed then zstd", cat(head, imagetest.Compress(t, codec.Zstd, tail)),
			[]segWant{{codec.None, 1, false, true}, {codec.Zstd, 0, true, false}}, ""},
		{"uncompressed, zero padding, uncompressed", cat(head, make([]byte, 8), tail),
			[]segWant{{codec.None, 1, false, true}, {codec.None, 0, true, false}}, ""},
		{"zstd, then xz starting a second archive after the trailer", cat(imagetest.Compress(t, codec.Zstd, arch), imagetest.Compress(t, codec.XZ, imagetest.Archive(t, ent{Name: "z", Mode: fileMode}))),
			[]segWant{{codec.Zstd, 1, false, false}, {codec.XZ, 1, false, false}}, ""},
		{"three frames, the middle one a single entry", cat(imagetest.Compress(t, codec.Zstd, arch[:offs[2]]), imagetest.Compress(t, codec.Zstd, arch[offs[2]:offs[3]]), imagetest.Compress(t, codec.Zstd, arch[offs[3]:])),
			[]segWant{{codec.Zstd, 1, false, true}, {codec.Zstd, 0, true, true}, {codec.Zstd, 0, true, false}}, ""},
		{"unterminated uncompressed archive at the end of the file", unterminated,
			[]segWant{{codec.None, 1, false, true}}, ""},
		{"unterminated compressed archive at the end of the file", imagetest.Compress(t, codec.Zstd, unterminated),
			[]segWant{{codec.Zstd, 1, false, true}}, ""},
		{"zstd frame cut inside an entry", cat(imagetest.Compress(t, codec.Zstd, arch[:cut+7]), imagetest.Compress(t, codec.Zstd, arch[cut+7:])),
			nil, "ends inside a cpio entry"},
		{"gzip member cut inside a body", cat(imagetest.Compress(t, codec.Gzip, arch[:offs[4]-10]), imagetest.Compress(t, codec.Gzip, arch[offs[4]-10:])),
			nil, "ends inside a cpio entry"},
		{"frame cut before the body padding", cat(imagetest.Compress(t, codec.Zstd, arch[:offs[2]-1]), imagetest.Compress(t, codec.Zstd, arch[offs[2]-1:])),
			nil, "ends inside a cpio entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scanAll(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "offset") {
					t.Fatalf("err = %v, want one naming an offset and containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.segs) != len(tc.want) {
				t.Fatalf("%d segments, want %d: %+v", len(s.segs), len(tc.want), s.segs)
			}
			for i, w := range tc.want {
				g := s.segs[i]
				if g.Compression != w.c || g.Archives != w.archives || g.Continues != w.continues || g.Unterminated != w.unterminated {
					t.Errorf("segment %d = %s archives %d continues %v unterminated %v, want %+v", i, g.Compression, g.Archives, g.Continues, g.Unterminated, w)
				}
			}
			// Every entry of the first archive belongs to archive 0,
			// whatever segment it is in.
			for _, name := range []string{"etc", "etc/ln1", "etc/ln2", "etc/c"} {
				if a, ok := s.archives[name]; ok && a != 0 {
					t.Errorf("%s in archive %d, want 0", name, a)
				}
			}
			if a, ok := s.archives["z"]; ok && a != 1 {
				t.Errorf("z in archive %d, want 1", a)
			}
		})
	}
}

// TestHardLinksGroupAcrossFrames: the kernel's link table lives until the
// trailer, so names of one inode split over two frames are one file.
func TestHardLinksGroupAcrossFrames(t *testing.T) {
	arch := linkedArchive(t)
	cut := entryOffsets(t, arch)[3]
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip, codec.None} {
		t.Run(string(c), func(t *testing.T) {
			img := open(t, imagetest.WriteImage(t, "initrd.img", cat(imagetest.Compress(t, c, arch[:cut]), imagetest.Compress(t, c, arch[cut:]))))
			ln1, ln2 := img.Tree.Get("etc/ln1"), img.Tree.Get("etc/ln2")
			if ln1 == nil || ln2 == nil || ln1.Inode != ln2.Inode {
				t.Fatalf("etc/ln1 and etc/ln2 must share an inode")
			}
			if got := string(Head(ln1.Inode.Content, 100)); got != "shared body" {
				t.Fatalf("ln1 = %q", got)
			}
		})
	}
}

// TestAppendClosesAnUnterminatedArchive: an image whose last archive has no
// trailer leaves the kernel's link table full of its inode numbers; the
// appended segment must clear it first, or a new hard-linked file whose
// inode number collides would be linked to the old file (and its body
// written into it).
func TestAppendClosesAnUnterminatedArchive(t *testing.T) {
	old := imagetest.Archive(t, ent{Name: "etc", Mode: dirMode, Ino: 9},
		ent{Name: "etc/old1", Mode: fileMode, Ino: 1, Nlink: 2},
		ent{Name: "etc/old2", Mode: fileMode, Ino: 1, Nlink: 2, Body: "old body"})
	old = old[:len(old)-124] // no trailer
	for _, c := range []codec.Codec{codec.None, codec.Zstd} {
		t.Run("input "+string(c), func(t *testing.T) {
			in := old
			if c != codec.None {
				in = imagetest.Compress(t, c, old)
			}
			img := open(t, imagetest.WriteImage(t, "initrd.img", in))
			if last := img.Segments[len(img.Segments)-1]; !last.Unterminated {
				t.Fatalf("input's last segment must be unterminated: %+v", last)
			}
			img.Tree.SetGeneration(img.EditGeneration())
			n1, err := img.Tree.Put(Entry{Name: "etc/new1", Mode: fileMode, Content: BytesContent("new body")})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := img.Tree.Link(n1, "etc/new2"); err != nil {
				t.Fatal(err)
			}
			want := view(t, img)
			out, res := rewrite(t, img, WriteOptions{Mode: Append, Compression: codec.Zstd})
			data, _ := os.ReadFile(out)
			written := open(t, out)
			if d := DiffViews(want, view(t, written)); d != nil {
				t.Fatalf("merged trees differ:\n%s", strings.Join(d, "\n"))
			}
			if got := string(Head(written.Tree.Get("etc/old1").Inode.Content, 100)); got != "old body" {
				t.Fatalf("etc/old1 = %q: the new link group was linked to the old inode", got)
			}
			s, err := scanAll(data[res.NewSegmentOffset:])
			if err != nil {
				t.Fatal(err)
			}
			if s.segs[0].Archives != 2 || s.archives["etc/new1"] != 1 {
				t.Fatalf("the new segment must start with a lone trailer, then its archive: %+v", s.segs)
			}
		})
	}
}

// framedImage is distroImage with enough data to fill several small frames.
func framedImage(t testing.TB) []byte {
	var es []ent
	es = append(es, ent{Name: "usr", Mode: dirMode}, ent{Name: "usr/lib", Mode: dirMode})
	for i := range 40 {
		es = append(es, ent{Name: fmt.Sprintf("usr/lib/f%02d", i), Mode: fileMode, Body: strings.Repeat(fmt.Sprintf("body of %d ", i), 50+i*20)})
		if i%10 == 3 {
			es = append(es, ent{Name: fmt.Sprintf("usr/lib/l%02da", i), Mode: fileMode, Ino: uint32(1000 + i), Nlink: 2},
				ent{Name: fmt.Sprintf("usr/lib/l%02db", i), Mode: fileMode, Ino: uint32(1000 + i), Nlink: 2, Body: strings.Repeat("linked ", 300)})
		}
	}
	return cat(distroImage(t, codec.Gzip), imagetest.Compress(t, codec.Zstd, imagetest.Archive(t, es...)))
}

// TestRewriteCutsFramesAtEntryBoundaries: zstd and gzip output is several
// independent streams of one archive, the same bytes whatever the
// concurrency, which the kernel-faithful reader merges back exactly.
func TestRewriteCutsFramesAtEntryBoundaries(t *testing.T) {
	in := framedImage(t)
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		t.Run(string(c), func(t *testing.T) {
			var first []byte
			for _, threads := range []int{1, 2, 5} {
				img := open(t, imagetest.WriteImage(t, "initrd.img", in))
				want := view(t, img)
				out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: c, Concurrency: threads, FrameSize: 4 << 10, Verify: true})
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = data
					s, err := scanAll(data[res.NewSegmentOffset:])
					if err != nil {
						t.Fatal(err)
					}
					if len(s.segs) < 4 {
						t.Fatalf("%d %s streams, want several of about 4 KiB", len(s.segs), c)
					}
					for i, g := range s.segs {
						if g.Compression != c || g.Continues != (i > 0) || g.Archives != map[bool]int{true: 1, false: 0}[i == 0] || g.Unterminated != (i < len(s.segs)-1) {
							t.Fatalf("segment %d: %+v", i, g)
						}
					}
					if cmd := map[codec.Codec]string{codec.Zstd: "zstd", codec.Gzip: "gzip"}[c]; cmd != "" {
						// The CLI reads the streams as one archive.
						checkCLIList(t, cmd, data[res.NewSegmentOffset:], want)
					}
				} else if !bytes.Equal(data, first) {
					t.Fatalf("output with %d threads differs from 1 thread", threads)
				}
				if d := DiffViews(want, view(t, open(t, out))); d != nil {
					t.Fatalf("merged trees differ:\n%s", strings.Join(d, "\n"))
				}
			}
		})
	}
}

// checkCLIList decodes the streams with the codec's CLI as one stream and
// expects one cpio archive holding every name of the view.
func checkCLIList(t *testing.T, cmd string, stream []byte, want []FileInfo) {
	t.Helper()
	if _, err := lookPath(cmd); err != nil {
		return // the codec tests require the CLIs; this is a bonus check
	}
	raw := runCmd(t, stream, cmd, "-dc")
	r := newc.NewReader(bytes.NewReader(raw), 0)
	names := map[string]bool{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s -dc output: %v", cmd, err)
		}
		names[Canonical(h.Name)] = true
	}
	if int(r.Offset()) != len(raw) {
		t.Fatalf("%s -dc output holds %d bytes after the first trailer", cmd, len(raw)-int(r.Offset()))
	}
	for _, fi := range want {
		if !names[fi.Path] && fi.Path != "." {
			if strings.HasPrefix(fi.Path, "kernel") || fi.Path == "early_cpio" {
				continue // the early archive is kept uncompressed before
			}
			t.Fatalf("%s -dc output lacks %s", cmd, fi.Path)
		}
	}
}

// TestVerifyCatchesBrokenFrames: a write whose streams were cut inside an
// entry, lost a stream, or started a new archive must fail verification.
func TestVerifyCatchesBrokenFrames(t *testing.T) {
	img := open(t, imagetest.WriteImage(t, "initrd.img", framedImage(t)))
	out, res := rewrite(t, img, WriteOptions{Mode: Rewrite, Compression: codec.Zstd, FrameSize: 4 << 10})
	good, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	part := good[res.NewSegmentOffset:]
	s, err := scanAll(part)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte // each frame's decompressed bytes
	for _, g := range s.segs {
		frames = append(frames, decompress(t, part[g.Offset:g.Offset+g.Length]))
	}
	raw := bytes.Join(frames, nil)
	second := len(frames[0])
	for _, tc := range []struct {
		name    string
		part    []byte
		wantErr string
	}{
		{"cut inside an entry", cat(imagetest.Compress(t, codec.Zstd, raw[:second+50]), imagetest.Compress(t, codec.Zstd, raw[second+50:])), "inside a cpio entry"},
		{"a frame lost", cat(part[:s.segs[1].Offset], part[s.segs[2].Offset:]), "entry"},
		{"a trailer between frames", cat(imagetest.Compress(t, codec.Zstd, cat(frames[0], imagetest.Archive(t))), part[s.segs[1].Offset:]), "starts a new archive"},
		{"the last frame lost", part[:s.segs[len(s.segs)-1].Offset], "more were written"},
		{"the trailer lost", cat(part[:s.segs[len(s.segs)-1].Offset], imagetest.Compress(t, codec.Zstd, frames[len(frames)-1][:len(frames[len(frames)-1])-124])), "the last one terminated"},
		{"undamaged", part, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSegment(context.Background(), bytes.NewReader(tc.part), codec.Zstd, res.archives(), func(i int) (writtenEntry, bool) {
				if i < len(res.written) {
					return res.written[i], true
				}
				return writtenEntry{}, false
			})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("the undamaged part must verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("verify = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func decompress(t testing.TB, stream []byte) []byte {
	t.Helper()
	c, ok := codec.Detect(stream[:codec.MagicLen])
	if !ok {
		t.Fatal("unknown stream")
	}
	r, err := codec.NewReader(c, bufio.NewReader(bytes.NewReader(stream)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// runCmd runs a command with stdin and returns its standard output.
func runCmd(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", name, err, errb.String())
	}
	return out
}
