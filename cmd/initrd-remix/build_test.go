package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/strip"
)

// mkinitcpioImage is a small initrd laid out like Arch's mkinitcpio.
func mkinitcpioImage(t *testing.T) string {
	t.Helper()
	d := imagetest.Dir
	f := func(n, body string) imagetest.Entry { return imagetest.File(n, 0o755, body) }
	main := imagetest.Archive(t, d("."), f("init", "#!/usr/bin/ash\n"), f("init_functions", "x\n"), d("hooks"), f("hooks/udev", "x\n"), f("config", "HOOKS=\n"))
	p := filepath.Join(t.TempDir(), "initramfs-linux.img")
	if err := os.WriteFile(p, imagetest.Compress(t, codec.Gzip, main), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestBuildRefusals covers issue 3 point 8: each bad input gets a clear
// error and a non-zero exit, no output file appears and the input is
// untouched.
func TestBuildRefusals(t *testing.T) {
	img := smallImage(t)
	dir := t.TempDir()
	notInitrd := filepath.Join(dir, "vmlinuz")
	os.WriteFile(notInitrd, []byte("MZ\x90\x00this is a kernel, not an initrd"), 0o644)
	arch := mkinitcpioImage(t)
	noExec := filepath.Join(dir, "payload.sh")
	os.WriteFile(noExec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	existing := filepath.Join(dir, "precious.img")
	os.WriteFile(existing, []byte("not ours"), 0o644)
	before := fileSum(t, img)
	tests := []struct {
		name   string
		args   []string
		code   int
		want   string
		output string
	}{
		{"not an initrd", []string{"--input", notInitrd, "--output", filepath.Join(dir, "o1")}, exitFailed, "unknown magic", "o1"},
		{"unknown generator", []string{"--input", arch, "--output", filepath.Join(dir, "o2")}, exitFailed, `unsupported initrd generator "mkinitcpio"`, "o2"},
		{"payload not executable", []string{"--input", img, "--output", filepath.Join(dir, "o3"), "--run", noExec}, exitFailed, "not executable", "o3"},
		{"payload missing", []string{"--input", img, "--output", filepath.Join(dir, "o4"), "--run", filepath.Join(dir, "nope.sh")}, exitFailed, "no such file", "o4"},
		{"output dir not writable", []string{"--input", img, "--output", filepath.Join(dir, "nodir/o5")}, exitFailed, "no such file", "nodir/o5"},
		{"output is the input", []string{"--input", img, "--output", img, "--force"}, exitUsage, "never replaces the distribution's initrd", ""},
		{"output exists", []string{"--input", img, "--output", existing}, exitUsage, "pass --force", ""},
		{"wrong kernel", []string{"--input", img, "--output", filepath.Join(dir, "o6"), "--kver", "5.10.0-1-amd64"}, exitFailed, "not for --kver 5.10.0-1-amd64", "o6"},
		{"no initrd in root", []string{"--root", dir, "--kver", "6.1.0-9-amd64"}, exitFailed, "initrd.img-6.1.0-9-amd64", ""},
		{"arguments", []string{"build", img}, exitUsage, "takes no arguments", ""},
		{"bad mode", []string{"--input", img, "--mode", "sideways"}, exitUsage, "--mode", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] != "build" {
				args = append([]string{"build"}, args...)
			}
			code, _, errs := cli(t, args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.want)
			}
			if tc.output != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.output)); err == nil {
					t.Errorf("output %s exists after a failure", tc.output)
				}
			}
		})
	}
	if fileSum(t, img) != before {
		t.Error("the input changed")
	}
	if b, _ := os.ReadFile(existing); string(b) != "not ours" {
		t.Error("an existing file was overwritten without --force")
	}
	if code, _, errs := cli(t, "build", "--input", filepath.Join(ro, "x"), "--output", filepath.Join(ro, "o")); code == exitOK {
		t.Errorf("build into a read-only directory succeeded: %s", errs)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestBuildSmallImage builds the minimal initramfs-tools-like image in both
// modes, checks the default output name and the JSON plan, and that the
// output passes strip.Assert while the input is untouched.
func TestBuildSmallImage(t *testing.T) {
	img := smallImage(t)
	before := fileSum(t, img)
	payload := filepath.Join(t.TempDir(), "recover.sh")
	os.WriteFile(payload, []byte("#!/bin/sh\necho recovering\n"), 0o755)
	for _, mode := range []string{"append", "rewrite", ""} {
		t.Run("mode="+mode, func(t *testing.T) {
			args := []string{"build", "--json", "--input", img, "--run", payload, "--force"}
			if mode != "" {
				args = append(args, "--mode", mode)
			}
			code, out, errs := cli(t, args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rep struct {
				Output    string       `json:"output"`
				Kver      string       `json:"kver"`
				Generator string       `json:"generator"`
				Mode      string       `json:"mode"`
				Items     []strip.Item `json:"items"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := filepath.Join(filepath.Dir(img), "initrd-remix-rescue-6.1.0-9-amd64.img")
			if rep.Output != want || rep.Kver != "6.1.0-9-amd64" || rep.Generator != "initramfs-tools" {
				t.Fatalf("report %+v", rep)
			}
			if wantMode := map[string]string{"": "append"}[mode]; (wantMode != "" && rep.Mode != wantMode) || (mode != "" && rep.Mode != mode) {
				t.Errorf("mode %s, asked %q", rep.Mode, mode)
			}
			res, err := remix.Open(context.Background(), rep.Output, remix.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			if f := strip.Assert(res.Tree); len(f) != 0 {
				t.Fatalf("Assert: %v", f)
			}
			if n := res.Tree.Lookup(strip.Payload); n == nil || n.Inode.Mode&0o111 == 0 {
				t.Fatalf("payload missing or not executable: %+v", n)
			}
			if res.Tree.Lookup("dev/console") == nil || res.Tree.Lookup("kernel/x86/microcode/AuthenticAMD.bin") == nil {
				t.Error("the image lost entries")
			}
		})
	}
	if fileSum(t, img) != before {
		t.Error("the input changed")
	}
	// --dry-run writes nothing and lists the edits.
	out := filepath.Join(t.TempDir(), "dry.img")
	code, stdout, errs := cli(t, "build", "--dry-run", "--input", img, "--output", out)
	if code != exitOK || !strings.Contains(stdout, "neutralise script") || !strings.Contains(stdout, "scripts/local") || !strings.Contains(stdout, "add file") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--dry-run wrote the output")
	}
}
