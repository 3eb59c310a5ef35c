package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// TestBuildSSHFlags: the SSH options' usage errors and refusals, each
// naming what is wrong, with nothing written.
func TestBuildSSHFlags(t *testing.T) {
	in := smallImage(t)
	noConf := []string{"--config", "", "--config-dir", ""}
	emptyRoot := t.TempDir()
	sshRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sshRoot, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sshRoot, "usr/sbin/sshd"), []byte("\x7fELF\x00/run/sshd\x00"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(keys, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHX6n0Y8k6rXQ3HcJ0gm3p5hGv3S6Z8HnH1o2vA0C1cM a@b\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keys, 0o666)
	goodKeys := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(goodKeys, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHX6n0Y8k6rXQ3HcJ0gm3p5hGv3S6Z8HnH1o2vA0C1cM a@b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKeys := filepath.Join(t.TempDir(), "hk")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"ip without ssh", []string{"--ip", "dhcp"}, exitUsage, "--ip needs --ssh"},
		{"authorized keys without ssh", []string{"--ssh-authorized-keys", keys}, exitUsage, "--ssh-authorized-keys needs --ssh"},
		{"no sshd in the root", []string{"--ssh", "--root", emptyRoot}, exitFailed, "no SSH server in " + emptyRoot},
		{"bad ip", []string{"--ssh", "--root", sshRoot, "--ip", "10.0.2.15:::255.0.255.0"}, exitFailed, "not a contiguous netmask"},
		{"no authorized keys", []string{"--ssh", "--root", sshRoot}, exitFailed, "none of " + filepath.Join(sshRoot, "etc/initrd-remix/authorized_keys")},
		{"world-writable authorized keys", []string{"--ssh", "--root", sshRoot, "--ssh-authorized-keys", keys}, exitFailed, "group or others may write it"},
		// Neither the crafted image nor the root has a DHCP client: the
		// build fails naming what it looked for, and writes nothing.
		{"no DHCP client", []string{"--ssh", "--root", sshRoot, "--ssh-authorized-keys", goodKeys, "--ssh-host-keys", hostKeys}, exitFailed,
			"no DHCP client in the image (looked for /usr/sbin/udhcpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "rescue.img")
			args := append([]string{"build", "--input", in, "--output", out, "--preset", "none", "--drivers", "none"}, noConf...)
			code, _, errs := cli(t, append(args, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, want %d; stderr %q, want %q", code, tc.code, errs, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("an image was written")
			}
		})
	}
	// The configuration file may turn SSH on, like every build option.
	conf := filepath.Join(t.TempDir(), "initrd-remix.conf")
	if err := os.WriteFile(conf, []byte("ssh = yes\nip = 10.0.2.15::10.0.2.2:255.255.255.0::::\nssh-host-keys = /etc/initrd-remix/ssh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli(t, "config", "get", "ip", "--config", conf, "--config-dir", ""); code != exitOK || strings.TrimSpace(out) != "10.0.2.15::10.0.2.2:255.255.255.0::::" {
		t.Errorf("config get ip: exit %d %q %q", code, out, errs)
	}
	code, _, errs := cli(t, "build", "--input", in, "--output", filepath.Join(t.TempDir(), "r.img"), "--config", conf, "--config-dir", "", "--root", emptyRoot, "--preset", "none", "--drivers", "none")
	if code != exitFailed || !strings.Contains(errs, "no SSH server") {
		t.Errorf("ssh = yes in the configuration: exit %d, %q", code, errs)
	}
}

