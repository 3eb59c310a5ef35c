package bootentry

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

const kver = "6.1.0-50-amd64"

// bootTree makes root/boot/<token>/<kver>/{linux,initrd-remix-rescue.img}
// like kernel-install and the plugin do, and returns root.
func bootTree(t *testing.T, root string, tokens ...string) string {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	for _, tok := range tokens {
		d := filepath.Join(root, "boot", tok, kver)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"linux", "initrd-remix-rescue.img", "initrd.img-" + kver} {
			if err := os.WriteFile(filepath.Join(d, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func request(tok string) WriteRequest {
	return WriteRequest{Token: tok, Version: kver, MachineID: tok, Title: "T", SortKey: "debian-rescue", Options: "ro",
		Linux: "/boot/" + tok + "/" + kver + "/linux", Initrd: []string{"/boot/" + tok + "/" + kver + "/initrd-remix-rescue.img"}}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestWriteListRemove(t *testing.T) {
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	root := bootTree(t, "", a)
	s := Store{Root: root, BootRoot: "/boot"}
	// systemd's own entry for the same kernel must never be touched.
	sysEntry := filepath.Join(root, "boot/loader/entries", a+"-"+kver+".conf")
	os.MkdirAll(filepath.Dir(sysEntry), 0o755)
	os.WriteFile(sysEntry, []byte(systemdEntry), 0o644)

	res, err := s.Write(request(a))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(res.File) != a+"-"+kver+Suffix || len(res.Removed) != 0 {
		t.Fatalf("write: %+v", res)
	}
	got, _ := os.ReadFile(res.File)
	want := "title      T\nversion    " + kver + "\nmachine-id " + a + "\nsort-key   debian-rescue\noptions    ro\n" +
		"linux      /boot/" + a + "/" + kver + "/linux\ninitrd     /boot/" + a + "/" + kver + "/initrd-remix-rescue.img\n"
	if string(got) != want {
		t.Fatalf("entry:\n%s\nwant:\n%s", got, want)
	}
	if l, err := s.List(""); err != nil || len(l) != 1 || len(l[0].Problems) != 0 {
		t.Fatalf("list: %+v %v", l, err)
	}

	// The machine ID changes; the next kernel install writes under b.
	bootTree(t, root, b)
	res, err = s.Write(request(b))
	if err != nil {
		t.Fatal(err)
	}
	wantRemoved := []string{filepath.Join(root, "boot", a, kver, "initrd-remix-rescue.img"), filepath.Join(root, "boot/loader/entries", a+"-"+kver+Suffix)}
	if strings.Join(res.Removed, "\n") != strings.Join(wantRemoved, "\n") {
		t.Fatalf("removed %q, want %q", res.Removed, wantRemoved)
	}
	if l, _ := s.List(kver); len(l) != 1 || l[0].Entry.MachineID != b {
		t.Fatalf("after the machine-id change: %+v", l)
	}

	// The rescue image disappears behind the entry's back: List says so,
	// Remove --stale deletes the entry.
	os.Remove(filepath.Join(root, "boot", b, kver, "initrd-remix-rescue.img"))
	l, _ := s.List("")
	if len(l) != 1 || len(l[0].Problems) != 1 || !strings.Contains(l[0].Problems[0], "initrd-remix-rescue.img is missing") {
		t.Fatalf("stale entry not reported: %+v", l)
	}
	if rm, err := s.Remove(RemoveOptions{Stale: true, Images: true}); err != nil || len(rm) != 1 {
		t.Fatalf("remove stale: %v %v", rm, err)
	}

	// Remove by version deletes entry and image, nothing else.
	bootTree(t, root, b)
	if _, err := s.Write(request(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(RemoveOptions{Version: kver, Images: true}); err != nil {
		t.Fatal(err)
	}
	wantLeft := []string{a + "/" + kver + "/initrd.img-" + kver, a + "/" + kver + "/linux", b + "/" + kver + "/initrd.img-" + kver,
		b + "/" + kver + "/linux", "loader/entries/" + a + "-" + kver + ".conf"}
	if left := names(t, filepath.Join(root, "boot")); strings.Join(left, "\n") != strings.Join(wantLeft, "\n") {
		t.Fatalf("left after remove:\n%s\nwant:\n%s", strings.Join(left, "\n"), strings.Join(wantLeft, "\n"))
	}
}

func TestWriteRefuses(t *testing.T) {
	const a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tests := []struct {
		name string
		edit func(r *WriteRequest, root string)
		err  string
	}{
		{"missing initrd", func(r *WriteRequest, _ string) { r.Initrd = []string{"/boot/none.img"} }, "missing file"},
		{"missing linux", func(r *WriteRequest, _ string) { r.Linux = "/boot/vmlinuz" }, "missing file"},
		{"empty initrd", func(r *WriteRequest, root string) {
			os.WriteFile(filepath.Join(root, "boot/empty.img"), nil, 0o644)
			r.Initrd = []string{"/boot/empty.img"}
		}, "non-empty regular file"},
		{"directory as linux", func(r *WriteRequest, _ string) { r.Linux = "/boot/" + a }, "non-empty regular file"},
		{"slash in token", func(r *WriteRequest, _ string) { r.Token = "a/b" }, "slash"},
		{"empty version", func(r *WriteRequest, _ string) { r.Version = "" }, "empty"},
		{"newline in title", func(r *WriteRequest, _ string) { r.Title = "x\ninitrd /evil" }, "one line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := bootTree(t, "", a)
			s := Store{Root: root, BootRoot: "/boot"}
			r := request(a)
			tc.edit(&r, root)
			_, err := s.Write(r)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if l, _ := s.List(""); len(l) != 0 {
				t.Fatalf("an entry was written: %+v", l)
			}
		})
	}
}

func TestListUnparsable(t *testing.T) {
	root := t.TempDir()
	s := Store{Root: root, BootRoot: "/boot"}
	if l, err := s.List(""); err != nil || l != nil {
		t.Fatalf("no boot dir: %v %v", l, err)
	}
	const mid = "0123456789abcdef0123456789abcdef"
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(mid+"\n"), 0o444)
	dir := filepath.Join(root, "boot/loader/entries")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, mid+"-"+kver+Suffix), []byte("title a\nlinux\n"), 0o644)
	os.WriteFile(filepath.Join(dir, mid+"-"+kver+".conf"), []byte("title a\nlinux\n"), 0o644) // not ours
	os.WriteFile(filepath.Join(dir, "other-"+kver+Suffix), []byte("title a\nlinux\n"), 0o644) // another installation's
	l, err := s.List(kver)
	if err != nil || len(l) != 2 || l[0].Entry != nil || !strings.Contains(l[0].Problems[0], "has no value") || !l[0].Owned || l[1].Owned {
		t.Fatalf("list: %+v %v", l, err)
	}
	if rm, err := s.Remove(RemoveOptions{Stale: true}); err != nil || len(rm) != 1 {
		t.Fatalf("remove: %v %v", rm, err)
	}
	if left := names(t, dir); strings.Join(left, " ") != mid+"-"+kver+".conf other-"+kver+Suffix {
		t.Fatalf("left %v", left)
	}
}

func TestMachineID(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"f26fa2b166ec44ca823654ec9b51a726\n", "f26fa2b166ec44ca823654ec9b51a726"},
		{"uninitialized\n", ""},
		{"", ""},
		{"F26FA2B166EC44CA823654EC9B51A726", ""},
	} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(tc.content), 0o444)
		if got := MachineID(root); got != tc.want {
			t.Errorf("machine-id %q: got %q", tc.content, got)
		}
	}
	if got := MachineID(t.TempDir()); got != "" {
		t.Errorf("missing machine-id: %q", got)
	}
}

