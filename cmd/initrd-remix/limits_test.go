package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimits: every command that reads an image takes both limits, says
// which flag raises the one an image ran into, refuses a size that does not
// fit instead of falling back to the default, and an image that cannot be
// read is bad input (exit 1) for verify as for the others.
func TestLimits(t *testing.T) {
	img := smallImage(t) // 16 entries: about 17 KiB of metadata
	dir := t.TempDir()
	out := filepath.Join(dir, "out.img")
	garbage := filepath.Join(dir, "garbage.img")
	os.WriteFile(garbage, []byte("this is not an initrd\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"size overflows 64 bits", []string{"inspect", "--max-size", "8388608T", img}, exitUsage, "too large"},
		{"metadata overflows 64 bits", []string{"repack", "--max-metadata", "9223372036854775808", img, out}, exitUsage, "too large"},
		{"inspect over the metadata limit", []string{"inspect", "--max-metadata", "4K", img}, exitFailed, "raise the limit with --max-metadata"},
		{"repack over the metadata limit", []string{"repack", "--max-metadata", "4K", img, out}, exitFailed, "raise the limit with --max-metadata"},
		{"build over the metadata limit", []string{"build", "--input", img, "--output", out, "--max-metadata", "4K"}, exitFailed, "raise the limit with --max-metadata"},
		{"verify over the metadata limit", []string{"verify", "--max-metadata", "4K", img}, exitFailed, "raise the limit with --max-metadata"},
		{"over the size limit", []string{"verify", "--max-size", "1K", img}, exitFailed, "raise the limit with --max-size"},
		{"verify of an unreadable input", []string{"verify", garbage}, exitFailed, "unknown magic"},
		{"within both limits", []string{"inspect", "--max-metadata", "64K", "--max-size", "1M", img}, exitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left beside the output: %v", entries)
	}
}
