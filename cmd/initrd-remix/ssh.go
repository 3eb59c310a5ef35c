package main

import (
	"fmt"

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
}

func newSSHReport(s *sshd.Setup) *sshReport {
	if s == nil {
		return nil
	}
	return &sshReport{HostKey: s.HostKey.Path, KeyType: s.HostKey.Public.Type(), Fingerprint: s.HostKey.Fingerprint,
		Created: s.HostKey.Created, AuthorizedKeys: s.AuthorizedKeysFile, Network: s.Network.String(), Programs: s.Programs}
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
		if b.dryRun && s.HostKey.Created {
			state = "would be created"
		}
		fmt.Fprintf(e.stderr, "ssh host key: %s %s (%s, %s)\n", s.HostKey.Public.Type(), s.HostKey.Fingerprint, termSafe(s.HostKey.Path), state)
		fmt.Fprintf(e.stderr, "ssh: root may log in with the keys of %s; network: %s\n", termSafe(s.AuthorizedKeysFile), s.Network.String())
	}
	return s, nil
}
