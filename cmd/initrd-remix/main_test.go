package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// cli runs the command in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// smallImage is an early microcode archive plus a zstd main archive laid
// out like initramfs-tools' output.
func smallImage(t *testing.T) string {
	t.Helper()
	return smallImageWith(t, "6.1.0-9-amd64")
}

// smallImageWith is smallImage with the kernel modules of kver and extra
// entries at the end of the main archive.
func smallImageWith(t *testing.T, kver string, extra ...imagetest.Entry) string {
	t.Helper()
	d := imagetest.Dir
	f := func(n, body string) imagetest.Entry { return imagetest.File(n, 0o755, body) }
	early := imagetest.Archive(t, d("kernel"), d("kernel/x86"), d("kernel/x86/microcode"), f("kernel/x86/microcode/AuthenticAMD.bin", "ucode"))
	mainFiles := []imagetest.Entry{d("."), d("usr"), d("usr/lib"), imagetest.Symlink("lib", "usr/lib"),
		f("init", "#!/bin/sh\n"), d("conf"), f("conf/initramfs.conf", "MODULES=most\n"), d("scripts"), f("scripts/functions", "x\n"),
		d("lib/modules"), d("lib/modules/" + kver), f("lib/modules/"+kver+"/modules.dep", ""),
		d("dev"), imagetest.Entry{Name: "dev/console", Mode: newc.TypeChar | 0o600, RDev: [2]uint32{5, 1}}}
	main := imagetest.Archive(t, append(mainFiles, extra...)...)
	return imagetest.WriteImage(t, "initrd.img-6.1.0-9-amd64", early, imagetest.Compress(t, codec.Zstd, main))
}

func sum(t *testing.T, p string) [32]byte {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func TestInspectJSON(t *testing.T) {
	img := smallImage(t)
	code, out, errs := cli(t, "inspect", "--json", "--files", img)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		Segments []struct {
			Offset      int64  `json:"offset"`
			Length      int64  `json:"length"`
			Compression string `json:"compression"`
			Entries     int    `json:"entries"`
			Early       bool   `json:"early"`
		} `json:"segments"`
		Generator struct {
			Generator string   `json:"generator"`
			Evidence  []string `json:"evidence"`
		} `json:"generator"`
		KernelVersions []string `json:"kernel_versions"`
		Microcode      struct {
			Early   bool     `json:"early"`
			Vendors []string `json:"vendors"`
		} `json:"microcode"`
		Files []struct {
			Name      string `json:"name"`
			RDevMajor uint32 `json:"rdev_major"`
			Target    string `json:"target"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Segments) != 2 || rep.Segments[0].Compression != "none" || !rep.Segments[0].Early || rep.Segments[1].Compression != "zstd" || rep.Segments[1].Offset != rep.Segments[0].Length {
		t.Errorf("segments %+v", rep.Segments)
	}
	if rep.Generator.Generator != "initramfs-tools" || len(rep.Generator.Evidence) == 0 {
		t.Errorf("generator %+v", rep.Generator)
	}
	if len(rep.KernelVersions) != 1 || rep.KernelVersions[0] != "6.1.0-9-amd64" || !rep.Microcode.Early || rep.Microcode.Vendors[0] != "AuthenticAMD" {
		t.Errorf("kernel %v microcode %+v", rep.KernelVersions, rep.Microcode)
	}
	found := 0
	for _, f := range rep.Files {
		if f.Name == "dev/console" && f.RDevMajor == 5 || f.Name == "lib" && f.Target == "usr/lib" {
			found++
		}
	}
	if found != 2 {
		t.Errorf("--files lacks the console device or the lib link: %+v", rep.Files)
	}
	code, out, _ = cli(t, "inspect", img)
	if code != exitOK || !strings.Contains(out, "generator:  initramfs-tools") || !strings.Contains(out, "microcode:  early archive with AuthenticAMD") {
		t.Errorf("text output:\n%s", out)
	}
}

func TestRepackWritesAtomicallyAndNeverTouchesTheInput(t *testing.T) {
	img := smallImage(t)
	before := sum(t, img)
	out := filepath.Join(t.TempDir(), "out.img")
	code, stdout, errs := cli(t, "repack", "--json", "--compress", "xz", img, out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Mode        string `json:"mode"`
		Compression string `json:"compression"`
		NewEntries  int    `json:"new_entries"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Compression != "xz" || res.Mode != "rewrite" || res.NewEntries == 0 {
		t.Fatalf("result %+v %v: %s", res, err, stdout)
	}
	if sum(t, img) != before {
		t.Fatal("input changed")
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v, want the input's 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Fatalf("leftovers beside the output: %v", entries)
	}
}

func TestExitCodesAndRefusals(t *testing.T) {
	img := smallImage(t)
	dir := t.TempDir()
	notInitrd := filepath.Join(dir, "vmlinuz")
	os.WriteFile(notInitrd, []byte("MZ\x90\x00this is a kernel, not an initrd"), 0o644)
	truncated := filepath.Join(dir, "truncated.img")
	data, _ := os.ReadFile(img)
	os.WriteFile(truncated, data[:len(data)-9], 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command builds, here without an initrd", []string{"--root", dir, "--kver", "9.9.9"}, exitFailed, "no initrd for kernel 9.9.9"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"help", []string{"repack", "--help"}, exitOK, ""},
		{"unknown flag", []string{"inspect", "--bogus", img}, exitUsage, "unknown flag"},
		{"missing argument", []string{"inspect"}, exitUsage, "exactly one IMAGE"},
		{"unknown codec", []string{"repack", "--compress", "brotli", img, filepath.Join(dir, "o1")}, exitUsage, "unknown compression"},
		{"writing bzip2 is refused", []string{"repack", "--compress", "bzip2", img, filepath.Join(dir, "o2")}, exitFailed, "not supported"},
		{"output is the input", []string{"repack", img, img}, exitUsage, "is the input file"},
		{"not an initrd", []string{"repack", notInitrd, filepath.Join(dir, "o3")}, exitFailed, "unknown magic"},
		{"truncated", []string{"inspect", truncated}, exitFailed, "truncated.img"},
		{"missing input", []string{"inspect", filepath.Join(dir, "nope")}, exitFailed, "no such file"},
		{"unwritable output dir", []string{"repack", img, filepath.Join(dir, "no/such/dir/out")}, exitFailed, "no such file"},
		{"tiny size limit", []string{"inspect", "--max-size", "16", img}, exitFailed, "exceeds the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.want)
			}
		})
	}
	for _, o := range []string{"o1", "o2", "o3"} {
		if _, err := os.Stat(filepath.Join(dir, o)); err == nil {
			t.Errorf("output %s exists after a failure", o)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestRepackToTheInputWithForce(t *testing.T) {
	img := smallImage(t)
	if code, _, errs := cli(t, "repack", "--force", "-q", "--compress", "gzip", img, img); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, out, _ := cli(t, "inspect", "--json", img); code != exitOK || !strings.Contains(out, `"compression": "gzip"`) {
		t.Fatalf("forced in-place repack did not produce gzip: %s", out)
	}
}
