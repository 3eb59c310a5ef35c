package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
	"github.com/initrd-remix/initrd-remix/strip"
)

// labImage is one row of a lab's images/manifest.tsv.
type labImage = testtool.LabImage

// lab is one release's lab, as these tests use it.
type lab struct {
	dir     string
	release string
	env     map[string]string
	images  []labImage
	rel     *testtool.LabRelease
}

func labOf(r *testtool.LabRelease) *lab {
	return &lab{dir: r.Dir, release: r.Release, env: r.Env, images: r.Images, rel: r}
}

// openLab is the main lab (Debian 12), which has every family with every
// compression.
func openLab(t *testing.T) *lab {
	t.Helper()
	l := labOf(testtool.OpenLab(t))
	if len(l.images) < 6 {
		t.Fatalf("lab has only %d images", len(l.images))
	}
	return l
}

// labReleases is the main lab and the other releases' labs.
func labReleases(t *testing.T) []*lab {
	t.Helper()
	var out []*lab
	for _, r := range testtool.LabReleases(t) {
		out = append(out, labOf(r))
	}
	return out
}

func (l *lab) image(t *testing.T, name string) labImage { return l.rel.Image(t, name) }

// TestLabInspect checks what inspect reports against what the lab knows
// about each image it built.
func TestLabInspect(t *testing.T) {
	for _, l := range labReleases(t) {
		rootMerged := false
		if fi, err := os.Lstat(filepath.Join(l.env["LAB_ROOT"], "bin")); err == nil {
			rootMerged = fi.Mode()&os.ModeSymlink != 0
		}
		for _, im := range l.images {
			t.Run(l.release+"/"+im.Name, func(t *testing.T) { labInspect(t, l, im, rootMerged) })
		}
	}
}

// labInspect checks one image of a release against what its lab knows.
func labInspect(t *testing.T, l *lab, im labImage, rootMerged bool) {
	img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if g := strip.Detect(img.Tree); string(g.Generator) != im.Family {
		t.Errorf("generator %s (%v), lab built it with %s", g.Generator, g.Evidence, im.Family)
	}
	if got := map[bool]string{true: "yes", false: "no"}[img.HasMicrocode()]; got != im.Microcode {
		t.Errorf("microcode %s, manifest says %s", got, im.Microcode)
	}
	last := img.Segments[len(img.Segments)-1]
	if string(last.Compression) != im.Compression {
		t.Errorf("main segment compression %s, want %s", last.Compression, im.Compression)
	}
	kv := remix.KernelVersions(img.Tree)
	if len(kv) != 1 || kv[0] != l.env["LAB_KVER"] {
		t.Errorf("kernel versions %v, want %s", kv, l.env["LAB_KVER"])
	}
	// A merged root gives merged images. On an unmerged root, dracut
	// copies the root's layout and initramfs-tools merges its image
	// anyway (0.140 does): either way the layout is whole, never partial.
	u := remix.DetectUsrMerge(img.Tree)
	if rootMerged && u.State != "merged" || !rootMerged && u.State != "merged" && u.State != "unmerged" {
		t.Errorf("usr-merge %+v; the %s root's is merged: %v", u, l.release, rootMerged)
	}
	t.Logf("%d segments, %d names, usr-merge %s, generator evidence %v", len(img.Segments), img.Tree.Len(), u.State, strip.Detect(img.Tree).Evidence)
}

// listNames runs a distribution's listing tool and returns the sorted set of
// names it prints (without "./" prefixes and the root itself); with a root,
// lsinitrd is that root's own.
func listNames(t *testing.T, tool, image, root string) []string {
	t.Helper()
	var cmd *exec.Cmd
	switch tool {
	case "lsinitramfs":
		cmd = exec.Command("lsinitramfs", image)
	case "lsinitrd":
		// lsinitrd prints cpio -tv lines; the name is the ninth field.
		// (Debian's awk is mawk, without interval expressions: grep -E.)
		// The release's own lsinitrd reads its dracut's layout (dracut
		// 110 and later put modules in an uncompressed archive of their
		// own, which older ones list as the end of the image): it runs in
		// its root, in a private mount namespace where the image's
		// directory is bound on the root's /mnt.
		list := `lsinitrd "$1" | grep -E '^[-dlcbps][-rwxsStT]{9} ' | awk '{print $9}'`
		cmd = exec.Command("sh", "-c", list, "sh", image)
		if root != "" {
			cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
				`mount --bind "$1" "$2/mnt" && exec chroot "$2" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C sh -c "$3" sh "/mnt/$4"`,
				"sh", filepath.Dir(image), root, list, filepath.Base(image))
		}
	case "cpio":
		cmd = exec.Command("sh", "-c", `cpio -it --quiet < "$1" 2>/dev/null || true`, "sh", image)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// unmkinitramfs walks every uncompressed archive as an "early" one and
	// then runs cpio on the empty rest, so an image whose last archive is
	// uncompressed is listed in full but exits 2 with this message.
	if err != nil && !(tool == "lsinitramfs" && strings.TrimSpace(stderr.String()) == "cpio: premature end of archive" && len(out) > 0) {
		t.Fatalf("%s %s: %v: %s", tool, image, err, stderr.String())
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "./")
		if line == "" || line == "." {
			continue
		}
		set[line] = true
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("%s listed nothing for %s: the comparison would prove nothing", tool, image)
	}
	return names
}

