package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/strip"
)

func TestRescueCmdline(t *testing.T) {
	off := strip.StorageOffArgs
	for _, tc := range []struct{ in, want string }{
		{"console=ttyS0 root=/dev/vda rw", "console=ttyS0 " + off},
		{"root=UUID=x ro quiet splash rd.luks.uuid=abc rd.lvm.lv=vg/root resume=/dev/sda2 rootflags=subvol=@", "quiet splash " + off},
		{"init=/bin/sh rdinit=/x systemd.unit=rescue.target console=tty0 -- single", "console=tty0 " + off},
		{"", off},
		{"mount.usr=/dev/vg/usr rd.md.uuid=1 rd.auto=1 systemd.volatile=yes net.ifnames=0", "net.ifnames=0 " + off},
	} {
		if got := rescueCmdline(tc.in); got != tc.want {
			t.Errorf("rescueCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRescueOSRelease(t *testing.T) {
	for _, tc := range []struct{ in, pretty, imageID string }{
		{"NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n", "Debian GNU/Linux 13 (trixie) (initrd-remix rescue)", "debian-rescue"},
		{"NAME=Fedora\nID=fedora\nIMAGE_ID=workstation\n", "Fedora (initrd-remix rescue)", "workstation-rescue"},
		{"", "Linux (initrd-remix rescue)", "linux-rescue"},
	} {
		out := rescueOSRelease(tc.in)
		m := bootentry.ParseOSRelease([]byte(out))
		if m["PRETTY_NAME"] != tc.pretty || m["IMAGE_ID"] != tc.imageID {
			t.Errorf("rescueOSRelease(%q):\n%s\nPRETTY_NAME %q IMAGE_ID %q", tc.in, out, m["PRETTY_NAME"], m["IMAGE_ID"])
		}
		if strings.Count(out, "PRETTY_NAME=") != 1 || strings.Count(out, "IMAGE_ID=") != 1 {
			t.Errorf("duplicate keys:\n%s", out)
		}
	}
}

// TestOSRelQuote: os-release(5) values in double quotes escape ", \, $ and `.
func TestOSRelQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              `"plain"`,
		"it\"s $HOME `x` \\": "\"it\\\"s \\$HOME \\`x\\` \\\\\"",
		"two\nlines":         `"two lines"`,
	} {
		if got := osrelQuote(in); got != want {
			t.Errorf("osrelQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSecureBootOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"enabled", []byte{6, 0, 0, 0, 1}, true},
		{"disabled", []byte{6, 0, 0, 0, 0}, false},
		{"short", []byte{6, 0, 0, 0}, false},
		{"absent", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.data != nil {
				p := filepath.Join(root, secureBootVar)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, tc.data, 0o644)
			}
			if got := secureBootOn(root); got != tc.want {
				t.Errorf("secureBootOn = %v, want %v", got, tc.want)
			}
		})
	}
}

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
