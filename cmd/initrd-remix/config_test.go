package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCommand: "config get" prints what build reads (the hooks rely
// on it), and refuses what build refuses, naming the file and line.
func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "initrd-remix.conf")
	os.WriteFile(conf, []byte("hooks = No # off\ncompress = xz # small\nadd = a\nadd=b\n"), 0o644)
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("# x\ndry-run = true\n"), 0o644)
	none := []string{"--config-dir", filepath.Join(dir, "none.d")}
	tests := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{append([]string{"config", "get", "hooks", "--config", conf}, none...), exitOK, "false\n", ""},
		{append([]string{"config", "get", "compress", "--config", conf}, none...), exitOK, "xz\n", ""},
		{append([]string{"config", "get", "add", "--config", conf}, none...), exitOK, "a\nb\n", ""},
		{append([]string{"config", "get", "preset", "--config", conf}, none...), exitOK, "", ""},
		{append([]string{"config", "get", "hooks", "--config", ""}, none...), exitOK, "true\n", ""},
		{append([]string{"config", "check", "--config", conf}, none...), exitOK, "hooks = false\t# " + conf + ":1\n", ""},
		{append([]string{"config", "get", "hooks", "--config", bad}, none...), exitFailed, "", bad + `:2: "dry-run" cannot be set in a configuration file`},
		{[]string{"config", "get", "output"}, exitUsage, "", `"output" is not a configuration key`},
		{[]string{"config", "get"}, exitUsage, "", "takes 1 arguments"},
		{[]string{"config"}, exitUsage, "", "needs a subcommand"},
		{[]string{"config", "set"}, exitUsage, "", "unknown config subcommand"},
	}
	for _, tc := range tests {
		code, out, errs := cli(t, tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) || (tc.out == "" && out != "") || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d, %q, %q; want %d, %q, %q", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}