// TestLabRepackRoundTrip rewrites every lab image with the output codecs,
// the images of each release taking turns (image k takes the codecs whose
// index is k modulo 3, so every release, with three images or more, covers
// every codec), and compares the merged trees entry for entry; the
// distributions' own listing tools must list each output as they list the
// input.
func TestLabRepackRoundTrip(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	testtool.Require(t, "lsinitramfs")
	testtool.Require(t, "lsinitrd")
	testtool.Require(t, "cpio")
	out := t.TempDir()
	var all []labImage
	var names []string
	var turn []int
	var roots []string // each image's release root, for its own lsinitrd
	for _, l := range labReleases(t) {
		for k, im := range l.images {
			all = append(all, im)
			roots = append(roots, l.env["LAB_ROOT"])
			names = append(names, l.release+"/"+im.Name)
			turn = append(turn, k%3)
		}
	}
	for i, im := range all {
		t.Run(names[i], func(t *testing.T) {
			// xz encoding is single-threaded and slow: use both cores.
			t.Parallel()
			orig, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := orig.Tree.View(true, nil)
			// repack streams what a generator writes: early microcode
			// archives, then compressed ones. An uncompressed archive of
			// other names (Debian 13 keeps its modules in one) takes the
			// ordinary path.
			streams := true
			for _, s := range orig.Segments {
				if s.Compression == codec.None && !s.Early {
					streams = false
				}
			}
			orig.Close()
			if err != nil {
				t.Fatal(err)
			}
			tool := "lsinitramfs"
			if strings.HasPrefix(im.Family, "dracut") {
				tool = "lsinitrd"
			}
			// The input's listings, once for all its outputs.
			inputNames := map[string]string{}
			for _, tl := range []string{tool, "cpio"} {
				inputNames[tl] = strings.Join(listNames(t, tl, im.Path, roots[i]), "\n")
			}
			for j, c := range codec.Writable() {
				if j%3 != turn[i] {
					continue
				}
				o := filepath.Join(out, fmt.Sprintf("%d.%s.img", i, c))
				code, stdout, errs := cli(t, "repack", "--json", "--compress", string(c), im.Path, o)
				if code != exitOK {
					t.Fatalf("repack to %s: exit %d: %s", c, code, errs)
				}
				var res struct{ Streamed bool }
				if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Streamed != streams {
					t.Errorf("repack to %s: streamed %v, want %v (%v): %s", c, res.Streamed, streams, err, stdout)
				}
				got, err := remix.Open(context.Background(), o, remix.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				v, err := got.Tree.View(true, nil)
				got.Close()
				if err != nil {
					t.Fatal(err)
				}
				if d := remix.DiffViews(want, v); d != nil {
					t.Fatalf("%s: merged trees differ in %d places, first: %s", c, len(d), strings.Join(d[:min(5, len(d))], "\n"))
				}
				for _, tl := range []string{tool, "cpio"} {
					a, b := inputNames[tl], strings.Join(listNames(t, tl, o, roots[i]), "\n")
					if a != b {
						t.Errorf("%s lists %d names for the input and %d for the %s output", tl,
							strings.Count(a, "\n")+1, strings.Count(b, "\n")+1, c)
					}
				}
				os.Remove(o)
			}
		})
	}
}

// boot runs scripts/boot.sh and reports whether the marker was reached.
func boot(t *testing.T, l *lab, initrd, appendArgs string) {
	t.Helper()
	testtool.Require(t, "qemu-system-x86_64")
	logf := filepath.Join(t.TempDir(), "console.log")
	cmd := exec.Command("../../scripts/boot.sh", "--kernel", l.env["LAB_KERNEL"], "--initrd", initrd,
		"--disk", l.env["LAB_MARKER_DISK"], "--append", appendArgs, "--expect", l.env["LAB_MARKER"],
		"--timeout", "240", "--log", logf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		data, _ := os.ReadFile(logf)
		lines := strings.Split(string(data), "\n")
		t.Fatalf("boot of %s failed: %v\n%s\nlast console lines:\n%s", filepath.Base(initrd), err, out,
			strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	t.Logf("%s: %s", filepath.Base(initrd), strings.TrimSpace(string(out)))
}

// linkGroupsAcrossSegments counts the segments of the image at path and the
// hard-linked regular files whose names are in more than one of them.
func linkGroupsAcrossSegments(t *testing.T, path string) (segments, split int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type group struct {
		archive int
		ino     uint32
	}
	in := map[group]map[int]bool{}
	segs, err := remix.Scan(context.Background(), f, remix.ScanOptions{}, func(s *remix.Segment, archive int, h *newc.Header, _ io.Reader) error {
		if h.Nlink >= 2 && h.Type() == newc.TypeReg {
			g := group{archive, h.Ino}
			if in[g] == nil {
				in[g] = map[int]bool{}
			}
			in[g][s.Index] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range in {
		if len(m) > 1 {
			split++
		}
	}
	return len(segs), split
}

// noresume skips the 30 s wait for the swap device the lab baked into the
// images; originals and rewrites get the same arguments.
const rootArgs = "root=/dev/vda rootfstype=ext4 ro noresume"

// TestLabBoots boots each family's original image (the positive control:
// it must find and mount the marker root) and its rewrites with the output
// codecs, which must do exactly the same, in every release of the lab; plus
// an append after a legacy lz4 segment, which has no end marker.
//
// In each release every output codec is booted once, the families taking
// turns (codec i rewrites family i modulo the families), and over the
// releases each family meets several codecs: the kernel's decompressors do
// not depend on the generator, and the layout a generator writes (early
// microcode, one or several archives) is kept by every codec alike, which
// TestLabRepackRoundTrip checks for every image and codec without a boot.
func TestLabBoots(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	out := t.TempDir()
	// The main lab's three families, booted with the marker root's
	// arguments as ever (its images' baked arguments name the testbed).
	first := *l
	first.images = nil
	for _, name := range []string{"itools-zstd", "dracut-sd-zstd", "dracut-nosd-gzip"} {
		im := l.image(t, name)
		im.BootArgs = rootArgs
		first.images = append(first.images, im)
	}
	for r, rl := range append([]*lab{&first}, labReleases(t)[1:]...) {
		for _, im := range rl.images {
			t.Run(rl.release+"/"+im.Name+"/original", func(t *testing.T) {
				t.Parallel()
				boot(t, rl, im.Path, im.BootArgs)
			})
		}
		for i, c := range codec.Writable() {
			// Shifted by the release, so that each family meets
			// other codecs in other releases.
			im := rl.images[(i+r)%len(rl.images)]
			t.Run(fmt.Sprintf("%s/%s/rewrite-%s", rl.release, im.Name, c), func(t *testing.T) {
				t.Parallel()
				o := filepath.Join(out, fmt.Sprintf("%s.%s.%s.img", rl.release, im.Name, c))
				if code, _, errs := cli(t, "repack", "-q", "--compress", string(c), im.Path, o); code != exitOK {
					t.Fatalf("repack: exit %d: %s", code, errs)
				}
				boot(t, rl, o, im.BootArgs)
			})
		}
	}
	// Images read from codecs the tool does not write (bzip2, lzma) boot
	// once rewritten: the reader found the same stream ends the kernel does.
	for _, name := range []string{"dracut-nosd-bzip2", "dracut-nosd-lzma"} {
		im := l.image(t, name)
		t.Run(name+"/rewrite-zstd", func(t *testing.T) {
			t.Parallel()
			o := filepath.Join(out, name+".zstd.img")
			if code, _, errs := cli(t, "repack", "-q", "--compress", "zstd", im.Path, o); code != exitOK {
				t.Fatalf("repack: exit %d: %s", code, errs)
			}
			boot(t, l, o, rootArgs)
		})
	}
	// One zstd frame per entry: every hard link's names, and every parent
	// and child, are in different frames of one archive. The kernel keeps
	// its cpio state and hard-link table from frame to frame until the
	// trailer, so the image boots as its original does.
	t.Run("itools-zstd/frame-per-entry", func(t *testing.T) {
		t.Parallel()
		im := l.image(t, "itools-zstd")
		img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		o := filepath.Join(out, "itools-zstd.frame-per-entry.img")
		f, err := os.Create(o)
		if err != nil {
			t.Fatal(err)
		}
		res, err := img.WriteTo(context.Background(), f, remix.WriteOptions{Mode: remix.Rewrite, Compression: codec.Zstd, FrameSize: 1, Verify: true})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		frames, split := linkGroupsAcrossSegments(t, o)
		if frames < res.NewEntries || split == 0 {
			t.Fatalf("%d segments for %d entries, %d hard-link groups across segments: want a frame per entry and a split group", frames, res.NewEntries, split)
		}
		t.Logf("%d segments, %d hard-link groups across them", frames, split)
		boot(t, l, o, rootArgs)
	})
	t.Run("itools-lz4/append", func(t *testing.T) {
		t.Parallel()
		im := l.image(t, "itools-lz4")
		img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		img.Tree.SetGeneration(img.EditGeneration())
		if _, err := img.Tree.Put(remix.Entry{Name: "etc/initrd-remix-appended", Mode: 0o100644, Content: remix.BytesContent("appended\n")}); err != nil {
			t.Fatal(err)
		}
		o := filepath.Join(out, "itools-lz4.append.img")
		f, err := os.Create(o)
		if err != nil {
			t.Fatal(err)
		}
		res, err := img.WriteTo(context.Background(), f, remix.WriteOptions{Mode: remix.Append, Compression: codec.LZ4})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Verify(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		boot(t, l, o, rootArgs)
	})
}
