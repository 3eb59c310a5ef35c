package bootentry

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
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
	dir := filepath.Join(root, "boot/loader/entries")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "x-"+kver+Suffix), []byte("title a\nlinux\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "x-"+kver+".conf"), []byte("title a\nlinux\n"), 0o644) // not ours
	l, err := s.List(kver)
	if err != nil || len(l) != 1 || l[0].Entry != nil || !strings.Contains(l[0].Problems[0], "has no value") {
		t.Fatalf("list: %+v %v", l, err)
	}
	if rm, err := s.Remove(RemoveOptions{Stale: true}); err != nil || len(rm) != 1 {
		t.Fatalf("remove: %v %v", rm, err)
	}
	if left := names(t, dir); len(left) != 1 || left[0] != "x-"+kver+".conf" {
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
