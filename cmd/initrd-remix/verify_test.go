package main

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
)

// dynamicProgram returns a dynamically linked program of this machine.
func dynamicProgram(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{"/usr/bin/true", "/bin/true"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		libs, _ := f.ImportedLibraries()
		f.Close()
		if len(libs) > 0 {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	testtool.Missing(t, "no dynamically linked true(1) on this machine")
	return nil
}

func TestVerifyCommand(t *testing.T) {
	prog := dynamicProgram(t)
	dir := t.TempDir()
	d := imagetest.Dir
	broken := filepath.Join(dir, "broken.img")
	os.WriteFile(broken, imagetest.Archive(t, d("."), d("usr"), d("usr/bin"),
		imagetest.File("usr/bin/true", 0o755, string(prog)),
		imagetest.Symlink("usr/bin/gone", "nothere"),
		imagetest.Symlink("usr/bin/mask", "/dev/null")), 0o644)
	clean := filepath.Join(dir, "clean.img")
	os.WriteFile(clean, imagetest.Archive(t, d("."), d("etc"), imagetest.File("etc/hostname", 0o644, "rescue\n")), 0o644)
	garbage := filepath.Join(dir, "garbage.img")
	os.WriteFile(garbage, []byte("this is not an initrd\n"), 0o644)

	code, out, errs := cli(t, "verify", broken)
	if code != exitVerify || !strings.Contains(out, "usr/bin/true: libc.so.6 not found") || !strings.Contains(out, "dangling: /usr/bin/gone") || strings.Contains(out, "mask") {
		t.Errorf("broken: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli(t, "verify", "--json", broken)
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.OK || rep.Errors == 0 || rep.Warnings != 2 || code != exitVerify {
		t.Errorf("broken --json: exit %d, %+v, %v", code, rep, err)
	}
	if code, out, errs := cli(t, "verify", clean); code != exitOK || !strings.Contains(out, "0 errors, 1 warnings") || !strings.Contains(out, "not an initrd-remix rescue image") {
		t.Errorf("clean: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := cli(t, "verify", garbage); code != exitFailed {
		t.Errorf("garbage: exit %d %s", code, errs)
	}
	if code, _, _ := cli(t, "verify", filepath.Join(dir, "nothere.img")); code != exitFailed {
		t.Errorf("missing file: exit %d", code)
	}
	if code, _, _ := cli(t, "verify"); code != exitUsage {
		t.Errorf("no argument: exit %d", code)
	}
}

// TestVerifyLab runs verify on one lab image of each generator family
// (the format checks of every codec are remix's lab tests): each must pass.
func TestVerifyLab(t *testing.T) {
	lab := testtool.OpenLab(t)
	for _, name := range []string{"itools-zstd", "dracut-sd-zstd", "dracut-nosd-gzip"} {
		img := lab.Image(t, name).Path
		t.Run(filepath.Base(img), func(t *testing.T) {
			t.Parallel()
			if code, out, errs := cli(t, "verify", img); code != exitOK {
				t.Errorf("exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

// TestVerifyXZCheck: the kernel's xz decoder implements CRC32 (and no
// check) only; xz's own default, CRC64, reads fine here but fails at boot.
func TestVerifyXZCheck(t *testing.T) {
	testtool.Require(t, "xz")
	dir := t.TempDir()
	d := imagetest.Dir
	archive := imagetest.Archive(t, d("."), d("etc"), imagetest.File("etc/hostname", 0o644, "rescue\n"))
	for _, tc := range []struct {
		check string
		code  int
	}{{"crc32", exitOK}, {"crc64", exitVerify}, {"sha256", exitVerify}} {
		img := filepath.Join(dir, tc.check+".img")
		cmd := exec.Command("xz", "--format=xz", "--check="+tc.check, "-c")
		cmd.Stdin = strings.NewReader(string(archive))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(img, out, 0o644)
		code, stdout, errs := cli(t, "verify", img)
		if code != tc.code || (tc.code != exitOK && !strings.Contains(stdout, "accepts only CRC32")) {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.check, code, tc.code, stdout, errs)
		}
	}
}
