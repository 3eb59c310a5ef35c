package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"golang.org/x/crypto/ssh"
)

func TestParseIP(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    Network
		wantErr string
	}{
		{"", Network{Mode: "dhcp"}, ""},
		{"dhcp", Network{Mode: "dhcp"}, ""},
		{"ip=on", Network{Mode: "dhcp"}, ""},
		{"off", Network{Mode: "off"}, ""},
		{"none", Network{Mode: "off"}, ""},
		{"10.0.2.15::10.0.2.2:255.255.255.0::eth0:off", Network{Mode: "static", Addr: netip.MustParsePrefix("10.0.2.15/24"),
			Gateway: netip.MustParseAddr("10.0.2.2"), Device: "eth0"}, ""},
		{"10.0.2.15::10.0.2.2:255.255.255.0::::", Network{Mode: "static", Addr: netip.MustParsePrefix("10.0.2.15/24"),
			Gateway: netip.MustParseAddr("10.0.2.2")}, ""},
		// The kernel's default netmask is the address class.
		{"10.1.2.3", Network{Mode: "static", Addr: netip.MustParsePrefix("10.1.2.3/8")}, ""},
		{"172.16.0.5", Network{Mode: "static", Addr: netip.MustParsePrefix("172.16.0.5/16")}, ""},
		{"192.0.2.10:::255.255.255.128:rescue:enp1s0:none:192.0.2.53:192.0.2.54", Network{Mode: "static",
			Addr: netip.MustParsePrefix("192.0.2.10/25"), Hostname: "rescue", Device: "enp1s0",
			DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")}}, ""},
		{":::::eth1:dhcp", Network{Mode: "dhcp", Device: "eth1"}, ""},
		{"10.0.2.15::::::dhcp", Network{}, "a client address with autoconf"},
		{"::::::off", Network{}, "no client address"},
		{"10.0.2.15::10.0.3.1:255.255.255.0", Network{}, "is not in 10.0.2.0/24"},
		{"10.0.2.15:::255.0.255.0", Network{}, "not a contiguous netmask"},
		{"fe80::1", Network{}, ""}, // many fields: parsed as fields, fails below
		{"10.0.2.15:::::eth0;reboot:off", Network{}, "bad device name"},
		{"10.0.2.15::::bad_host!::off", Network{}, "bad host name"},
		{"10.0.2.15::::::bogus", Network{}, "unknown autoconf"},
		{"1:2:3:4:5:6:7:8:9:10:11", Network{}, "at most 10"},
		{"300.0.0.1", Network{}, "client address"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseIP(tc.spec)
			if tc.spec == "fe80::1" {
				if err == nil {
					t.Fatalf("ParseIP(%q) = %+v, want an error", tc.spec, got)
				}
				return
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseIP(%q) error %v, want %q", tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() || got.Hostname != tc.want.Hostname || len(got.DNS) != len(tc.want.DNS) {
				t.Errorf("ParseIP(%q) = %+v, want %+v", tc.spec, got, tc.want)
			}
			// What the hook sources holds quoted, validated values only.
			for _, line := range strings.Split(strings.TrimSpace(got.shellVars()), "\n") {
				k, v, ok := strings.Cut(line, "=")
				if !ok || !strings.HasPrefix(k, "NET_") || len(v) < 2 || v[0] != '\'' || strings.Count(v, "'") != 2 {
					t.Errorf("shell line %q", line)
				}
			}
		})
	}
}

