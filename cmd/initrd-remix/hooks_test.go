package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/testtool"
)

// hookBin builds the binary once for the hook tests and returns the
// directory holding it, for PATH: a hook not installed by make takes
// initrd-remix from PATH.
var hookBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "initrd-remix-hooktest-")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "initrd-remix"), ".").CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return dir, nil
})

func hookPath(t *testing.T) string {
	t.Helper()
	testtool.Require(t, "go")
	dir, err := hookBin()
	if err != nil {
		t.Fatalf("go build: %v", err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// TestHookConfig runs the hook library's configuration check with the
// shells the hooks meet (dash is Debian's /bin/sh, busybox sh an initrd's):
// the hooks ask the binary, so they read the configuration exactly as
// build does (issue 16, point 5): comments after values, booleans in every
// usual spelling, drop-ins after the main file in lexical order, the last
// line wins, and a configuration build would refuse keeps the hooks off
// with a message naming the file and line.
func TestHookConfig(t *testing.T) {
	tests := []struct {
		name  string
		main  string
		dropd map[string]string
		on    bool
		warn  string
	}{
		{"no configuration", "", nil, true, ""},
		{"off", "hooks = no\n", nil, false, ""},
		{"off, no blanks", "hooks=no\n", nil, false, ""},
		{"off, indented with a comment", "  hooks\t=  no   # for now\n", nil, false, ""},
		{"on with a comment", "hooks = yes # on\n", nil, true, ""},
		{"false", "hooks = false\n", nil, false, ""},
		{"No", "hooks=No\n", nil, false, ""},
		{"OFF", "hooks = OFF\n", nil, false, ""},
		{"0", "hooks = 0\n", nil, false, ""},
		{"commented out", "# hooks = no\n", nil, true, ""},
		{"other keys with comments", "compress = xz # small\npreset = rescue\n", nil, true, ""},
		{"last line wins", "hooks = no\nhooks = yes\n", nil, true, ""},
		{"drop-in turns off", "hooks = yes\n", map[string]string{"50-x.conf": "hooks = no\n"}, false, ""},
		{"drop-in turns on", "hooks = no\n", map[string]string{"90-on.conf": "hooks = yes\n"}, true, ""},
		{"drop-ins in lexical order", "", map[string]string{"10-a.conf": "hooks = yes\n", "20-b.conf": "hooks = no\n"}, false, ""},
		{"not a .conf drop-in", "", map[string]string{"50-x.conf.disabled": "hooks = no\n"}, true, ""},
		{"a key that only starts with hooks", "hooksfoo = no\n", nil, false, `initrd-remix.conf:1: unknown key "hooksfoo"`},
		{"dry-run", "hooks = yes\ndry-run = true\n", nil, false, `initrd-remix.conf:2: "dry-run" cannot be set in a configuration file`},
		{"output in a drop-in", "", map[string]string{"50-x.conf": "\noutput = /boot/x.img\n"}, false, `50-x.conf:2: "output" cannot be set`},
		{"bad boolean", "hooks = maybe\n", nil, false, `initrd-remix.conf:1: hooks: "maybe" is not a boolean`},
	}
	path := hookPath(t)
	for _, shell := range []string{"dash", "busybox"} {
		testtool.Require(t, shell)
		for _, tc := range tests {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				if tc.main != "" {
					os.WriteFile(filepath.Join(dir, "initrd-remix.conf"), []byte(tc.main), 0o644)
				}
				os.Mkdir(filepath.Join(dir, "conf.d"), 0o755)
				for n, c := range tc.dropd {
					os.WriteFile(filepath.Join(dir, "conf.d", n), []byte(c), 0o644)
				}
				args := []string{"-c", `. ../../scripts/lib/hooks.sh; IR_CONF=$1/initrd-remix.conf IR_CONF_D=$1/conf.d; ir_hooks_enabled`, "sh", dir}
				if shell == "busybox" {
					args = append([]string{"sh"}, args...)
				}
				cmd := exec.Command(shell, args...)
				cmd.Env = append(os.Environ(), "PATH="+path)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err := cmd.Run()
				if on := err == nil; on != tc.on {
					t.Fatalf("hooks enabled = %v (%v, %s), want %v", on, err, stderr.String(), tc.on)
				}
				if tc.warn == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.warn) {
					t.Fatalf("stderr %q, want %q", stderr.String(), tc.warn)
				}
			})
		}
	}
}
