package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuildOutputMode: a rescue image is never readable by other users
// (issue 16, point 1). It is 0600, or the input's bits where they are
// stricter, whatever the input's mode; an older, wider rescue image is
// replaced by a private one.
func TestBuildOutputMode(t *testing.T) {
	img := smallImage(t)
	for _, tc := range []struct{ in, want os.FileMode }{
		{0o644, 0o600}, {0o755, 0o600}, {0o640, 0o600}, {0o400, 0o400},
	} {
		t.Run(tc.in.String(), func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "initrd.img-6.1.0-9-amd64")
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(in, data, 0o600)
			os.Chmod(in, tc.in)
			out := filepath.Join(dir, "initrd-remix-rescue-6.1.0-9-amd64.img")
			for i := 0; i < 2; i++ { // the second build replaces the first
				if code, _, errs := cli(t, "build", "--quiet", "--config", "", "--config-dir", "", "--input", in); code != exitOK {
					t.Fatalf("exit %d: %s", code, errs)
				}
				st, err := os.Stat(out)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != tc.want {
					t.Fatalf("input %v: output %v, want %v", tc.in, st.Mode().Perm(), tc.want)
				}
				os.Chmod(out, 0o644)
			}
		})
	}
}