func writeFile(t *testing.T, p string, mode os.FileMode, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func pubKeyLine(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

func TestHostKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "initrd-remix", "ssh")
	// --dry-run: a key in memory, nothing written.
	k0, err := LoadOrCreateHostKey(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a dry run made the key directory")
	}
	if !k0.Temporary || k0.Created {
		t.Errorf("dry run: temporary=%v created=%v", k0.Temporary, k0.Created)
	}
	k1, err := LoadOrCreateHostKey(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Created || k1.Fingerprint == k0.Fingerprint {
		t.Fatalf("first build: created=%v", k1.Created)
	}
	k2, err := LoadOrCreateHostKey(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Created || k2.Fingerprint != k1.Fingerprint {
		t.Fatalf("second build: created=%v fingerprint %s, want the first's %s", k2.Created, k2.Fingerprint, k1.Fingerprint)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, k1.Path: 0o600, k1.Path + ".pub": 0o644} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, st.Mode().Perm(), want)
		}
	}
	if !strings.HasPrefix(k1.Fingerprint, "SHA256:") {
		t.Errorf("fingerprint %q", k1.Fingerprint)
	}

	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir, key string)
		wantErr string
	}{
		{"key readable by others", func(t *testing.T, dir, key string) { os.Chmod(key, 0o644) }, "only its owner may read it"},
		{"directory open to others", func(t *testing.T, dir, key string) { os.Chmod(dir, 0o755) }, "only its owner may read it"},
		{"directory world writable", func(t *testing.T, dir, key string) { os.Chmod(dir, 0o777) }, "unsafe permissions"},
		{"key not a file", func(t *testing.T, dir, key string) { os.Remove(key); os.Mkdir(key, 0o700) }, "not a regular file"},
		{"key garbage", func(t *testing.T, dir, key string) { os.WriteFile(key, []byte("nonsense"), 0o600) }, "ssh: no key found"},
		{"directory is a file", func(t *testing.T, dir, key string) { os.RemoveAll(dir); os.WriteFile(dir, nil, 0o600) }, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "ssh")
			k, err := LoadOrCreateHostKey(d, true)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, d, k.Path)
			if _, err := LoadOrCreateHostKey(d, true); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
	if os.Getuid() == 0 {
		t.Run("owner neither root nor the user", func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "ssh")
			k, err := LoadOrCreateHostKey(d, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(k.Path, 4242, 4242); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateHostKey(d, true); err == nil || !strings.Contains(err.Error(), "unsafe owner uid 4242") {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestAuthorizedKeys(t *testing.T) {
	good := pubKeyLine(t, "admin@host")
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		dirMode    os.FileMode
		wantKeys   int
		wantErr    string
	}{
		{"one key", good + "\n", 0o600, 0o700, 1, ""},
		{"comments, blanks, options, CRLF", "# admins\n\n" + `from="10.0.0.0/8" ` + good + "\r\n" + pubKeyLine(t, "b") + "\n", 0o644, 0o755, 2, ""},
		{"empty", "# nobody\n", 0o600, 0o700, 0, "no key in it"},
		{"garbage line", good + "\nssh-ed25519 notbase64\n", 0o600, 0o700, 0, "line 2"},
		{"group writable", good + "\n", 0o664, 0o700, 0, "group or others may write it"},
		{"directory world writable", good + "\n", 0o600, 0o777, 0, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "keys")
			if err := os.Mkdir(d, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(d, tc.dirMode)
			p := filepath.Join(d, "authorized_keys")
			writeFile(t, p, tc.mode, tc.body)
			keys, err := ReadAuthorizedKeys(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "authorized keys") {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(keys), "\n"); n != tc.wantKeys {
				t.Errorf("%d keys, want %d:\n%s", n, tc.wantKeys, keys)
			}
		})
	}

	// The search order inside the root, and the error naming it.
	root := t.TempDir()
	if _, err := FindAuthorizedKeys("", root); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "/root/.ssh/authorized_keys")) ||
		!strings.Contains(err.Error(), "--ssh-authorized-keys") {
		t.Errorf("no keys anywhere: %v", err)
	}
	writeFile(t, filepath.Join(root, "root/.ssh/authorized_keys"), 0o600, good+"\n")
	if p, err := FindAuthorizedKeys("", root); err != nil || p != filepath.Join(root, "root/.ssh/authorized_keys") {
		t.Errorf("found %q, %v", p, err)
	}
	writeFile(t, filepath.Join(root, "etc/initrd-remix/authorized_keys"), 0o600, good+"\n")
	if p, err := FindAuthorizedKeys("", root); err != nil || p != filepath.Join(root, "etc/initrd-remix/authorized_keys") {
		t.Errorf("found %q, %v", p, err)
	}
	if p, err := FindAuthorizedKeys("/given", root); err != nil || p != "/given" {
		t.Errorf("given: %q, %v", p, err)
	}
}

// fakeRoot is a root with an sshd whose strings name an sshd-session
// (present or not) and a busybox.
func fakeRoot(t *testing.T, session bool, busybox bool) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/sbin/sshd"), 0o755, "\x7fELF\x00/usr/lib/openssh/sshd-session\x00/run/sshd\x00OpenSSH\x00")
	if session {
		writeFile(t, filepath.Join(root, "usr/lib/openssh/sshd-session"), 0o755, "\x7fELF\x00/usr/lib/openssh/sshd-auth\x00/var/empty\x00")
		writeFile(t, filepath.Join(root, "usr/lib/openssh/sshd-auth"), 0o755, "\x7fELF\x00")
	}
	if busybox {
		writeFile(t, filepath.Join(root, "usr/bin/busybox"), 0o755, "\x7fELF\x00udhcpc\x00")
	}
	writeFile(t, filepath.Join(root, "etc/initrd-remix/authorized_keys"), 0o600, pubKeyLine(t, "a")+"\n")
	return root
}

