package sshd

import (
	"strings"
	"testing"
)

// FuzzParseIP: any input is parsed or refused without panicking, and what
// is accepted renders as quoted shell values the hook can source safely.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"", "dhcp", "off", "10.0.2.15::10.0.2.2:255.255.255.0::eth0:off", ":::::eth1:dhcp",
		"192.0.2.10:::255.255.255.128:rescue:enp1s0:none:192.0.2.53:192.0.2.54"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		n, err := ParseIP(spec)
		if err != nil {
			return
		}
		for _, line := range strings.Split(strings.TrimSpace(n.shellVars()), "\n") {
			_, v, _ := strings.Cut(line, "=")
			if strings.Count(v, "'") != 2 || strings.ContainsAny(v, "\n$`\\;") {
				t.Fatalf("ParseIP(%q): unsafe shell line %q", spec, line)
			}
		}
		_ = n.String()
	})
}

// FuzzParseAuthorizedKeys: any file is accepted or refused without
// panicking; what is accepted parses again to itself.
func FuzzParseAuthorizedKeys(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6i4s0nc1Lo6cD4m6Oc5Ck8iW8x6kXh8m2h9n0Ai3p a@b\n"))
	f.Add([]byte("# comment\n\nfrom=\"10.0.0.0/8\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx6i4s0nc1Lo6cD4m6Oc5Ck8iW8x6kXh8m2h9n0Ai3p\r\n"))
	f.Add([]byte("ssh-rsa garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseAuthorizedKeys(data)
		if err != nil {
			return
		}
		again, err := ParseAuthorizedKeys(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("accepted output does not parse to itself: %v", err)
		}
	})
}
