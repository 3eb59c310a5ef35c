package bootentry

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/uki"
	"github.com/initrd-remix/initrd-remix/uki/ukitest"
)

// readUKI is a UKIReader over the real format: the version from .uname,
// a problem for what does not parse as a UKI. (What makes the UKI a
// working rescue is rescueuki's to say, tested there.)
func readUKI(file string) UKIInfo {
	data, err := os.ReadFile(file)
	if err != nil {
		return UKIInfo{Problems: []string{err.Error()}}
	}
	u, err := uki.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return UKIInfo{Problems: []string{err.Error()}}
	}
	v, _, err := u.ReadText(uki.Uname)
	if err != nil {
		return UKIInfo{Problems: []string{err.Error()}}
	}
	return UKIInfo{Version: v}
}

// ukiTree is a root with $BOOT/EFI/Linux holding the given files: one
// whose content is "uki" gets a synthetic UKI of kver, returned too.
func ukiTree(t *testing.T, files map[string]string) (Store, string, []byte) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "boot/EFI/Linux")
	os.MkdirAll(dir, 0o755)
	img := ukitest.Synth(t, append(ukitest.Stub(), ukitest.Section{Name: uki.Uname, Data: []byte(kver)},
		ukitest.Section{Name: uki.Linux, Data: []byte("MZ")}), nil)
	for n, c := range files {
		b := []byte(c)
		if c == "uki" {
			b = img
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Store{Root: root, BootRoot: "/boot"}, dir, img
}

// TestUKIStale: a rescue UKI is stale, as a type #1 entry whose kernel is
// gone, when the distribution's UKI of its token and version is gone
// (a +TRIES name counts); one that cannot be read is stale too, its token
// and version then told from its name when the token is this
// installation's. entry remove --stale removes the stale ones of this
// installation only.
func TestUKIStale(t *testing.T) {
	const a, b, other = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccc"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		problem string // "" for a working one
		token   string
		owned   bool
		removed bool // by remove --stale
		distDir bool // a directory named like the distribution's UKI
	}{
		{"distribution UKI there", map[string]string{a + "-" + kver + ".efi": "x", UKIName(a, kver): "uki"}, "", a, true, false, false},
		{"boot counting name", map[string]string{a + "-" + kver + "+3-0.efi": "x", UKIName(a, kver): "uki"}, "", a, true, false, false},
		{"distribution UKI gone", map[string]string{UKIName(a, kver): "uki"}, "is gone: its kernel is no longer installed", a, true, true, false},
		{"another token's distribution UKI", map[string]string{b + "-" + kver + ".efi": "x", UKIName(a, kver): "uki"}, "is gone", a, true, true, false},
		{"not a UKI", map[string]string{a + "-" + kver + ".efi": "x", UKIName(a, kver): "MZ but not much else"}, "not a PE image", a, true, true, false},
		{"a directory named like the distribution UKI", map[string]string{UKIName(a, kver): "uki"}, "is gone", a, true, true, true},
		{"another installation's, stale", map[string]string{UKIName(other, kver): "uki"}, "is gone", other, false, false, false},
		{"another installation's, unreadable", map[string]string{UKIName(other, kver): "junk"}, "no entry token and kernel version", "", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir, _ := ukiTree(t, tc.files)
			if tc.distDir {
				os.Mkdir(filepath.Join(dir, a+"-"+kver+".efi"), 0o755)
			}
			os.MkdirAll(filepath.Join(s.Root, "etc"), 0o755)
			os.WriteFile(filepath.Join(s.Root, "etc/machine-id"), []byte(a+"\n"), 0o644)
			found, err := s.ListUKIs("", readUKI)
			if err != nil || len(found) != 1 {
				t.Fatalf("ListUKIs: %v %+v", err, found)
			}
			f := found[0]
			got := strings.Join(f.Problems, "; ")
			if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want %q", got, tc.problem)
			}
			if f.Token != tc.token || f.Owned != tc.owned {
				t.Errorf("token %q owned %v, want %q %v", f.Token, f.Owned, tc.token, tc.owned)
			}
			if tc.token != "" && f.Version != kver {
				t.Errorf("version %q", f.Version)
			}
			removed, err := s.Remove(RemoveOptions{Stale: true, UKI: readUKI})
			if err != nil {
				t.Fatal(err)
			}
			if gone := slices.Contains(removed, f.File); gone != tc.removed {
				t.Errorf("removed %v, want %s removed: %v", removed, f.Name, tc.removed)
			}
			if _, err := os.Stat(f.File); os.IsNotExist(err) != tc.removed {
				t.Errorf("%s there after remove: %v", f.Name, err)
			}
			for n := range tc.files {
				if _, err := os.Lstat(filepath.Join(dir, n)); err != nil && !strings.HasSuffix(n, UKISuffix) {
					t.Errorf("%s (not a rescue UKI) removed", n)
				}
			}
		})
	}
}