func TestPrepare(t *testing.T) {
	root := fakeRoot(t, true, true)
	s, err := Prepare(Options{Root: root, IP: "10.0.2.15::10.0.2.2:255.255.255.0::::"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/sbin/sshd", "/usr/lib/openssh/sshd-session", "/usr/lib/openssh/sshd-auth"}
	if strings.Join(s.Programs, " ") != strings.Join(want, " ") {
		t.Errorf("programs %q, want %q", s.Programs, want)
	}
	if s.net.busybox != "/usr/bin/busybox" {
		t.Errorf("the root's busybox with udhcpc not found: %q", s.net.busybox)
	}
	if strings.Join(s.privsep, " ") != "/run/sshd /var/empty" {
		t.Errorf("privilege separation directories %q", s.privsep)
	}
	if s.HostKey.Path != filepath.Join(root, "etc/initrd-remix/ssh", HostKeyName) || !s.HostKey.Created {
		t.Errorf("host key %s created=%v", s.HostKey.Path, s.HostKey.Created)
	}
	if s2, err := Prepare(Options{Root: root}); err != nil || s2.HostKey.Fingerprint != s.HostKey.Fingerprint {
		t.Errorf("second Prepare: %v, fingerprint changed", err)
	}

	for _, tc := range []struct {
		name    string
		root    func(t *testing.T) string
		opts    Options
		wantErr string
	}{
		{"no sshd", func(t *testing.T) string { return t.TempDir() }, Options{}, "no SSH server in"},
		{"sshd-session missing", func(t *testing.T) string { return fakeRoot(t, false, true) }, Options{}, "runs /usr/lib/openssh/sshd-session, which the root lacks"},
		{"bad ip", func(t *testing.T) string { return fakeRoot(t, true, true) }, Options{IP: "10.0.2.15::::::bogus"}, "unknown autoconf"},
		{"no authorized keys", func(t *testing.T) string {
			r := fakeRoot(t, true, true)
			os.Remove(filepath.Join(r, "etc/initrd-remix/authorized_keys"))
			return r
		}, Options{}, "no authorized keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Root = tc.root(t)
			if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func readTree(t *testing.T, tree *remix.Tree, name string) (string, uint32) {
	t.Helper()
	_, n, err := tree.Resolve(name, true)
	if err != nil || n == nil {
		t.Fatalf("%s not in the tree: %v", name, err)
	}
	r, err := n.Inode.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), n.Inode.Mode & 0o7777
}

func TestInstall(t *testing.T) {
	root := fakeRoot(t, false, true)
	os.Remove(filepath.Join(root, "usr/sbin/sshd"))
	writeFile(t, filepath.Join(root, "usr/sbin/sshd"), 0o755, "\x7fELF\x00/run/sshd\x00")
	for _, tc := range []struct {
		name    string
		passwd  string
		ip      string
		busybox bool
		tools   []string
		wantErr string
	}{
		{"image with its own accounts", "root:x:0:0:root:/root:/bin/bash\nsystemd-network:x:100:102::/:/usr/sbin/nologin\n", "", true, nil, ""},
		{"image without accounts", "", "", true, nil, ""},
		{"no DHCP client anywhere", "", "", false, nil, "no DHCP client"},
		{"the image's klibc ipconfig", "", "", false, []string{"usr/bin/ipconfig"}, ""},
		{"static without ip", "", "10.0.2.15:::255.255.255.0", false, nil, "no ip program"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := root
			if !tc.busybox {
				r = filepath.Join(t.TempDir(), "r")
				writeFile(t, filepath.Join(r, "usr/sbin/sshd"), 0o755, "\x7fELF\x00")
				writeFile(t, filepath.Join(r, "etc/initrd-remix/authorized_keys"), 0o600, pubKeyLine(t, "a")+"\n")
			}
			s, err := Prepare(Options{Root: r, IP: tc.ip, KeyDir: filepath.Join(t.TempDir(), "k")})
			if err != nil {
				t.Fatal(err)
			}
			tree := withPrograms(remix.NewTree(), append([]string{"usr/sbin/sshd"}, tc.tools...)...)
			if tc.passwd != "" {
				tree.Install(remix.File("etc/passwd", 0o644, remix.BytesContent(tc.passwd)))
				// A locked root, as `passwd -l` leaves it.
				tree.Install(remix.File("etc/shadow", 0o640, remix.BytesContent("root:!$y$j9T$abc:19000:0:99999:7:::\nsystemd-network:!*:19000::::::\n")))
			}
			d, err := s.ChooseDHCP(tree)
			if err == nil {
				// What the overlay does with d.Programs.
				err = s.Install(withPrograms(tree, d.Programs...), d)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := readTree(t, tree, "etc/initrd-remix/ssh/sshd_config")
			for _, line := range []string{"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
				"PermitRootLogin prohibit-password", "UsePAM no", "AuthenticationMethods publickey",
				"AuthorizedKeysFile /etc/initrd-remix/ssh/authorized_keys", "HostKey /etc/initrd-remix/ssh/ssh_host_ed25519_key"} {
				if !strings.Contains(cfg, "\n"+line+"\n") {
					t.Errorf("sshd_config lacks %q", line)
				}
			}
			if key, mode := readTree(t, tree, "etc/initrd-remix/ssh/ssh_host_ed25519_key"); mode != 0o600 || key != string(s.HostKey.Private) {
				t.Errorf("host key in the image: mode %04o", mode)
			}
			if _, mode := readTree(t, tree, "etc/initrd-remix/ssh/authorized_keys"); mode != 0o600 {
				t.Errorf("authorized_keys mode %04o", mode)
			}
			if _, mode := readTree(t, tree, "usr/lib/initrd-remix/rescue.d/50-ssh"); mode != 0o755 {
				t.Errorf("hook mode %04o", mode)
			}
			passwd, _ := readTree(t, tree, "etc/passwd")
			shadow, mode := readTree(t, tree, "etc/shadow")
			if !strings.HasPrefix(passwd, "root:x:0:0:root:/root:/bin/sh\n") || strings.Count("\n"+passwd, "\nroot:") != 1 {
				t.Errorf("passwd:\n%s", passwd)
			}
			if !strings.Contains(passwd, "\nsshd:x:") || (tc.passwd != "" && !strings.Contains(passwd, "\nsystemd-network:x:100:")) {
				t.Errorf("passwd lacks the privilege separation user or lost the image's users:\n%s", passwd)
			}
			if tc.passwd != "" && strings.Contains(passwd, "sshd:x:100:") {
				t.Errorf("sshd got a uid the image uses:\n%s", passwd)
			}
			// "*": no password matches, and OpenSSH does not take it for
			// a locked account ("!" would refuse key logins with UsePAM no).
			if !strings.HasPrefix(shadow, "root:*:") || strings.Contains(shadow, "root:!") || mode != 0o600 ||
				(tc.passwd != "" && !strings.Contains(shadow, "\nsystemd-network:!*:")) {
				t.Errorf("shadow (mode %04o):\n%s", mode, shadow)
			}
			group, _ := readTree(t, tree, "etc/group")
			if !strings.Contains(group, "nogroup:x:65534:") {
				t.Errorf("group:\n%s", group)
			}
			conf, _ := readTree(t, tree, "etc/initrd-remix/ssh/rescue.conf")
			if !strings.Contains(conf, "SSH_FINGERPRINT='ssh-ed25519 "+s.HostKey.Fingerprint+"'") {
				t.Errorf("rescue.conf:\n%s", conf)
			}
		})
	}
}

// TestShellParseIP holds the rescue's shell parser of initrd_remix.ip=
// (files/ip.sh, run by the image's sh at boot) to ParseIP's results: the
// same specs accepted, with the same address, prefix, gateway, device,
// host name and DNS servers. ParseIP alone also refuses a gateway outside
// the subnet (at build time); at boot ip route says so.
func TestShellParseIP(t *testing.T) {
	var shells []string
	for _, sh := range []string{"dash", "busybox", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no dash, busybox or bash on PATH")
	}
	specs := []string{"dhcp", "on", "off", "none", "10.0.2.15::10.0.2.2:255.255.255.0::eth0:off", "10.0.2.15::10.0.2.2:255.255.255.0::::",
		"10.1.2.3", "172.16.0.5", "192.168.1.9", "192.0.2.10:::255.255.255.128:rescue:enp1s0:none:192.0.2.53:192.0.2.54",
		":::::eth1:dhcp", "10.0.2.15::::::dhcp", "::::::off", "10.0.2.15:::255.0.255.0", "10.0.2.15:::255.255.255.1",
		"10.0.2.15:::0.0.0.0", "10.0.2.15:::255.255.255.255", "10.0.2.15:::::eth0;reboot:off", "10.0.2.15::::bad_host!::off",
		"10.0.2.15::::::bogus", "1:2:3:4:5:6:7:8:9:10:11", "300.0.0.1", "10.0.2.015", "10.0.2", "10.0.2.15.", "a.b.c.d",
		"10.0.2.15:::::averyveryverylongname:off", "10.0.2.15:1.2.3.400", "10.0.2.15::::::::8.8.8.8.8", "$(reboot)", "10.0.2.15:::::`x`:off"}
	for _, sh := range shells {
		for _, spec := range specs {
			n, err := ParseIP(spec)
			want := "FAIL"
			if err == nil {
				dns := []string{}
				for _, d := range n.DNS {
					dns = append(dns, d.String())
				}
				addr, gw := "", ""
				if n.Mode == "static" {
					addr = n.Addr.String()
					if n.Gateway.IsValid() {
						gw = n.Gateway.String()
					}
				}
				want = strings.Join([]string{n.Mode, addr, gw, n.Device, n.Hostname, strings.Join(dns, " ")}, "|")
			}
			argv := []string{"-c", `. "$0"; NET_ADDR= NET_GATEWAY= NET_DEVICE= NET_HOSTNAME= NET_DNS=; if parse_ip "$1"; then echo "$NET_MODE|$NET_ADDR|$NET_GATEWAY|$NET_DEVICE|$NET_HOSTNAME|$NET_DNS"; else echo FAIL; fi`,
				"files/ip.sh", spec}
			if filepath.Base(sh) == "busybox" {
				argv = append([]string{"sh"}, argv...)
			}
			out, err := exec.Command(sh, argv...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", sh, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("%s parse_ip %q = %q, ParseIP says %q", filepath.Base(sh), spec, got, want)
			}
		}
	}
}

// TestDropbear: a root with Dropbear and no OpenSSH gets Dropbear, with the
// same host key in Dropbear's format and root's authorized_keys where
// Dropbear looks.
func TestDropbear(t *testing.T) {
	r := t.TempDir()
	writeFile(t, filepath.Join(r, "usr/sbin/dropbear"), 0o755, "\x7fELF\x00")
	writeFile(t, filepath.Join(r, "usr/bin/busybox"), 0o755, "\x7fELF\x00udhcpc\x00")
	writeFile(t, filepath.Join(r, "etc/initrd-remix/authorized_keys"), 0o600, pubKeyLine(t, "a")+"\n")
	s, err := Prepare(Options{Root: r})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Programs, " ") != "/usr/sbin/dropbear" {
		t.Errorf("programs %q", s.Programs)
	}
	tree := remix.NewTree()
	tree.Install(remix.File("usr/sbin/dropbear", 0o755, remix.BytesContent("x")))
	d, err := s.ChooseDHCP(tree)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Programs, " ") != "/usr/bin/busybox" {
		t.Errorf("DHCP programs %q", d.Programs)
	}
	if err := s.Install(withPrograms(tree, d.Programs...), d); err != nil {
		t.Fatal(err)
	}
	key, mode := readTree(t, tree, "etc/initrd-remix/ssh/dropbear_ed25519_host_key")
	pub := s.HostKey.Public.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey)
	// string "ssh-ed25519", string seed||public.
	if mode != 0o600 || len(key) != 4+11+4+64 || key[:15] != "\x00\x00\x00\x0bssh-ed25519" || key[15:19] != "\x00\x00\x00\x40" || key[51:] != string(pub) {
		t.Errorf("Dropbear host key (mode %04o): %q", mode, key)
	}
	if ak, mode := readTree(t, tree, "root/.ssh/authorized_keys"); mode != 0o600 || ak != string(s.authorized) {
		t.Errorf("root's authorized_keys (mode %04o): %q", mode, ak)
	}
	if _, n, _ := tree.Resolve("root/.ssh", true); n == nil || n.Inode.Mode&0o777 != 0o700 {
		t.Error("/root/.ssh is not 0700")
	}
	conf, _ := readTree(t, tree, "etc/initrd-remix/ssh/rescue.conf")
	if !strings.Contains(conf, "SSHD_KIND='dropbear'") || !strings.Contains(conf, "SSHD='/usr/sbin/dropbear'") {
		t.Errorf("rescue.conf:\n%s", conf)
	}
}
