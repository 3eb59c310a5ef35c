package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/testtool"
)

// TestHookConfig runs the hook library's configuration reader with the
// shells the hooks meet (dash is Debian's /bin/sh, busybox sh an initrd's):
// `hooks = no` turns the hooks off, drop-ins are read after the main file
// in lexical order, and the last line wins.
func TestHookConfig(t *testing.T) {
	tests := []struct {
		name  string
		main  string
		dropd map[string]string
		on    bool
	}{
		{"no configuration", "", nil, true},
		{"off", "hooks = no\n", nil, false},
		{"off, no blanks", "hooks=no\n", nil, false},
		{"off, indented with a comment", "  hooks\t=  no   # for now\n", nil, false},
		{"commented out", "# hooks = no\n", nil, true},
		{"other keys", "compress = xz\npreset = rescue\n", nil, true},
		{"last line wins", "hooks = no\nhooks = yes\n", nil, true},
		{"drop-in turns off", "hooks = yes\n", map[string]string{"50-x.conf": "hooks = no\n"}, false},
		{"drop-in turns on", "hooks = no\n", map[string]string{"90-on.conf": "hooks = yes\n"}, true},
		{"drop-ins in lexical order", "", map[string]string{"10-a.conf": "hooks = yes\n", "20-b.conf": "hooks = no\n"}, false},
		{"not a .conf drop-in", "", map[string]string{"50-x.conf.disabled": "hooks = no\n"}, true},
		{"a key that only starts with hooks", "hooksfoo = no\n", nil, true},
	}
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
				err := exec.Command(shell, args...).Run()
				if on := err == nil; on != tc.on {
					t.Fatalf("hooks enabled = %v (%v), want %v", on, err, tc.on)
				}
			})
		}
	}
}
