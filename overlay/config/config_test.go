package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string // key=value
		err      string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# x\n\n   # y\n", nil, ""},
		{"pairs", "add = mdadm\nadd=lvm\n  preset =  rescue  \n", []string{"add=mdadm", "add=lvm", "preset=rescue"}, ""},
		{"value with =", "include = /a=b:/c\n", []string{"include=/a=b:/c"}, ""},
		{"hooks", "hooks = no\n", []string{"hooks=no"}, ""},
		{"bad hooks", "hooks = maybe\n", nil, "hooks must be yes or no"},
		{"no equals", "add mdadm\n", nil, `:1: want "key = value"`},
		{"dashes", "--add = x\n", nil, "bad key"},
		{"space in key", "allow missing = yes\n", nil, "bad key"},
		{"empty key", " = x\n", nil, "bad key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse("f.conf", []byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want error %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kv []string
			for _, s := range got {
				kv = append(kv, s.Key+"="+s.Value)
			}
			if !reflect.DeepEqual(kv, c.want) {
				t.Fatalf("got %q, want %q", kv, c.want)
			}
		})
	}
}

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "initrd-remix.conf")
	dropIn := filepath.Join(dir, "conf.d")
	os.MkdirAll(dropIn, 0o755)
	os.WriteFile(main, []byte("preset = none\nadd = a\n"), 0o644)
	os.WriteFile(filepath.Join(dropIn, "20-b.conf"), []byte("add = c\npreset = rescue\n"), 0o644)
	os.WriteFile(filepath.Join(dropIn, "10-a.conf"), []byte("add = b\n"), 0o644)
	os.WriteFile(filepath.Join(dropIn, "ignored.txt"), []byte("garbage\n"), 0o644)
	c, err := Load(main, dropIn)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Values("add"); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("add = %q", got)
	}
	if s, _ := c.Value("preset"); s.Value != "rescue" || !strings.HasSuffix(s.File, "20-b.conf") || s.Line != 2 {
		t.Errorf("preset = %+v", s)
	}
	if err := c.Check(func(k string) bool { return k == "add" }); err == nil || !strings.Contains(err.Error(), `initrd-remix.conf:1: unknown key "preset"`) {
		t.Errorf("Check: %v", err)
	}
	// Nothing there: no settings, no error.
	if c, err := Load(filepath.Join(dir, "none.conf"), filepath.Join(dir, "none.d")); err != nil || len(c.Settings) != 0 {
		t.Errorf("missing files: %v %v", c, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("add = mdadm\n# c\ninclude = /etc/x:/y\nhooks = yes\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse("fuzz.conf", b)
		if err != nil {
			return
		}
		for _, x := range s {
			if x.Key == "" || strings.ContainsAny(x.Key, " \t\n") || strings.ContainsAny(x.Value, "\n") {
				t.Fatalf("bad setting %+v", x)
			}
			if x.Value != strings.TrimSpace(x.Value) {
				t.Fatalf("untrimmed value %q", x.Value)
			}
		}
	})
}
