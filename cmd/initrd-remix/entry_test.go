package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entryRoot is a root with os-release, a machine ID, /etc/kernel/cmdline
// and kernel-install's entry directory holding a kernel and a rescue image.
func entryRoot(t *testing.T, machineID string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":                                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
		"etc/kernel/cmdline":                            "root=/dev/vda ro  rdinit=/bin/sh console=ttyS0\n",
		"boot/m/6.1.0-50-amd64/linux":                   "kernel",
		"boot/m/6.1.0-50-amd64/initrd-remix-rescue.img": "rescue",
	}
	if machineID != "" {
		files["etc/machine-id"] = machineID + "\n"
	}
	for p, c := range files {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestEntryCLI(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef"
	root := entryRoot(t, mid)
	write := []string{"entry", "write", "--root", root, "--kver", "6.1.0-50-amd64",
		"--linux", "/boot/m/6.1.0-50-amd64/linux", "--initrd", "/boot/m/6.1.0-50-amd64/initrd-remix-rescue.img"}
	code, out, errs := cli(t, append(write, "--json")...)
	if code != exitOK {
		t.Fatalf("write: exit %d: %s", code, errs)
	}
	var j entryJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	if j.File != filepath.Join(root, "boot/loader/entries", mid+"-6.1.0-50-amd64-initrd-remix-rescue.conf") ||
		j.Title != "Debian GNU/Linux 12 (bookworm), Linux 6.1.0-50-amd64, rescue (initrd-remix)" ||
		j.Options != "root=/dev/vda ro console=ttyS0" || j.MachineID != mid || j.SortKey != "debian-rescue" ||
		j.Linux != "/boot/m/6.1.0-50-amd64/linux" {
		t.Fatalf("write result %+v", j)
	}
	if code, out, errs := cli(t, "entry", "list", "--root", root, "--check"); code != exitOK || !strings.HasSuffix(out, "\tok\n") {
		t.Fatalf("list: exit %d: %s %s", code, out, errs)
	}
	os.Remove(filepath.Join(root, "boot/m/6.1.0-50-amd64/initrd-remix-rescue.img"))
	if code, out, _ := cli(t, "entry", "list", "--root", root, "--check"); code != exitFailed || !strings.Contains(out, "BROKEN") {
		t.Fatalf("list --check of a broken entry: exit %d: %s", code, out)
	}
	if code, out, errs := cli(t, "entry", "remove", "--root", root, "--stale", "--json"); code != exitOK || !strings.Contains(out, "initrd-remix-rescue.conf") {
		t.Fatalf("remove: exit %d: %s %s", code, out, errs)
	}
	if code, out, _ := cli(t, "entry", "list", "--root", root, "--json"); code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after remove: %d %s", code, out)
	}
	// write refuses a missing file and leaves nothing.
	if code, _, errs := cli(t, write...); code != exitFailed || !strings.Contains(errs, "missing file") {
		t.Fatalf("write of a missing image: exit %d: %s", code, errs)
	}
}

func TestEntryCLIErrors(t *testing.T) {
	root := entryRoot(t, "")
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"entry"}, exitUsage, "needs a subcommand"},
		{[]string{"entry", "frob"}, exitUsage, "unknown entry subcommand"},
		{[]string{"entry", "write", "--kver", "1"}, exitUsage, "needs --kver, --linux and --initrd"},
		{[]string{"entry", "remove", "--root", root}, exitUsage, "needs --kver or --stale"},
		{[]string{"entry", "list", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"entry", "write", "--root", root, "--kver", "6.1.0-50-amd64", "--linux", "/boot/m/6.1.0-50-amd64/linux",
			"--initrd", "/boot/m/6.1.0-50-amd64/initrd-remix-rescue.img"}, exitFailed, "no entry token"},
		{[]string{"entry", "write", "--uki", "--root", root, "--token", "m"}, exitUsage, "entry write --uki needs --kver"},
		{[]string{"entry", "write", "--uki", "--root", root, "--kver", "6.1.0-50-amd64", "--linux", "/boot/x"}, exitUsage, "takes no --linux"},
		{[]string{"entry", "write", "--uki", "--root", root, "--kver", "6.1.0-50-amd64"}, exitFailed, "no entry token"},
		{[]string{"entry", "write", "--uki", "--root", root, "--kver", "6.1.0-50-amd64", "--token", "m"}, exitFailed, "m-6.1.0-50-amd64_initrd-remix-rescue.efi: no such file"},
	}
	for _, tc := range tests {
		code, _, errs := cli(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	if code, out, _ := cli(t, "entry", "--help"); code != exitOK || !strings.Contains(out, "Examples:") {
		t.Errorf("entry --help: %d %s", code, out)
	}
}
