package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestCommitReplacesAndAbortLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.img")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		commit bool
		want   string
		mode   os.FileMode
	}{
		{"abort keeps the old file", false, "old", 0o600},
		{"commit replaces it", true, "new", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Create(target, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("new"); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(target); string(got) != "old" && !tc.commit {
				t.Fatalf("target changed before commit: %q", got)
			}
			if tc.commit {
				if err := f.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			f.Abort()
			got, err := os.ReadFile(target)
			if err != nil || string(got) != tc.want {
				t.Fatalf("target = %q, %v; want %q", got, err, tc.want)
			}
			st, _ := os.Stat(target)
			if st.Mode().Perm() != tc.mode {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), tc.mode)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("temporary files left behind: %v", entries)
			}
		})
	}
}

func TestCreateInMissingDirectoryFails(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "nope", "x"), 0o644); err == nil {
		t.Fatal("expected an error")
	}
}

// TestLargeWritesThroughEveryMethod: Write, WriteString and ReadFrom (used
// by io.Copy) all land in the file, past several writeback requests.
func TestLargeWritesThroughEveryMethod(t *testing.T) {
	target := filepath.Join(t.TempDir(), "big")
	f, err := Create(target, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	chunk := bytes.Repeat([]byte("initrd-remix "), 1<<20) // 13 MiB
	var want bytes.Buffer
	if _, err := f.Write(chunk); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk)
	if _, err := f.WriteString(string(chunk[:5<<20])); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk[:5<<20])
	if _, err := io.Copy(f, bytes.NewReader(chunk)); err != nil {
		t.Fatal(err)
	}
	want.Write(chunk)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the file holds %d bytes, %d were written (%v)", len(got), want.Len(), err)
	}
}
