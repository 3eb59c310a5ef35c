package newc

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// gnuCpio runs GNU cpio in dir with a fixed locale and time zone, so that
// listings can be compared field by field.
func gnuCpio(t *testing.T, dir string, stdin io.Reader, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("cpio", args...)
	cmd.Dir, cmd.Stdin = dir, stdin
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("cpio %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func major(dev uint64) uint32 { return uint32(dev>>8&0xfff | dev>>32&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff | dev>>12&^0xff) }

// TestGNUCpioListsOurArchives compares `cpio -itv` of a Writer archive with
// what was written, column by column.
func TestGNUCpioListsOurArchives(t *testing.T) {
	testtool.Require(t, "cpio")
	entries := sample()
	out := gnuCpio(t, "", bytes.NewReader(build(t, entries)), "-itv", "--numeric-uid-gid", "--quiet")
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(entries) {
		t.Fatalf("cpio listed %d entries, want %d:\n%s", len(lines), len(entries), out)
	}
	for i, e := range entries {
		h := e.h
		size := strconv.FormatInt(h.Size, 10)
		if typ := h.Type(); typ == TypeChar || typ == TypeBlock {
			size = fmt.Sprintf("%d, %d", h.RDevMajor, h.RDevMinor)
		}
		// GNU cpio shows the year for times more than 6 months away.
		mt := time.Unix(int64(h.Mtime), 0).UTC()
		want := []string{e.ls, fmt.Sprint(h.Nlink), fmt.Sprint(h.UID), fmt.Sprint(h.GID), size,
			mt.Format("Jan"), fmt.Sprint(mt.Day()), fmt.Sprint(mt.Year()), h.Name}
		if h.Type() == TypeSymlink {
			want = append(want, "->", e.body)
		}
		if got := strings.Join(strings.Fields(lines[i]), " "); got != strings.Join(want, " ") {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got, strings.Join(want, " "))
		}
	}
}

// TestGNUCpioExtractsOurArchives extracts a Writer archive as root and
// checks every file against its header.
func TestGNUCpioExtractsOurArchives(t *testing.T) {
	testtool.Require(t, "cpio")
	if os.Geteuid() != 0 {
		t.Skip("creating devices and owners needs root")
	}
	entries := sample()
	// Names reach PATH_MAX: only paths relative to the tree fit a syscall.
	t.Chdir(t.TempDir())
	gnuCpio(t, "", bytes.NewReader(build(t, entries)), "-idm", "--no-absolute-filenames", "--quiet")
	var first syscall.Stat_t        // of the first name of the hard-link group
	for _, e := range entries[1:] { // "." is the temporary directory itself
		h := e.h
		var st syscall.Stat_t
		if err := syscall.Lstat(h.Name, &st); err != nil {
			t.Errorf("%s: %v", h.Name, err)
			continue
		}
		if st.Mode != h.Mode || st.Uid != h.UID || st.Gid != h.GID {
			t.Errorf("%s: mode %#o uid %d gid %d, want %#o %d %d", h.Name, st.Mode, st.Uid, st.Gid, h.Mode, h.UID, h.GID)
		}
		// GNU cpio sets no symlink times, and a directory's time changes
		// again as its files are extracted.
		if typ := h.Type(); typ != TypeSymlink && typ != TypeDir && st.Mtim.Sec != int64(h.Mtime) {
			t.Errorf("%s: mtime %d, want %d", h.Name, st.Mtim.Sec, h.Mtime)
		}
		switch h.Type() {
		case TypeChar, TypeBlock:
			if major(st.Rdev) != h.RDevMajor || minor(st.Rdev) != h.RDevMinor {
				t.Errorf("%s: device %d,%d, want %d,%d", h.Name, major(st.Rdev), minor(st.Rdev), h.RDevMajor, h.RDevMinor)
			}
		case TypeSymlink:
			if target, err := os.Readlink(h.Name); err != nil || target != e.body {
				t.Errorf("%s -> %q (%v), want %q", h.Name, target, err, e.body)
			}
		case TypeReg:
			body, err := os.ReadFile(h.Name)
			if h.Nlink > 1 {
				if first.Ino == 0 {
					first = st
				}
				if st.Ino != first.Ino || st.Nlink != uint64(h.Nlink) || string(body) != "hello" {
					t.Errorf("%s: inode %d with %d links holding %q, want inode %d with %d links holding the group's data",
						h.Name, st.Ino, st.Nlink, body, first.Ino, h.Nlink)
				}
			} else if err != nil || string(body) != e.body {
				t.Errorf("%s holds %q (%v), want %q", h.Name, body, err, e.body)
			}
		}
	}
}

// gnuTree makes a directory tree with every file type GNU cpio archives,
// devices and owners only as root, in the current directory, and returns
// the names in archive order.
func gnuTree(t *testing.T) []string {
	t.Helper()
	root := os.Geteuid() == 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"t", "t/d", "t/d/f", "t/empty", "t/p1", "t/p2", "t/p3", "t/setuid", "t/rel", "t/abs", "t/h1", "t/h2", "t/h3", "t/fifo", "t/sock"}
	must(os.MkdirAll("t/d", 0o750))
	for i, n := range []string{"t/d/f", "t/empty", "t/p1", "t/p2", "t/p3", "t/setuid", "t/h1"} {
		must(os.WriteFile(n, []byte(strings.Repeat("\xe9", i)), 0o640))
	}
	must(os.Chmod("t/setuid", 0o4711))
	must(os.Symlink("d/f", "t/rel"))
	must(os.Symlink("/usr/lib/os-release", "t/abs"))
	must(os.Link("t/h1", "t/h2"))
	must(os.Link("t/h1", "t/h3"))
	must(syscall.Mkfifo("t/fifo", 0o600))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "t/sock", Net: "unix"})
	must(err)
	l.SetUnlinkOnClose(false)
	l.Close()
	long := longName("t/d/", MaxNameLen-1)
	must(os.MkdirAll(filepath.Dir(long), 0o755))
	must(os.WriteFile(long, []byte("deep"), 0o644))
	names = append(names, long)
	if root {
		must(syscall.Mknod("t/console", syscall.S_IFCHR|0o600, 5<<8|1))
		must(syscall.Mknod("t/nvme", syscall.S_IFBLK|0o660, int(259<<8|65537&0xff|(65537&^0xff)<<12)))
		must(os.Lchown("t/p2", 1000, 100))
		must(os.Lchown("t/rel", 1001, 101))
		names = append(names, "t/console", "t/nvme")
	}
	for i, n := range names {
		if n != "t/rel" && n != "t/abs" {
			mt := time.Unix(1600000000+int64(i)*86400, 0)
			must(os.Chtimes(n, mt, mt))
		}
	}
	return names
}