// TestWriteUKIRemoveAcrossTokens: WriteUKI records the token and removes
// the rescue UKI of the same kernel under an older token of this
// installation, never another installation's nor one of another kernel;
// Remove --kver takes the rescue UKIs of the kernel under every token of
// this installation (machine ID changed since), and not without UKI.
func TestWriteUKIRemoveAcrossTokens(t *testing.T) {
	const a, b, other = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccc"
	s, dir, img := ukiTree(t, map[string]string{a + "-" + kver + ".efi": "x", b + "-" + kver + ".efi": "x", other + "-" + kver + ".efi": "x",
		UKIName(a, kver): "uki", UKIName(other, kver): "uki"})
	if _, err := s.WriteUKI(a, kver, readUKI); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ token, version, want string }{
		{b, kver, "no such file"},
		{"a/b", kver, "entry token"},
		{a, "../x", "kernel version"},
		{a, "6.2.0-1-amd64", "no such file"},
	} {
		if _, err := s.WriteUKI(tc.token, tc.version, readUKI); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteUKI(%q, %q): %v, want %q", tc.token, tc.version, err, tc.want)
		}
	}
	// A rescue UKI that says another version than its name is refused.
	os.WriteFile(filepath.Join(dir, UKIName(b, "6.2.0-1-amd64")), img, 0o600)
	if _, err := s.WriteUKI(b, "6.2.0-1-amd64", readUKI); err == nil || !strings.Contains(err.Error(), "carries kernel") {
		t.Errorf("version mismatch: %v", err)
	}
	os.Remove(filepath.Join(dir, UKIName(b, "6.2.0-1-amd64")))
	// The machine ID changes to b: the add under b removes a's.
	os.WriteFile(filepath.Join(dir, UKIName(b, kver)), img, 0o600)
	res, err := s.WriteUKI(b, kver, readUKI)
	if err != nil || !slices.Equal(res.Removed, []string{filepath.Join(dir, UKIName(a, kver))}) {
		t.Fatalf("WriteUKI under the new token: %v, removed %v", err, res.Removed)
	}
	// Without a new add: a's comes back (an older build), the kernel goes.
	os.WriteFile(filepath.Join(dir, UKIName(a, kver)), img, 0o600)
	if removed, err := s.Remove(RemoveOptions{Version: kver}); err != nil || len(removed) != 0 {
		t.Errorf("Remove without UKI: %v %v", removed, err)
	}
	removed, err := s.Remove(RemoveOptions{Version: kver, Images: true, UKI: readUKI})
	slices.Sort(removed)
	if want := []string{filepath.Join(dir, UKIName(a, kver)), filepath.Join(dir, UKIName(b, kver))}; err != nil || !slices.Equal(removed, want) {
		t.Errorf("Remove --kver: %v %v, want %v", removed, err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, UKIName(other, kver))); err != nil {
		t.Errorf("another installation's rescue UKI removed: %v", err)
	}
}
