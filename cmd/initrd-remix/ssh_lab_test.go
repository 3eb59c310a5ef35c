package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay/sshd"
	"github.com/initrd-remix/initrd-remix/remix"
	"golang.org/x/crypto/ssh"
)

// sshClientKey writes a new Ed25519 key pair for the host's ssh client:
// the private key (0600) at p, the public key at p.pub.
func sshClientKey(t *testing.T, p string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "initrd-remix test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".pub", ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sshRun runs the host's ssh client against the rescue on port with extra
// options and returns its combined output and error. The host key must be
// the one in knownHosts (StrictHostKeyChecking yes); BatchMode: never a
// prompt.
func sshRun(port int, knownHosts string, opts []string, command string) (string, error) {
	argv := []string{"-p", fmt.Sprint(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
		"-o", "IdentitiesOnly=yes", "-F", "/dev/null"}
	argv = append(argv, opts...)
	argv = append(argv, "root@127.0.0.1", command)
	cmd := exec.Command("ssh", argv...)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sshBoot is one rescue boot reached over SSH.
type sshBoot struct {
	l           *lab
	tb          string
	image       string // the rescue image, built with --ssh and the census payload
	args        string // kernel command line
	nic         string // QEMU model
	fingerprint string // what build printed
	hostKey     string // its public half, authorized_keys form
	key, wrong  string // the authorized and an unknown private key
	wantAddr    string // the address the banner must show
	serverLog   string // regexp: the server's log line of the key login
	session     string // run: the storage session's output
}

// knownHosts writes a known_hosts file naming key for 127.0.0.1:port.
func knownHosts(t *testing.T, port int, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, key)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run boots b.image on writable copies of the testbed with a NIC on QEMU's
// user network and a forwarded port, waits for the hook's "sshd started",
// logs in with the authorized key and runs the storage commands, tries a
// wrong key and a password, then ends the boot from the SSH session and
// checks the census and every disk's sha256. It returns the console log.
func (b *sshBoot) run(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	kh := knownHosts(t, port, b.hostKey)
	logf := filepath.Join(t.TempDir(), "console.log")
	argv := []string{"--kernel", b.l.env["LAB_KERNEL"], "--initrd", b.image, "--append", b.args,
		"--expect", "SSH-TEST-DONE", "--timeout", "420", "--log", logf,
		"--nic", b.nic, "--hostfwd", fmt.Sprintf("%d:22", port),
		"--fail", passphrasePrompt, "--fail", `RESCUE-CENSUS md=[1-9]`, "--fail", b.l.env["LAB_MARKER"],
		"--fail", "sshd failed to start"}
	want := map[string]string{}
	for _, d := range testbedDisks {
		src := filepath.Join(b.tb, d)
		p := filepath.Join(t.TempDir(), d)
		copyFile(t, src, p)
		want[p] = sha256File(t, src)
		argv = append(argv, "--disk-rw", p)
	}
	cmd := exec.Command("../../scripts/boot.sh", argv...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	console := func() string { data, _ := os.ReadFile(logf); return string(data) }
	tail := func() string {
		lines := strings.Split(console(), "\n")
		return strings.Join(lines[max(0, len(lines)-60):], "\n")
	}
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
		}
	}()
	// The hook says "sshd started" once the network is up and the server
	// runs; the census and the banner follow.
	deadline := time.Now().Add(360 * time.Second)
	for !strings.Contains(console(), "RESCUE-CENSUS") || !strings.Contains(console(), "initrd-remix: sshd started") {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("boot of %s ended before sshd started: %v\n%s\nlast console lines:\n%s", b.image, err, out.String(), tail())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"sshd started\" in the console after 360 s; last console lines:\n%s", tail())
		}
	}
	log := console()
	if !strings.Contains(log, "initrd-remix: sshd started (ssh-ed25519 "+b.fingerprint+")") {
		t.Errorf("the rescue's sshd announces another host key than build printed (%s)", b.fingerprint)
	}
	id := []string{"-i", b.key, "-o", "PreferredAuthentications=publickey"}
	// The session: storage commands, run as root, their output returned.
	o, err := sshRun(port, kh, id, "exec 2>&1; while read -r k v _; do [ \"$k\" = Uid: ] && echo \"UID=$v\"; done </proc/self/status; lsblk -d -n -o NAME,SIZE; echo MDSTAT; cat /proc/mdstat; echo EXAMINE; mdadm --examine /dev/vda; echo MOUNTS; cat /proc/mounts; echo ROUTES; ip -4 route 2>&1; ip -4 -o addr show 2>&1; echo LEASES; ls /var/lib/dhcpcd /run/systemd/netif/leases 2>&1; cat /run/initrd-remix/dhcpcd.log /run/initrd-remix/networkd.log 2>/dev/null; echo SERVERLOG; cat /run/initrd-remix/sshd.log; echo END")
	if err != nil {
		t.Fatalf("ssh with the authorized key: %v\n%s\nlast console lines:\n%s", err, o, tail())
	}
	t.Logf("ssh session output:\n%s", o)
	b.session = o
	if !regexp.MustCompile(`(?m)^UID=0$`).MatchString(o) {
		t.Error("the session does not run as root (its Uid is not 0)")
	}
	for _, d := range []string{"vda", "vdb", "vdc"} {
		if !regexp.MustCompile(`(?m)^` + d + `\s+\S+`).MatchString(o) {
			t.Errorf("lsblk over SSH does not list %s", d)
		}
	}
	mdstat := o[strings.Index(o, "MDSTAT"):strings.Index(o, "EXAMINE")]
	if regexp.MustCompile(`(?m)^md\d+ :`).MatchString(mdstat) {
		t.Errorf("an md array is active in the rescue:\n%s", mdstat)
	}
	md := b.l.env["LAB_MD_UUID"]
	examine := o[strings.Index(o, "EXAMINE"):strings.Index(o, "MOUNTS")]
	if !strings.Contains(examine, md) || !regexp.MustCompile(`Raid Level : raid1`).MatchString(examine) {
		t.Errorf("mdadm --examine /dev/vda over SSH does not show the testbed's RAID1 member %s:\n%s", md, examine)
	}
	if m := regexp.MustCompile(`(?m)^/dev/(vd|md|dm|mapper)\S*`).FindString(o[strings.Index(o, "MOUNTS"):strings.Index(o, "ROUTES")]); m != "" {
		t.Errorf("a disk is mounted in the rescue: %s", m)
	}
	if !regexp.MustCompile(b.serverLog).MatchString(o[strings.Index(o, "SERVERLOG"):]) {
		t.Errorf("the server's log has no %q", b.serverLog)
	}
	if b.wantAddr != "" && !strings.Contains(log, "ssh root@"+b.wantAddr) {
		t.Errorf("the banner does not show the address %s", b.wantAddr)
	}
	if !strings.Contains(log, "host key ssh-ed25519 "+b.fingerprint) {
		t.Errorf("the banner does not show the host key's fingerprint %s", b.fingerprint)
	}
	// A key that is not authorized, and a password, are refused; the
	// server offers public keys only.
	if o, err := sshRun(port, kh, []string{"-i", b.wrong, "-o", "PreferredAuthentications=publickey"}, "echo LOGGED-IN"); err == nil || strings.Contains(o, "LOGGED-IN") {
		t.Errorf("a key that is not authorized logged in:\n%s", o)
	} else if !strings.Contains(o, "Permission denied (publickey)") {
		t.Errorf("the wrong key was not refused by the server: %v\n%s", err, o)
	}
	if o, err := sshRun(port, kh, []string{"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"}, "echo LOGGED-IN"); err == nil || strings.Contains(o, "LOGGED-IN") {
		t.Errorf("a login without a key succeeded:\n%s", o)
	} else if !strings.Contains(o, "Permission denied (publickey).") {
		t.Errorf("the server offers more than publickey, or refused otherwise: %v\n%s", err, o)
	}
	// A host key other than the one build printed is refused by the client:
	// the known_hosts check is real.
	wrongPub, err := os.ReadFile(b.wrong + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	other := knownHosts(t, port, strings.TrimSpace(string(wrongPub)))
	if o, err := sshRun(port, other, id, "echo LOGGED-IN"); err == nil || !strings.Contains(o, "Host key verification failed") {
		t.Errorf("the client accepted a host key other than the known one: %v\n%s", err, o)
	}
	// The session ends the boot: boot.sh stops QEMU at this line, so it
	// is written after the session has closed.
	if o, err := sshRun(port, kh, id, "(sleep 2; echo SSH-TEST-DONE >/dev/console) </dev/null >/dev/null 2>&1 &"); err != nil {
		t.Errorf("ssh: %v\n%s", err, o)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("boot of %s: %v\n%s\nlast console lines:\n%s", b.image, err, out.String(), tail())
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("the boot did not end after SSH-TEST-DONE; last console lines:\n%s", tail())
	}
	t.Logf("%s: %s", filepath.Base(b.image), strings.TrimSpace(out.String()))
	log = console()
	checkCensus(t, log)
	for p, sum := range want {
		if got := sha256File(t, p); got != sum {
			t.Errorf("%s changed during the boot (sha256 %s, was %s)", filepath.Base(p), got, sum)
		}
	}
	return log
}

// TestSSHLab is issue 12: for each family (initramfs-tools, dracut with and
// without systemd) a rescue image built with --ssh and --root = a copy of
// the lab's root with openssh-server (scripts/ssh-lab.sh) boots on the
// storage testbed with a NIC on QEMU's user network and a forwarded port;
// the host's ssh logs in as root with the authorized key, checking the host
// key against the one build printed, runs lsblk, cat /proc/mdstat and
// mdadm --examine and gets their output; a wrong key and a password are
// refused; census and every disk's sha256 unchanged. One boot has a static
// ip=, one uses Debian 13's OpenSSH 10 (sshd-session, sshd-auth), one a
// root with Dropbear only. Every
// build uses one host key directory: builds for two kernels (Debian 12 and
// 13) print the same fingerprint. Boots run one at a time.
func TestSSHLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	labs := labReleases(t)
	l := labs[0]
	testtool.Require(t, "qemu-system-x86_64")
	testtool.Require(t, "ssh")
	tb := testbed(t, l)
	_, env := cachedStage(t, "ssh-lab.sh", l.dir, "ssh.env")
	t.Logf("OpenSSH: bookworm %s, trixie %s; Dropbear %s", env["SSH_BOOKWORM_OPENSSH"], env["SSH_TRIXIE_OPENSSH"], env["SSH_DROPBEAR_VERSION"])
	work := t.TempDir()
	payload := filepath.Join(work, "census.sh")
	if err := os.WriteFile(payload, []byte(censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(work, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	client, wrong := filepath.Join(keys, "client"), filepath.Join(keys, "wrong")
	sshClientKey(t, client)
	sshClientKey(t, wrong)
	hostKeys := filepath.Join(work, "etc-initrd-remix", "ssh")
	args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
		l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])

	fpRe := regexp.MustCompile(`ssh host key: ssh-ed25519 (SHA256:[A-Za-z0-9+/]{43}) \(([^,]+), (created|reused)\)`)
	build := func(t *testing.T, rel *lab, image, root, ip string) (string, string, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "rescue.img")
		argv := []string{"build", "--root", root, "--input", rel.image(t, image).Path, "--output", out, "--kver", rel.env["LAB_KVER"],
			"--run", payload, "--ssh", "--ssh-authorized-keys", client + ".pub", "--ssh-host-keys", hostKeys}
		if ip != "" {
			argv = append(argv, "--ip", ip)
		}
		code, _, errs := cli(t, argv...)
		if code != exitOK {
			t.Fatalf("build: exit %d: %s", code, errs)
		}
		m := fpRe.FindStringSubmatch(errs)
		if m == nil {
			t.Fatalf("build printed no host key fingerprint:\n%s", errs)
		}
		client := regexp.MustCompile(`(?m)^ssh: DHCP client: .*`).FindString(errs)
		if client == "" {
			t.Fatalf("build did not say which DHCP client it chose:\n%s", errs)
		}
		t.Log(client)
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		// The image holds a private host key: owner only.
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("the rescue image holding the host key is mode %04o, want 0600", st.Mode().Perm())
		}
		// OpenSSH 9.8 and later exec sshd-session (and 10.0 sshd-auth):
		// what the root has must be in the image.
		img, err := remix.Open(context.Background(), out, remix.OpenOptions{MetadataOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		for _, h := range []string{"usr/lib/openssh/sshd-session", "usr/lib/openssh/sshd-auth"} {
			if _, err := os.Stat(filepath.Join(root, h)); err != nil {
				continue
			}
			if _, n, err := img.Tree.Resolve(h, true); err != nil || n == nil {
				t.Errorf("the root has /%s but the image does not", h)
			} else {
				t.Logf("/%s is in the image", h)
			}
		}
		return out, m[1], client
	}
	// The host key's public half, whose fingerprint must be the one
	// build printed.
	hostKey := func(t *testing.T, fp string) string {
		t.Helper()
		k, err := sshd.LoadOrCreateHostKey(hostKeys, false)
		if err != nil {
			t.Fatal(err)
		}
		if k.Fingerprint != fp {
			t.Fatalf("host key %s has fingerprint %s, build printed %s", k.Path, k.Fingerprint, fp)
		}
		return k.AuthorizedLine()
	}

	var firstFP string
	type sshCase struct {
		name, image string
		ip          string // build --ip
		cmdline     string // initrd_remix.ip= at boot
		static      bool   // the address is static, not by DHCP
		nic         string
		rel         *lab
		root        string
	}
	const static = "10.0.2.15::10.0.2.2:255.255.255.0::::"
	cases := []sshCase{
		{"itools-dhcp", "itools-zstd", "", "", false, "virtio-net-pci", l, env["SSH_BOOKWORM_ROOT"]},
		{"dracut-sd-dhcp", "dracut-sd-zstd", "", "", false, "e1000e", l, env["SSH_BOOKWORM_ROOT"]},
		{"dracut-nosd-static", "dracut-nosd-gzip", static, "", true, "virtio-net-pci", l, env["SSH_BOOKWORM_ROOT"]},
		// A root with Dropbear only: the same host key, in its format.
		{"dracut-sd-dropbear", "dracut-sd-zstd", "", "", false, "virtio-net-pci", l, env["SSH_DROPBEAR_ROOT"]},
	}
	for _, other := range labs[1:] {
		if other.release == "trixie" {
			// Built for DHCP, booted with a static initrd_remix.ip=, as
			// a boot entry carries it.
			cases = append(cases, sshCase{"trixie-itools-openssh10-cmdline-ip", "itools-zstd", "", static, true, "virtio-net-pci", other, env["SSH_TRIXIE_ROOT"]},
				// No DHCP client in the image (dracut without a network
				// module) and none but dhcpcd in the root (no busybox):
				// the root's dhcpcd with its privilege separation user.
				sshCase{"trixie-dracut-sd-dhcpcd", "dracut-sd-zstd", "", "", false, "virtio-net-pci", other, env["SSH_DHCPCD_ROOT"]})
		}
	}
	// A root whose only DHCP client is systemd-networkd (no busybox),
	// for dracut without systemd: networkd runs as a plain daemon in a
	// shell-init image.
	cases = append(cases, sshCase{"dracut-nosd-networkd", "dracut-nosd-gzip", "", "", false, "virtio-net-pci", l, env["SSH_NETWORKD_ROOT"]})
	// The client each root without busybox must bring, and what shows
	// that it got the lease (the SSH session lists its lease files).
	clients := map[string]struct{ kind, lease string }{
		env["SSH_DHCPCD_ROOT"]:   {"dhcpcd", `(?m)^\S+\.lease$`},
		env["SSH_NETWORKD_ROOT"]: {"systemd-networkd", `(?m)^/run/systemd/netif/leases:\n\d+$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The builds run one after the other, in order (the first
			// makes the host key, every later one must reuse it); the
			// boots then run two at a time.
			image, fp, chosen := build(t, c.rel, c.image, c.root, c.ip)
			if firstFP == "" {
				firstFP = fp
			} else if fp != firstFP {
				t.Errorf("build for kernel %s printed host key %s; the first build printed %s", c.rel.env["LAB_KVER"], fp, firstFP)
			}
			t.Parallel()
			bootArgs := args
			if c.cmdline != "" {
				bootArgs += " initrd_remix.ip=" + c.cmdline
			}
			b := &sshBoot{l: c.rel, tb: tb, image: image, args: bootArgs, nic: c.nic, fingerprint: fp, hostKey: hostKey(t, fp),
				key: client, wrong: wrong, wantAddr: "10.0.2.15", serverLog: `Accepted publickey for root from 10\.0\.2\.2`}
			if c.root == env["SSH_DROPBEAR_ROOT"] {
				b.serverLog = `Pubkey auth succeeded for 'root' with ssh-ed25519`
			}
			log := b.run(t)
			if c.static && (!strings.Contains(log, "10.0.2.15/24 (static)") || strings.Contains(log, "by DHCP")) {
				t.Error("the static ip= was not applied (no \"10.0.2.15/24 (static)\" on the console, or DHCP ran)")
			}
			if !c.static && !strings.Contains(log, "10.0.2.15/24 by DHCP") {
				t.Error("no address by DHCP on the console")
			}
			if want, ok := clients[c.root]; ok {
				// build chose the root's client; the console shows the
				// lease it reported; the client set the address itself
				// with the lease's lifetime ("dynamic", where the
				// scripts' ip addr add makes one valid forever) and
				// kept its lease. boot.sh's user network is
				// restrict=on: no gateway.
				if !strings.Contains(chosen, "the root's "+want.kind+" (") {
					t.Errorf("build chose another DHCP client than the root's %s: %s", want.kind, chosen)
				}
				// --dry-run --json says the same.
				code, out, errs := cli(t, "build", "--dry-run", "--json", "--root", c.root, "--input", c.rel.image(t, c.image).Path, "--kver", c.rel.env["LAB_KVER"],
					"--output", filepath.Join(t.TempDir(), "dry.img"), "--ssh", "--ssh-authorized-keys", client+".pub", "--ssh-host-keys", hostKeys)
				var rep struct {
					SSH struct {
						DHCP struct{ Kind, From, Program, Reason string }
					}
				}
				if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil {
					t.Errorf("build --dry-run --json: exit %d, %v: %s", code, err, errs)
				} else if d := rep.SSH.DHCP; d.Kind != want.kind || d.From != "root" || !strings.Contains(d.Reason, want.kind) {
					t.Errorf("build --dry-run --json: ssh.dhcp is %+v, want the root's %s", d, want.kind)
				}
				if !regexp.MustCompile(`10\.0\.2\.15/24 by DHCP \(` + regexp.QuoteMeta(want.kind) + `\)`).MatchString(log) {
					t.Errorf("the address did not come from %s; the console's lines:\n%s", want.kind, strings.Join(regexp.MustCompile(`(?m)^.*initrd-remix: .*$`).FindAllString(log, -1), "\n"))
				}
				if !regexp.MustCompile(`inet 10\.0\.2\.15/24 .*\bdynamic\b`).MatchString(b.session) {
					t.Errorf("the rescue's address 10.0.2.15/24 is not %s's (no lifetime: not \"dynamic\")", want.kind)
				}
				if !regexp.MustCompile(want.lease).MatchString(b.session) {
					t.Errorf("no lease file of %s (%s)", want.kind, want.lease)
				}
			}
			if c.cmdline != "" && !strings.Contains(log, "network from the kernel command line: "+c.cmdline) {
				t.Error("initrd_remix.ip= on the command line was not taken")
			}
		})
	}
}