// TestGNUCpioArchivesAreRead reads what GNU cpio writes from a real tree,
// in both formats, checks every header against lstat, and writes the
// entries back: the result must be GNU cpio's newc archive byte for byte
// (GNU cpio then pads to a 512-byte block).
func TestGNUCpioArchivesAreRead(t *testing.T) {
	testtool.Require(t, "cpio")
	// Names reach PATH_MAX: only paths relative to the tree fit a syscall.
	t.Chdir(t.TempDir())
	names := gnuTree(t)
	list := strings.Join(names, "\n") + "\n"
	archives := map[string][]byte{}
	for _, format := range []string{"newc", "crc"} {
		archives[format] = gnuCpio(t, "", strings.NewReader(list), "-o", "--quiet", "-H", format)
	}
	for _, format := range []string{"newc", "crc"} {
		t.Run(format, func(t *testing.T) {
			data := archives[format]
			r := NewReader(bytes.NewReader(data), 0)
			var entries []testEntry
			for {
				h, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]string{"newc": MagicNewc, "crc": MagicCRC}[format]; h.Magic != want {
					t.Fatalf("%s: magic %s", h.Name, h.Magic)
				}
				body, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, testEntry{h: *h, body: string(body)})
			}
			// GNU cpio holds hard links back until it has seen every name,
			// so the order is its own; the set of names is the tree's.
			var got []string
			for _, e := range entries {
				got = append(got, e.h.Name)
			}
			if a, b := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(names)); !slices.Equal(a, b) {
				t.Fatalf("archive holds %q, want %q", a, b)
			}
			var linkSizes []int64
			for _, e := range entries {
				h := e.h
				var st syscall.Stat_t
				if err := syscall.Lstat(h.Name, &st); err != nil {
					t.Fatal(err)
				}
				if h.Mode != st.Mode || h.UID != st.Uid || h.GID != st.Gid || uint64(h.Nlink) != st.Nlink || int64(h.Mtime) != st.Mtim.Sec ||
					h.DevMajor != major(st.Dev) || h.DevMinor != minor(st.Dev) || h.RDevMajor != major(st.Rdev) || h.RDevMinor != minor(st.Rdev) ||
					(st.Ino <= 0xffffffff && uint64(h.Ino) != st.Ino) {
					t.Errorf("%s: header %+v does not match lstat %+v", h.Name, h, st)
				}
				switch {
				case h.Type() == TypeSymlink:
					if target, _ := os.Readlink(h.Name); e.body != target {
						t.Errorf("%s -> %q, want %q", h.Name, e.body, target)
					}
				case h.Type() == TypeReg && h.Nlink > 1:
					linkSizes = append(linkSizes, h.Size)
					if h.Size > 0 && e.body != "\xe9\xe9\xe9\xe9\xe9\xe9" {
						t.Errorf("%s holds %q", h.Name, e.body)
					}
				case h.Type() == TypeReg:
					if want, _ := os.ReadFile(h.Name); e.body != string(want) {
						t.Errorf("%s holds %q, want %q", h.Name, e.body, want)
					}
				}
			}
			if fmt.Sprint(linkSizes) != "[0 0 6]" {
				t.Errorf("hard-link sizes %v; GNU cpio puts the data once, on the last name", linkSizes)
			}
			// Both formats rewritten as newc equal GNU cpio's newc output.
			again := build(t, entries)
			gnu := archives["newc"]
			if len(gnu)%512 != 0 || len(again) > len(gnu) || !bytes.Equal(again, gnu[:len(again)]) {
				t.Fatalf("rewritten archive (%d bytes) differs from GNU cpio's newc archive (%d bytes)", len(again), len(gnu))
			}
			if strings.Trim(string(gnu[len(again):]), "\x00") != "" {
				t.Fatal("GNU cpio's archive has more than block padding after the trailer")
			}
		})
	}
}
