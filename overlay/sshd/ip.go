package sshd

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Network is how the rescue configures its network, parsed from the
// kernel's ip= syntax (Documentation/admin-guide/nfs/nfsroot.rst):
//
//	ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// or one word: dhcp, on, any, both, bootp (DHCP) or off, none (nothing
// configured). Only IPv4, as the kernel's own autoconfiguration.
type Network struct {
	// Mode is "dhcp", "static" or "off".
	Mode string
	// Addr is the static address with its prefix length.
	Addr netip.Prefix
	// Gateway is the default route's gateway, if any.
	Gateway netip.Addr
	// Device is the one interface to configure; "" means every wired NIC
	// (DHCP) or the first one (static).
	Device   string
	Hostname string
	DNS      []netip.Addr
}

var (
	deviceRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)
)

// ParseIP parses the value of a kernel ip= argument ("" is dhcp).
func ParseIP(spec string) (Network, error) {
	spec = strings.TrimPrefix(spec, "ip=")
	switch spec {
	case "", "dhcp", "on", "any", "both", "bootp", "rarp":
		return Network{Mode: "dhcp"}, nil
	case "off", "none":
		return Network{Mode: "off"}, nil
	}
	f := strings.Split(spec, ":")
	if len(f) > 10 {
		return Network{}, fmt.Errorf("ip=%s: %d fields, the kernel's syntax has at most 10 (client:server:gateway:netmask:hostname:device:autoconf:dns0:dns1:ntp0)", spec, len(f))
	}
	for len(f) < 10 {
		f = append(f, "")
	}
	var n Network
	if f[5] != "" {
		if !deviceRe.MatchString(f[5]) {
			return Network{}, fmt.Errorf("ip=%s: bad device name %q", spec, f[5])
		}
		n.Device = f[5]
	}
	if f[4] != "" {
		if !hostnameRe.MatchString(f[4]) {
			return Network{}, fmt.Errorf("ip=%s: bad host name %q", spec, f[4])
		}
		n.Hostname = f[4]
	}
	for _, d := range f[7:9] {
		if d == "" {
			continue
		}
		a, err := parseV4(d)
		if err != nil {
			return Network{}, fmt.Errorf("ip=%s: DNS server: %w", spec, err)
		}
		n.DNS = append(n.DNS, a)
	}
	if f[9] != "" {
		if _, err := parseV4(f[9]); err != nil {
			return Network{}, fmt.Errorf("ip=%s: NTP server: %w", spec, err)
		}
	}
	if f[1] != "" {
		if _, err := parseV4(f[1]); err != nil {
			return Network{}, fmt.Errorf("ip=%s: server: %w", spec, err)
		}
	}
	switch f[6] {
	case "", "off", "none":
	case "dhcp", "on", "any", "both", "bootp", "rarp":
		if f[0] != "" {
			return Network{}, fmt.Errorf("ip=%s: a client address with autoconf %q (leave one of them out)", spec, f[6])
		}
		n.Mode = "dhcp"
		return n, nil
	default:
		return Network{}, fmt.Errorf("ip=%s: unknown autoconf %q (off, none, dhcp, on, any, both, bootp)", spec, f[6])
	}
	if f[0] == "" {
		return Network{}, fmt.Errorf("ip=%s: no client address and no autoconf method", spec)
	}
	addr, err := parseV4(f[0])
	if err != nil {
		return Network{}, fmt.Errorf("ip=%s: client address: %w", spec, err)
	}
	bits := classBits(addr)
	if f[3] != "" {
		mask, err := parseV4(f[3])
		if err != nil {
			return Network{}, fmt.Errorf("ip=%s: netmask: %w", spec, err)
		}
		if bits, err = maskBits(mask); err != nil {
			return Network{}, fmt.Errorf("ip=%s: netmask: %w", spec, err)
		}
	}
	n.Mode = "static"
	n.Addr = netip.PrefixFrom(addr, bits)
	if f[2] != "" {
		gw, err := parseV4(f[2])
		if err != nil {
			return Network{}, fmt.Errorf("ip=%s: gateway: %w", spec, err)
		}
		if !n.Addr.Masked().Contains(gw) {
			return Network{}, fmt.Errorf("ip=%s: gateway %s is not in %s", spec, gw, n.Addr.Masked())
		}
		n.Gateway = gw
	}
	return n, nil
}

func parseV4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%s: not an IPv4 address (the kernel's ip= is IPv4 only)", s)
	}
	return a, nil
}

// classBits is the kernel's default netmask: the address class.
func classBits(a netip.Addr) int {
	b := a.As4()[0]
	switch {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}

func maskBits(m netip.Addr) (int, error) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("%s is not a contiguous netmask", m)
	}
	return n, nil
}

// shellVars renders the network for the rescue's hook script: NAME='value'
// lines of validated values only.
func (n Network) shellVars() string {
	var b strings.Builder
	fmt.Fprintf(&b, "NET_MODE='%s'\nNET_DEVICE='%s'\nNET_HOSTNAME='%s'\n", n.Mode, n.Device, n.Hostname)
	if n.Mode == "static" {
		fmt.Fprintf(&b, "NET_ADDR='%s'\n", n.Addr)
		if n.Gateway.IsValid() {
			fmt.Fprintf(&b, "NET_GATEWAY='%s'\n", n.Gateway)
		} else {
			b.WriteString("NET_GATEWAY=''\n")
		}
	}
	var dns []string
	for _, d := range n.DNS {
		dns = append(dns, d.String())
	}
	fmt.Fprintf(&b, "NET_DNS='%s'\n", strings.Join(dns, " "))
	return b.String()
}

// String says what the rescue will do, for the build's output.
func (n Network) String() string {
	dev := "every wired NIC"
	if n.Device != "" {
		dev = n.Device
	}
	switch n.Mode {
	case "dhcp":
		return "DHCP on " + dev
	case "static":
		if n.Device == "" {
			dev = "the first wired NIC"
		}
		s := fmt.Sprintf("%s on %s", n.Addr, dev)
		if n.Gateway.IsValid() {
			s += ", gateway " + n.Gateway.String()
		}
		return s
	}
	return "none (ip=off)"
}
