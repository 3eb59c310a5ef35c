package sshd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
)

// TestChooseDHCP: the probe order on crafted roots and images. The
// image's own client first, then the root's busybox udhcpc, dhcpcd,
// dhclient, systemd-networkd; an ip program from the image, the root's
// iproute2 or the root's busybox where the hook or the client's script
// needs one; a clear error when DHCP is asked for and nothing is there.
func TestChooseDHCP(t *testing.T) {
	const (
		busyboxUdhcpc = "\x7fELF\x00ip\x00udhcpc\x00udhcpc6\x00"
		busyboxBare   = "\x7fELF\x00ip\x00sh\x00"
		dhcpcdUser    = "root:x:0:0:root:/root:/bin/bash\ndhcpcd:x:100:65534:DHCP Client Daemon:/usr/lib/dhcpcd:/bin/false\n"
	)
	for _, tc := range []struct {
		name  string
		root  map[string]string // files of the root (path: content)
		image []string          // programs of the image
		ip    string            // build --ip
		// want
		kind, program, from string
		programs            []string
		user                string
		wantErr             []string
	}{
		{name: "the image's udhcpc before the root's busybox",
			root:  map[string]string{"usr/bin/busybox": busyboxUdhcpc},
			image: []string{"usr/sbin/udhcpc", "usr/sbin/ip"},
			kind:  ClientUdhcpc, program: "/usr/sbin/udhcpc", from: "image"},
		{name: "the image's klibc ipconfig before the root's dhcpcd",
			root:  map[string]string{"usr/sbin/dhcpcd": "\x7fELF", "usr/bin/ip": "\x7fELF"},
			image: []string{"usr/bin/ipconfig"},
			kind:  ClientIPConfig, program: "/usr/bin/ipconfig", from: "image", programs: []string{"/usr/bin/ip"}},
		{name: "the image's dhclient (dracut network-legacy), its ip",
			root:  map[string]string{"usr/bin/busybox": busyboxUdhcpc},
			image: []string{"usr/sbin/dhclient", "usr/sbin/ip"},
			kind:  ClientDhclient, program: "/usr/sbin/dhclient", from: "image"},
		{name: "the image's udhcpc, ip from the root's busybox",
			root:  map[string]string{"usr/bin/busybox": busyboxUdhcpc},
			image: []string{"usr/sbin/udhcpc"},
			kind:  ClientUdhcpc, program: "/usr/sbin/udhcpc", from: "image", programs: []string{"/usr/bin/busybox"}},
		{name: "the root's busybox before its dhcpcd",
			root: map[string]string{"usr/bin/busybox": busyboxUdhcpc, "usr/sbin/dhcpcd": "\x7fELF"},
			kind: ClientUdhcpc, program: "/usr/bin/busybox", from: "root", programs: []string{"/usr/bin/busybox"}},
		{name: "a busybox without udhcpc: the root's dhcpcd, its user, iproute2's ip",
			root: map[string]string{"usr/bin/busybox": busyboxBare, "usr/sbin/dhcpcd": "\x7fELF", "usr/bin/ip": "\x7fELF", "etc/passwd": dhcpcdUser},
			kind: ClientDhcpcd, program: "/usr/sbin/dhcpcd", from: "root", programs: []string{"/usr/sbin/dhcpcd", "/usr/bin/ip"}, user: "dhcpcd"},
		{name: "the root's dhcpcd without its user: no privilege separation",
			root: map[string]string{"sbin/dhcpcd": "\x7fELF", "sbin/ip": "\x7fELF"},
			kind: ClientDhcpcd, program: "/sbin/dhcpcd", from: "root", programs: []string{"/sbin/dhcpcd", "/sbin/ip"}},
		{name: "the root's dhcpcd before its dhclient",
			root: map[string]string{"usr/sbin/dhcpcd": "\x7fELF", "usr/sbin/dhclient": "\x7fELF", "etc/passwd": dhcpcdUser},
			kind: ClientDhcpcd, program: "/usr/sbin/dhcpcd", from: "root", programs: []string{"/usr/sbin/dhcpcd"}, user: "dhcpcd"},
		{name: "the root's dhclient and ip",
			root: map[string]string{"usr/sbin/dhclient": "\x7fELF", "usr/bin/ip": "\x7fELF"},
			kind: ClientDhclient, program: "/usr/sbin/dhclient", from: "root", programs: []string{"/usr/sbin/dhclient", "/usr/bin/ip"}},
		{name: "the root's dhclient, no ip anywhere",
			root:    map[string]string{"usr/sbin/dhclient": "\x7fELF"},
			wantErr: []string{"no ip program", "for dhclient's lease"}},
		{name: "the root's systemd-networkd as the last resort",
			root: map[string]string{"usr/lib/systemd/systemd-networkd": "\x7fELF", "usr/sbin/dhclient.bak": "x", "bin/ip": "\x7fELF"},
			kind: ClientNetworkd, program: "/usr/lib/systemd/systemd-networkd", from: "root",
			programs: []string{"/usr/lib/systemd/systemd-networkd", "/bin/ip"}, user: "systemd-network"},
		{name: "nothing anywhere",
			root:    map[string]string{"usr/bin/busybox": busyboxBare},
			wantErr: []string{"no DHCP client in the image", "/usr/sbin/udhcpc", "/usr/bin/busybox", "/usr/sbin/dhcpcd", "/usr/sbin/dhclient", "/usr/lib/systemd/systemd-networkd", "give a static ip="}},
		{name: "nothing, but a static address and the image's ip",
			image: []string{"usr/bin/ip"}, ip: "10.0.2.15:::255.255.255.0"},
		{name: "nothing, a static address and no ip",
			ip: "10.0.2.15:::255.255.255.0", wantErr: []string{"no ip program", "to set the static address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := t.TempDir()
			writeFile(t, filepath.Join(r, "usr/sbin/sshd"), 0o755, "\x7fELF\x00")
			writeFile(t, filepath.Join(r, "etc/initrd-remix/authorized_keys"), 0o600, pubKeyLine(t, "a")+"\n")
			for p, body := range tc.root {
				writeFile(t, filepath.Join(r, p), 0o755, body)
			}
			s, err := Prepare(Options{Root: r, IP: tc.ip, KeyDir: filepath.Join(t.TempDir(), "k"), DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			tree := withPrograms(remix.NewTree(), append([]string{"usr/sbin/sshd"}, tc.image...)...)
			d, err := s.ChooseDHCP(tree)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("chose %+v, want an error", d)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != tc.kind || d.Program != tc.program || d.From != tc.from || d.user != tc.user {
				t.Errorf("chose %s %s from %q (user %q), want %s %s from %q (user %q)", d.Kind, d.Program, d.From, d.user, tc.kind, tc.program, tc.from, tc.user)
			}
			if strings.Join(d.Programs, " ") != strings.Join(tc.programs, " ") {
				t.Errorf("programs %q, want %q", d.Programs, tc.programs)
			}
			if d.Reason == "" || (tc.kind != "" && !strings.Contains(d.Reason, tc.kind)) {
				t.Errorf("reason %q does not name %s", d.Reason, tc.kind)
			}
			// Install with what the overlay would have added.
			if err := s.Install(withPrograms(tree, d.Programs...), d); err != nil {
				t.Fatal(err)
			}
			conf, _ := readTree(t, tree, "etc/initrd-remix/ssh/rescue.conf")
			if !strings.Contains(conf, "\nDHCP_CLIENT='"+tc.kind+"'\n") || !strings.Contains(conf, "\nDHCP_PROG='"+tc.program+"'\n") {
				t.Errorf("rescue.conf:\n%s", conf)
			}
			passwd, _ := readTree(t, tree, "etc/passwd")
			if tc.user != "" && !strings.Contains(passwd, "\n"+tc.user+":x:") {
				t.Errorf("passwd lacks %s:\n%s", tc.user, passwd)
			}
			if tc.user == "" && strings.Contains(passwd, "dhcpcd") {
				t.Errorf("passwd has a dhcpcd user the client does not use:\n%s", passwd)
			}
		})
	}
}

// withPrograms adds a small executable at each of paths to tree and
// returns it: an image's programs, or what the overlay adds.
func withPrograms(tree *remix.Tree, paths ...string) *remix.Tree {
	for _, p := range paths {
		tree.Install(remix.File(p, 0o755, remix.BytesContent("x")))
	}
	return tree
}

// TestAccountsUIDs: every added user gets its own uid, none the image
// uses; an image's own entry of a client's user is kept, sshd's replaced.
func TestAccountsUIDs(t *testing.T) {
	tree := remix.NewTree()
	tree.Install(remix.File("etc/passwd", 0o644, remix.BytesContent("root:x:0:0::/root:/bin/bash\nsshd:x:74:74::/var/empty:/sbin/nologin\nsystemd-network:x:101:101::/:/sbin/nologin\nmessagebus:x:100:100::/:/sbin/nologin\n")))
	pw, _, sh, err := accounts(tree, []sysUser{{"sshd", "sshd privilege separation", "/run/sshd", true}, {"dhcpcd", "dhcpcd", "/run/initrd-remix/dhcpcd", false}, {"systemd-network", "networkd", "/", false}})
	if err != nil {
		t.Fatal(err)
	}
	want := "root:x:0:0:root:/root:/bin/sh\nsystemd-network:x:101:101::/:/sbin/nologin\nmessagebus:x:100:100::/:/sbin/nologin\n" +
		"sshd:x:102:65534:sshd privilege separation:/run/sshd:/bin/false\ndhcpcd:x:103:65534:dhcpcd:/run/initrd-remix/dhcpcd:/bin/false\n"
	if string(pw) != want {
		t.Errorf("passwd:\n%s\nwant:\n%s", pw, want)
	}
	if !strings.Contains(string(sh), "\nsshd:*:") || !strings.Contains(string(sh), "\ndhcpcd:*:") || strings.Contains(string(sh), "systemd-network") {
		t.Errorf("shadow:\n%s", sh)
	}
}