// TestEntrySSHNetwork: entry write reads the configuration of --root and,
// with ssh = yes and ip = SPEC, gives the entry initrd_remix.ip=SPEC (the
// rescue's SSH hook takes it over the network the image was built with);
// without ssh, or without ip, the options stay as they were; a bad ip is
// an error naming the file and line.
func TestEntrySSHNetwork(t *testing.T) {
	const mid = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, conf, want, wantErr string
	}{
		{"ssh with a static ip", "ssh = yes\nip = 10.0.2.15::10.0.2.2:255.255.255.0::eth0:off\n",
			"root=/dev/vda ro console=ttyS0 initrd_remix.ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off", ""},
		{"ssh with dhcp", "ssh = true\n", "root=/dev/vda ro console=ttyS0", ""},
		{"ip without ssh", "ip = 10.0.2.15\n", "root=/dev/vda ro console=ttyS0", ""},
		{"ssh off", "ssh = no\nip = 10.0.2.15\n", "root=/dev/vda ro console=ttyS0", ""},
		{"bad ip", "ssh = yes\n\nip = 10.0.2.15::::::bogus\n", "", "initrd-remix.conf:3: ip=10.0.2.15::::::bogus: unknown autoconf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := entryRoot(t, mid)
			conf := filepath.Join(root, "etc/initrd-remix/initrd-remix.conf")
			os.MkdirAll(filepath.Dir(conf), 0o755)
			if err := os.WriteFile(conf, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errs := cli(t, "entry", "write", "--root", root, "--kver", "6.1.0-50-amd64",
				"--linux", "/boot/m/6.1.0-50-amd64/linux", "--initrd", "/boot/m/6.1.0-50-amd64/initrd-remix-rescue.img")
			if tc.wantErr != "" {
				if code != exitFailed || !strings.Contains(errs, tc.wantErr) {
					t.Fatalf("exit %d: %s, want %q", code, errs, tc.wantErr)
				}
				return
			}
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			data, err := os.ReadFile(filepath.Join(root, "boot/loader/entries", mid+"-6.1.0-50-amd64-initrd-remix-rescue.conf"))
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`\noptions +` + regexp.QuoteMeta(tc.want) + `\n`).Match(data) {
				t.Errorf("entry:\n%s\nwant options %q", data, tc.want)
			}
		})
	}
}

// TestGrubSSHNetwork: the GRUB script gives the rescue entry
// initrd_remix.ip=SPEC when the configuration has ssh = yes and an ip line,
// and only characters of the ip= syntax ever reach grub.cfg. The
// configuration's answers come from a stand-in initrd-remix on PATH (the
// script reads the fixed /etc/initrd-remix; config get itself is tested
// with the real files in TestBuildSSHFlags).
func TestGrubSSHNetwork(t *testing.T) {
	testtool.Require(t, "grub-script-check")
	if _, err := os.Stat("/usr/share/grub/grub-mkconfig_lib"); err != nil {
		testtool.Missing(t, "grub-mkconfig_lib (grub-common): %v", err)
	}
	script, _ := filepath.Abs("../../scripts/grub.d/15_initrd-remix")
	for _, tc := range []struct {
		name, ssh, ip, want string
	}{
		{"static", "true", "10.0.2.15::10.0.2.2:255.255.255.0::eth0:off", " initrd_remix.ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off\n"},
		{"ssh off", "false", "10.0.2.15", "console=ttyS0\n"},
		{"no ip", "true", "", "console=ttyS0\n"},
		{"shell and grub characters", "true", "10.0.2.15;reboot $x", "console=ttyS0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			fake := fmt.Sprintf("#!/bin/sh\ncase \"$1 $2 $3\" in\n'config get hooks') echo true ;;\n'config get ssh') echo '%s' ;;\n'config get ip') printf '%%s\\n' '%s' ;;\n*) exit 1 ;;\nesac\n", tc.ssh, tc.ip)
			if err := os.WriteFile(filepath.Join(bin, "initrd-remix"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			ns := mountNamespace(t, "/boot")
			out := filepath.Join(t.TempDir(), "grub.cfg")
			const body = `set -e
mount -t tmpfs tmpfs /boot
echo k >/boot/vmlinuz-6.1.0-9-amd64
echo i >/boot/initrd-remix-rescue-6.1.0-9-amd64.img
pkgdatadir=/usr/share/grub GRUB_DISTRIBUTOR=Debian GRUB_CMDLINE_LINUX="console=ttyS0" sh "$1" >"$2"
`
			cmd := exec.Command("unshare", append(ns, "sh", "-c", body, "sh", script, out)...)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			if o, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("15_initrd-remix: %v: %s", err, o)
			}
			cfg, _ := os.ReadFile(out)
			if c, err := exec.Command("grub-script-check", out).CombinedOutput(); err != nil {
				t.Fatalf("grub-script-check: %v: %s\n%s", err, c, cfg)
			}
			if !strings.Contains(string(cfg), "\tlinux\t'/vmlinuz-6.1.0-9-amd64' console=ttyS0") || !strings.Contains(string(cfg), tc.want) {
				t.Errorf("grub.cfg lacks %q:\n%s", tc.want, cfg)
			}
			if tc.want == "console=ttyS0\n" && strings.Contains(string(cfg), "initrd_remix.ip") {
				t.Errorf("initrd_remix.ip= where none belongs:\n%s", cfg)
			}
		})
	}
}