// withMachineID writes root/etc/machine-id.
func withMachineID(t *testing.T, root, id string) {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(id+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
}

// TestSharedBoot: on a $BOOT shared by two installations, each writes and
// removes only the rescue entries of its own tokens (issue 16, point 3);
// an entry this installation wrote under its previous machine ID is still
// its own, so a machine-id change leaves one entry, not two.
func TestSharedBoot(t *testing.T) {
	const a, b, c = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccc"
	boot := bootPartition(t)
	var roots [2]string
	for i, id := range []string{a, c} {
		roots[i] = t.TempDir()
		if err := os.Symlink(boot, filepath.Join(roots[i], "boot")); err != nil {
			t.Fatal(err)
		}
		withMachineID(t, roots[i], id)
	}
	bootTree(t, roots[0], a, b, c)
	s1, s2 := Store{Root: roots[0], BootRoot: "/boot"}, Store{Root: roots[1], BootRoot: "/boot"}
	if _, err := s1.Write(request(a)); err != nil {
		t.Fatal(err)
	}
	res, err := s2.Write(request(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 {
		t.Fatalf("the other installation's write removed %v", res.Removed)
	}
	base := func(files []string) string {
		var out []string
		for _, f := range files {
			rel, _ := filepath.Rel(boot, f)
			if strings.HasPrefix(rel, "..") {
				rel = "loader/entries/" + filepath.Base(f)
			}
			out = append(out, rel)
		}
		return strings.Join(out, " ")
	}
	entry := func(tok string) string { return "loader/entries/" + tok + "-" + kver + Suffix }
	image := func(tok string) string { return tok + "/" + kver + "/initrd-remix-rescue.img" }
	l, err := s2.List(kver)
	if err != nil || len(l) != 2 || l[0].Token != a || l[0].Owned || l[1].Token != c || !l[1].Owned {
		t.Fatalf("list from the other installation: %+v %v", l, err)
	}
	// The other installation removes its kernel: ours stays.
	if rm, err := s2.Remove(RemoveOptions{Version: kver, Images: true}); err != nil || base(rm) != image(c)+" "+entry(c) {
		t.Fatalf("remove: %v %v", rm, err)
	}
	// Our image goes away; the other installation's stale cleanup leaves
	// our broken entry alone (it is ours to fix or remove).
	os.Remove(filepath.Join(boot, image(a)))
	if rm, err := s2.Remove(RemoveOptions{Stale: true, Images: true}); err != nil || len(rm) != 0 {
		t.Fatalf("stale removal by the other installation: %v %v", rm, err)
	}
	if _, err := os.Stat(filepath.Join(boot, entry(a))); err != nil {
		t.Fatalf("our entry: %v", err)
	}
	// Our machine ID changes: the entry written under the old one is still
	// ours (recorded in TokensFile) and is replaced.
	bootTree(t, roots[0], a)
	if _, err := s1.Write(request(a)); err != nil {
		t.Fatal(err)
	}
	withMachineID(t, roots[0], b)
	res, err = s1.Write(request(b))
	if err != nil || base(res.Removed) != image(a)+" "+entry(a) {
		t.Fatalf("write after the machine-id change: %+v %v", res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(roots[0], TokensFile)); string(got) != a+"\n"+b+"\n" {
		t.Fatalf("%s: %q", TokensFile, got)
	}
}

// bootPartition is a directory on another file system than the test's
// temporary directories (/dev/shm): a boot partition, as Partition sees it,
// when a root's /boot links to it.
func bootPartition(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "bootentry-")
	if err != nil {
		testtool.Missing(t, "a boot partition on another file system needs /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := t.TempDir()
	os.Symlink(dir, filepath.Join(root, "boot"))
	if part, err := (Store{Root: root, BootRoot: "/boot"}).Partition(); err != nil || part != "/boot" {
		testtool.Missing(t, "/dev/shm is on the file system of %s (partition %q, %v)", root, part, err)
	}
	return dir
}

// TestRemoveStaysInside: entry remove --stale --images never deletes a
// file outside the boot partition, whether the entry reaches it with ".."
// or through a symbolic link (issue 16, point 4).
func TestRemoveStaysInside(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef"
	shm := bootPartition(t)
	root := t.TempDir()
	withMachineID(t, root, mid)
	if err := os.Symlink(shm, filepath.Join(root, "boot")); err != nil {
		t.Fatal(err)
	}
	s := Store{Root: root, BootRoot: "/boot"}
	victims := map[string]string{ // entry path -> the file it reaches without the checks
		"/../victim/initrd-remix-rescue-dotdot.img":  filepath.Join(root, "victim/initrd-remix-rescue-dotdot.img"),
		"/out/initrd-remix-rescue-link.img":          filepath.Join(root, "victim/initrd-remix-rescue-link.img"),
		"/ok/../../victim/initrd-remix-rescue-2.img": filepath.Join(root, "victim/initrd-remix-rescue-2.img"),
	}
	os.MkdirAll(filepath.Join(root, "victim"), 0o755)
	if err := os.Symlink(filepath.Join(root, "victim"), filepath.Join(shm, "out")); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(shm, "ok/initrd-remix-rescue-ok.img")
	os.MkdirAll(filepath.Dir(inside), 0o755)
	os.WriteFile(inside, []byte("x"), 0o600)
	paths := []string{"/ok/initrd-remix-rescue-ok.img"}
	for p, f := range victims {
		os.WriteFile(f, []byte("precious"), 0o600)
		paths = append(paths, p)
	}
	os.MkdirAll(s.EntriesDir(), 0o755)
	for i, p := range paths {
		v := fmt.Sprintf("6.1.0-%d-amd64", i)
		body := "title t\nversion " + v + "\nlinux /gone/linux\ninitrd " + p + "\n"
		os.WriteFile(filepath.Join(s.EntriesDir(), EntryName(mid, v)), []byte(body), 0o644)
	}
	l, err := s.List("")
	if err != nil || len(l) != len(paths) {
		t.Fatalf("list: %+v %v", l, err)
	}
	for _, f := range l {
		if f.Entry.Initrd[0] != paths[0] && !strings.Contains(strings.Join(f.Problems, ";"), "leaves the boot partition") {
			t.Errorf("%s: problems %q do not say the path leaves the partition", f.Entry.Initrd[0], f.Problems)
		}
	}
	rm, err := s.Remove(RemoveOptions{Stale: true, Images: true})
	if err != nil || len(rm) != len(paths)+1 {
		t.Fatalf("remove: %v %v", rm, err)
	}
	for p, f := range victims {
		if b, err := os.ReadFile(f); err != nil || string(b) != "precious" {
			t.Errorf("%s reached %s: %v", p, f, err)
		}
	}
	if _, err := os.Stat(inside); err == nil {
		t.Error("the rescue image inside the partition was not removed")
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"6.1.0-28-amd64", "5.14.0-427.13.1.el9_4.x86_64", "6.9.1-arch1-1", "6.1.0+", "6.1~rc1", strings.Repeat("1", 64)} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", ".hidden", "..", "6.1 0", "$(reboot)", "6.1/../x", "a\x1b[2J", "a\nb", "6.1.0'x", strings.Repeat("1", 65), "6.1é"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}
