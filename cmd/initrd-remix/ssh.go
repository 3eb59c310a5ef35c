package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/config"

	"github.com/initrd-remix/initrd-remix/overlay/sshd"
	"github.com/spf13/pflag"
)

// sshReport is what --json says of the SSH server.
type sshReport struct {
	HostKey        string   `json:"host_key"`
	KeyType        string   `json:"key_type"`
	Fingerprint    string   `json:"fingerprint"`
	Created        bool     `json:"created"`
	AuthorizedKeys string   `json:"authorized_keys"`
	Network        string   `json:"network"`
	Programs       []string `json:"programs"`
	// DHCP is the DHCP client the rescue runs: which, from where, why.
	DHCP *sshd.DHCP `json:"dhcp"`
}

func newSSHReport(s *sshd.Setup, d *sshd.DHCP) *sshReport {
	if s == nil {
		return nil
	}
	if d == nil {
		d = &sshd.DHCP{}
	}
	return &sshReport{HostKey: s.HostKey.Path, KeyType: s.HostKey.Public.Type(), Fingerprint: s.HostKey.Fingerprint,
		Created: s.HostKey.Created, AuthorizedKeys: s.AuthorizedKeysFile, Network: s.Network.String(),
		Programs: slices.Concat(s.Programs, d.Programs), DHCP: d}
}

// prepareSSH reads --ssh and its options (flags or configuration, already
// merged into fs) and prepares the server: found in --root, keys read and
// the host key made once. It prints the fingerprint unless quiet.
func prepareSSH(e *env, fs *pflag.FlagSet, b *buildFlags, quiet bool) (*sshd.Setup, error) {
	if !b.ssh {
		for _, f := range []string{"ssh-authorized-keys", "ssh-host-keys", "ip"} {
			if fs.Lookup(f).Changed {
				return nil, usagef("--%s needs --ssh", f)
			}
		}
		return nil, nil
	}
	s, err := sshd.Prepare(sshd.Options{Root: b.root, KeyDir: b.sshHostKeys, AuthorizedKeys: b.sshKeys, IP: b.ip, DryRun: b.dryRun})
	if err != nil {
		return nil, err
	}
	if !quiet {
		state := "reused"
		if s.HostKey.Created {
			state = "created"
		}
		if s.HostKey.Temporary {
			state = "none yet: the build will create one; this fingerprint is a throwaway"
		}
		fmt.Fprintf(e.stderr, "ssh host key: %s %s (%s, %s)\n", s.HostKey.Public.Type(), s.HostKey.Fingerprint, termSafe(s.HostKey.Path), state)
		fmt.Fprintf(e.stderr, "ssh: root may log in with the keys of %s; network: %s\n", termSafe(s.AuthorizedKeysFile), s.Network.String())
	}
	return s, nil
}

// entryNetwork is the kernel argument that carries the configuration's
// network (ssh = yes with ip = SPEC) to a rescue boot entry:
// initrd_remix.ip=SPEC, which the rescue's SSH hook prefers to the network
// the image was built with, so it can be changed at the boot menu. A
// namespaced argument: a plain ip= would also drive the generator's own
// network scripts (dracut's, initramfs-tools' NFS root). "" when the
// configuration asks for no SSH or no ip.
func entryNetwork(file, dir string) (string, error) {
	cfg, err := config.Load(file, dir)
	if err != nil {
		return "", err
	}
	s, ok := cfg.Value("ssh")
	if !ok {
		return "", nil
	}
	on, err := config.ParseBool(s.Value)
	if err != nil {
		return "", fmt.Errorf("%s:%d: ssh wants true or false, got %q", s.File, s.Line, s.Value)
	}
	ip, ok := cfg.Value("ip")
	if !on || !ok {
		return "", nil
	}
	if _, err := sshd.ParseIP(ip.Value); err != nil {
		return "", fmt.Errorf("%s:%d: %w", ip.File, ip.Line, err)
	}
	return "initrd_remix.ip=" + strings.TrimPrefix(ip.Value, "ip="), nil
}

// printSSHNetwork says which DHCP client the SSH rescue runs, and why.
func printSSHNetwork(w io.Writer, rep *buildReport) {
	if rep.SSH == nil || rep.SSH.DHCP == nil {
		return
	}
	fmt.Fprintf(w, "ssh: DHCP client: %s\n", termSafe(rep.SSH.DHCP.String()))
}
