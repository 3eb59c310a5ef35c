package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildSignFlags: the flags for a UKI input are refused with an initrd.
func TestBuildSignFlags(t *testing.T) {
	img := smallImage(t)
	out := filepath.Join(t.TempDir(), "out.img")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sign-key", "k", "--sign-cert", "c"}, "--sign-key is for a unified kernel image"},
		{[]string{"--format", "uki"}, "--format is for a unified kernel image"},
		{[]string{"--linux-output", "linux"}, "--linux-output is for a unified kernel image"},
	} {
		code, _, errs := cli(t, append([]string{"build", "-q", "--input", img, "--output", out}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, errs)
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("an output was written")
		}
	}
	// In the configuration they sign the UKIs among the builds: an initrd
	// builds as before.
	conf := filepath.Join(t.TempDir(), "initrd-remix.conf")
	os.WriteFile(conf, []byte("sign-key = /nonexistent/db.key\nsign-cert = /nonexistent/db.crt\n"), 0o644)
	if code, _, errs := cli(t, "build", "--dry-run", "--config", conf, "--input", img, "--output", out); code != exitOK {
		t.Errorf("initrd with signing configured: exit %d: %s", code, errs)
	}
}
