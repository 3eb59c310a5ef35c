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
		{"hooks", "hooks = no\n", []string{"hooks=false"}, ""},
		{"booleans in every spelling", "hooks = yes # on\nhooks=No\nhooks = FALSE\nallow-missing = on\nallow-missing=0\nhooks\t=\tTrue\t# x\n",
			[]string{"hooks=true", "hooks=false", "hooks=false", "allow-missing=true", "allow-missing=false", "hooks=true"}, ""},
		{"comment after a value", "compress = xz # small\nadd = smartctl\t#disks\n", []string{"compress=xz", "add=smartctl"}, ""},
		{"# inside a value", "include = /etc/a#b:/c\n", []string{"include=/etc/a#b:/c"}, ""},
		{"indented comment", "   # add = x\n", nil, ""},
		{"bad hooks", "hooks = maybe\n", nil, `f.conf:1: hooks: "maybe" is not a boolean`},
		{"bad bool", "\nallow-missing = sure\n", nil, "f.conf:2: allow-missing"},
		{"bad int", "level = high\n", nil, `f.conf:1: level: "high" is not a whole number`},
		{"no value", "add =\n", nil, "f.conf:1: add has no value"},
		{"only a comment as value", "add = # x\n", nil, "add has no value"},
		{"dry-run", "# c\ndry-run = true\n", nil, `f.conf:2: "dry-run" cannot be set in a configuration file, only on the command line`},
		{"force", "force = yes\n", nil, `"force" cannot be set`},
		{"output", "output = /boot/x.img\n", nil, `"output" cannot be set`},
		{"input", "input = /boot/x.img\n", nil, `"input" cannot be set`},
		{"kver", "kver = 6.1\n", nil, `"kver" cannot be set`},
		{"unknown", "colour = blue\n", nil, `f.conf:1: unknown key "colour"`},
		{"key case", "Hooks = no\n", nil, `unknown key "Hooks"`},
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
	os.WriteFile(main, []byte("preset = none\nadd = a\nhooks = off\n"), 0o644)
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
	for key, want := range map[string]string{"add": "a b c", "preset": "rescue", "hooks": "false", "compress": ""} {
		if got, err := c.Effective(key); err != nil || strings.Join(got, " ") != want {
			t.Errorf("Effective(%s) = %q, %v; want %q", key, got, err, want)
		}
	}
	if _, err := c.Effective("output"); err == nil {
		t.Error("Effective(output): no error")
	}
	// Nothing there: no settings, no error; hooks default on.
	if c, err := Load("", filepath.Join(dir, "none.d")); err != nil {
		t.Fatal(err)
	} else if got, _ := c.Effective("hooks"); len(got) != 1 || got[0] != "true" {
		t.Errorf("default hooks = %q", got)
	}
	// A FIFO or directory as configuration is refused, never read.
	if _, err := Load(dropIn, ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as file: %v", err)
	}
	if c, err := Load(filepath.Join(dir, "none.conf"), filepath.Join(dir, "none.d")); err != nil || len(c.Settings) != 0 {
		t.Errorf("missing files: %v %v", c, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("add = mdadm\n# c\ninclude = /etc/x:/y\nhooks = yes\n"))
	f.Add([]byte("hooks = No # off\ncompress = xz\t# small\nlevel = 3\ndry-run = true\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse("fuzz.conf", b)
		if err != nil {
			return
		}
		for _, x := range s {
			if x.Key == "" || strings.ContainsAny(x.Key, " \t\n") || strings.ContainsAny(x.Value, "\n") {
				t.Fatalf("bad setting %+v", x)
			}
			if x.Value == "" || x.Value != strings.TrimSpace(x.Value) {
				t.Fatalf("empty or untrimmed value %q", x.Value)
			}
			k, ok := Lookup(x.Key)
			if !ok {
				t.Fatalf("key %q accepted but not in Keys", x.Key)
			}
			if k.Kind == Bool && x.Value != "true" && x.Value != "false" {
				t.Fatalf("boolean %s not normalised: %q", x.Key, x.Value)
			}
			if strings.Contains(x.Value, " #") || strings.Contains(x.Value, "\t#") {
				t.Fatalf("comment left in value %q", x.Value)
			}
		}
	})
}
