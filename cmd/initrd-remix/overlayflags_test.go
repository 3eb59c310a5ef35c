package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/spf13/pflag"
)

func TestOverlayFlags(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "initrd-remix.conf")
	dropIn := filepath.Join(dir, "conf.d")
	os.MkdirAll(dropIn, 0o755)
	os.WriteFile(conf, []byte("# site settings\npreset = none\nadd = mdadm\nallow-missing = true\nhooks = no\ncompress = xz\n"), 0o644)
	os.WriteFile(filepath.Join(dropIn, "50-lvm.conf"), []byte("add = lvm\nmodule = dm_mod\n"), 0o644)
	for _, c := range []struct {
		name    string
		args    []string
		add     []string
		preset  string
		allow   bool
		compr   string
		wantErr string
		conf    string
	}{
		{"config only", nil, []string{"mdadm", "lvm"}, "none", true, "xz", "", ""},
		{"flags override", []string{"--preset=rescue", "--add=parted", "--compress=zstd"}, []string{"mdadm", "lvm", "parted"}, "rescue", true, "zstd", "", ""},
		{"no config", []string{"--config=", "--config-dir="}, nil, "rescue", false, "gzip", "", ""},
		{"unknown key", nil, nil, "", false, "", "unknown key \"colour\"", "colour = blue\n"},
		{"bad bool", nil, nil, "", false, "", `bad.conf:1: allow-missing: "maybe" is not a boolean`, "allow-missing = maybe\n"},
		// The configuration the hooks accept, build accepts (issue 16, point 5).
		{"comments and booleans", nil, []string{"mdadm"}, "rescue", true, "xz", "", "hooks = yes # on\ncompress = xz # small\nallow-missing = Yes\nadd = mdadm\t# disks\n"},
		{"hooks=No", nil, nil, "rescue", false, "gzip", "", "hooks=No\nallow-missing = off\n"},
		{"dry-run", nil, nil, "", false, "", `bad.conf:2: "dry-run" cannot be set in a configuration file`, "hooks = false\ndry-run = true\n"},
		{"force", nil, nil, "", false, "", `bad.conf:1: "force" cannot be set`, "force = yes\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--config=" + conf, "--config-dir=" + dropIn}, c.args...)
			if c.conf != "" {
				bad := filepath.Join(t.TempDir(), "bad.conf")
				os.WriteFile(bad, []byte(c.conf), 0o644)
				args = []string{"--config=" + bad, "--config-dir="}
			}
			var compress *string
			opts, err := parseOverlayFlags(t, args, func(fs *pflag.FlagSet) { compress = fs.String("compress", "gzip", "") })
			if !wantError(t, err, c.wantErr) {
				return
			}
			if !reflect.DeepEqual(opts.Add, c.add) && !(len(opts.Add) == 0 && len(c.add) == 0) {
				t.Errorf("add = %q, want %q", opts.Add, c.add)
			}
			if opts.Preset != c.preset || opts.AllowMissing != c.allow || *compress != c.compr {
				t.Errorf("preset %q allow-missing %v compress %q, want %q %v %q", opts.Preset, opts.AllowMissing, *compress, c.preset, c.allow, c.compr)
			}
		})
	}
}

// TestDriversFlags: --drivers left at its default is nil (lenient); given
// on the command line or in a file it is an explicit list; omit-module
// accumulates from the files and the flags; bad values name where they
// come from.
func TestDriversFlags(t *testing.T) {
	for _, c := range []struct {
		name    string
		conf    string
		args    []string
		drivers []string // nil: the default
		omit    []string
		wantErr string
	}{
		{"default", "", nil, nil, nil, ""},
		{"flag", "", []string{"--drivers=net,storage"}, []string{"storage", "net"}, nil, ""},
		{"flag none", "", []string{"--drivers=none"}, []string{}, nil, ""},
		{"flag all", "", []string{"--drivers", "all"}, []string{"storage", "fs", "net", "input"}, nil, ""},
		{"config", "drivers = fs\nomit-module = mpt3sas\n", []string{"--omit-module=*hid"}, []string{"fs"}, []string{"mpt3sas", "*hid"}, ""},
		{"flag overrides config", "drivers = fs\n", []string{"--drivers=input"}, []string{"input"}, nil, ""},
		{"bad flag", "", []string{"--drivers=gpu"}, nil, nil, `--drivers "gpu": unknown class "gpu"`},
		{"bad config", "hooks = yes\ndrivers = wifi\n", nil, nil, nil, `bad.conf:2: --drivers "wifi": unknown class "wifi"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "bad.conf")
			os.WriteFile(conf, []byte(c.conf), 0o644)
			opts, err := parseOverlayFlags(t, append([]string{"--config=" + conf, "--config-dir="}, c.args...), nil)
			if !wantError(t, err, c.wantErr) {
				return
			}
			if !reflect.DeepEqual(opts.Drivers, c.drivers) || (opts.Drivers == nil) != (c.drivers == nil) {
				t.Errorf("drivers %#v, want %#v", opts.Drivers, c.drivers)
			}
			if !reflect.DeepEqual(opts.OmitModules, c.omit) && !(len(opts.OmitModules) == 0 && len(c.omit) == 0) {
				t.Errorf("omit-module %q, want %q", opts.OmitModules, c.omit)
			}
		})
	}
}

// parseOverlayFlags parses args with build's overlay flags (and those
// more registers) and merges the configuration they name.
func parseOverlayFlags(t *testing.T, args []string, more func(*pflag.FlagSet)) (overlay.Options, error) {
	t.Helper()
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	if more != nil {
		more(fs)
	}
	of := addOverlayFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return of.options()
}

// wantError checks err against a wanted error text ("": none) and reports
// whether the test goes on to check a result.
func wantError(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("got %v, want %q", err, want)
	case want == "" && err != nil:
		t.Fatal(err)
	}
	return want == ""
}
