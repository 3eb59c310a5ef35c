package sshd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/remix"
)

// DHCP client kinds, in the order the probe tries them (ChooseDHCP).
const (
	// ClientUdhcpc is busybox's udhcpc: it runs an event script of ours
	// (files/udhcpc.sh) that applies the lease with ip.
	ClientUdhcpc = "udhcpc"
	// ClientDhcpcd is dhcpcd (Debian 13's dhcpcd-base): it configures the
	// interface itself; its script (-c, files/dhcpcd.sh instead of
	// dhcpcd-run-hooks) only writes resolv.conf and says what it got. Its
	// privilege separation user chroots into its home directory.
	ClientDhcpcd = "dhcpcd"
	// ClientDhclient is ISC dhclient (isc-dhcp-client): it configures
	// nothing itself; its script (-sf, files/dhclient.sh instead of
	// dhclient-script) applies the lease with ip.
	ClientDhclient = "dhclient"
	// ClientIPConfig is klibc's ipconfig (initramfs-tools): it configures
	// the device itself and writes /run/net-DEV.conf. Only the image's
	// own: it is part of klibc-utils, which only initramfs-tools images use.
	ClientIPConfig = "ipconfig"
	// ClientNetworkd is systemd-networkd run as a plain daemon by the hook
	// (no systemd, D-Bus or socket needed: it works without a bus and
	// with udev's database as the image's udevd leaves it), with one
	// .network file per NIC in /run/systemd/network; it drops to the
	// systemd-network user, which must exist.
	ClientNetworkd = "systemd-networkd"
)

// DHCP is the DHCP client the rescue uses, and why.
type DHCP struct {
	// Kind is one of the Client constants; "" means no client (only a
	// static address or no network).
	Kind string `json:"kind,omitempty"`
	// Program is its path in the image.
	Program string `json:"program,omitempty"`
	// From is "image" (the image's own) or "root" (added from --root).
	From string `json:"from,omitempty"`
	// Reason says why it was chosen (or why none was).
	Reason string `json:"reason"`
	// Programs are what the network bring-up adds from --root (the
	// client, an ip program), for overlay.Options.Add.
	Programs []string `json:"programs,omitempty"`

	busybox string   // the root's busybox, run as "busybox udhcpc" / "busybox ip"
	dirs    []string // directories the client needs, made by the hook
	user    string   // the account the client drops to
	home    string   // that account's home directory (dhcpcd: its chroot)
}

// clientProbe is one kind of client and where it is installed.
type clientProbe struct {
	kind  string
	paths []string // absolute
	root  bool     // may come from --root
	dirs  []string
	user  string
	home  string
}

// probes is the probe order. The image's own clients come first (one
// that the image's generator put in works with the image's libraries),
// then the root's; within each, the order is what each client needs to
// run beside the hook: udhcpc and dhcpcd only a script of ours, dhclient
// also ip, ipconfig nothing but gives no DNS to the banner, and
// systemd-networkd a user, its runtime directory and the udev database,
// and is the largest.
func probes() []clientProbe {
	bin := func(name string, dirs ...string) []string {
		var out []string
		for _, d := range dirs {
			out = append(out, d+"/"+name)
		}
		return out
	}
	sbin := []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}
	return []clientProbe{
		{kind: ClientUdhcpc, paths: bin("udhcpc", sbin...)},
		{kind: ClientDhcpcd, paths: bin("dhcpcd", sbin...), root: true,
			dirs: []string{"/run/dhcpcd", "/var/lib/dhcpcd"}, user: "dhcpcd", home: "/run/initrd-remix/dhcpcd"},
		{kind: ClientDhclient, paths: bin("dhclient", sbin...), root: true},
		{kind: ClientIPConfig, paths: append(bin("ipconfig", sbin...), "/usr/lib/klibc/bin/ipconfig")},
		{kind: ClientNetworkd, paths: bin("systemd-networkd", "/usr/lib/systemd", "/lib/systemd"), root: true,
			dirs: []string{"/run/systemd/network"}, user: "systemd-network", home: "/"},
	}
}

// rootNet is what Prepare found in --root for the network.
type rootNet struct {
	busybox string            // a busybox with the udhcpc applet
	ip      string            // iproute2's ip (or another standalone ip)
	clients map[string]string // kind -> path
	users   map[string]bool   // accounts the root's passwd has
	tried   []string
}

// findNetwork looks in the root for what the network bring-up may use.
func findNetwork(res *ldso.Resolver, root string) rootNet {
	rn := rootNet{clients: map[string]string{}, users: map[string]bool{}}
	regular := func(p string) bool {
		_, _, mode, err := res.Walk(p)
		return err == nil && mode.IsRegular()
	}
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox", "/usr/sbin/busybox"} {
		rn.tried = append(rn.tried, p)
		if regular(p) && hasApplet(res, p, "udhcpc") {
			rn.busybox = p
			break
		}
	}
	for _, p := range []string{"/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"} {
		if regular(p) {
			rn.ip = p
			break
		}
	}
	for _, c := range probes() {
		if !c.root {
			continue
		}
		for _, p := range c.paths {
			rn.tried = append(rn.tried, p)
			if regular(p) {
				rn.clients[c.kind] = p
				break
			}
		}
	}
	if f, err := os.Open(filepath.Join(root, "etc/passwd")); err == nil {
		sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
		for sc.Scan() {
			if name, _, ok := strings.Cut(sc.Text(), ":"); ok {
				rn.users[name] = true
			}
		}
		f.Close()
	}
	return rn
}

// hasApplet says whether the busybox at p was built with applet (its
// applet names are one NUL-separated list).
func hasApplet(res *ldso.Resolver, p, applet string) bool {
	_, phys, _, err := res.Walk(p)
	if err != nil {
		return false
	}
	data, err := os.ReadFile(filepath.Join(res.Root(), phys))
	if err != nil {
		return false
	}
	return bytes.Contains(data, []byte("\x00"+applet+"\x00"))
}

// imageHas returns the first of paths that is a regular file (through
// links) in tree, or "".
func imageHas(tree *remix.Tree, paths ...string) string {
	for _, p := range paths {
		if _, n, err := tree.Resolve(strings.TrimPrefix(p, "/"), true); err == nil && n != nil && n.IsRegular() {
			return p
		}
	}
	return ""
}

// ChooseDHCP picks the rescue's DHCP client for the image in tree (after
// strip, before the overlay): the image's own where it has one, in the
// order of probes, else the root's busybox udhcpc, dhcpcd, dhclient,
// systemd-networkd. It also settles the ip program the hook and the
// event scripts use (the image's, else the root's iproute2 ip, else the
// root's busybox). With DHCP asked for and no client anywhere, or a
// static address or a client that needs ip and no ip anywhere, it fails
// naming what it looked for. The Setup is not changed: one Setup serves
// builds of several images.
func (s *Setup) ChooseDHCP(tree *remix.Tree) (*DHCP, error) {
	d := &DHCP{}
	var lookedFor []string
	for _, c := range probes() {
		lookedFor = append(lookedFor, c.paths...)
		if p := imageHas(tree, c.paths...); p != "" {
			d.Kind, d.Program, d.From = c.kind, p, "image"
			d.Reason = "the image's own " + c.kind + " (" + p + ")"
			d.dirs, d.user, d.home = c.dirs, c.user, c.home
			break
		}
	}
	rn := s.net
	if d.Kind == "" {
		if rn.busybox != "" {
			d.Kind, d.Program, d.From, d.busybox = ClientUdhcpc, rn.busybox, "root", rn.busybox
			d.Reason = "the image has no DHCP client; the root's busybox udhcpc (" + rn.busybox + ")"
			d.Programs = append(d.Programs, rn.busybox)
		} else {
			for _, c := range probes() {
				if p, ok := rn.clients[c.kind]; ok {
					d.Kind, d.Program, d.From = c.kind, p, "root"
					d.Reason = "the image has no DHCP client and the root no busybox with udhcpc; the root's " + c.kind + " (" + p + ")"
					d.Programs = append(d.Programs, p)
					d.dirs, d.user, d.home = c.dirs, c.user, c.home
					break
				}
			}
		}
	}
	if d.Kind == "" {
		d.Reason = "no DHCP client in the image or the root"
		if s.Network.Mode == "dhcp" {
			return nil, fmt.Errorf("ssh: no DHCP client in the image (looked for %s) or in the root %s (looked for %s): "+
				"install busybox, dhcpcd-base or isc-dhcp-client there, or give a static ip=",
				strings.Join(lookedFor, ", "), s.root, strings.Join(rn.tried, ", "))
		}
	}
	if d.Kind == ClientDhcpcd && d.From == "root" && !rn.users[d.user] {
		// dhcpcd runs without privilege separation when its user is
		// missing (it says "no such user"); the root's package makes
		// the user its build names. Without one there, none here.
		d.user, d.home = "", ""
	}
	// ip: the hook sets static addresses, brings lo up and lists the
	// addresses for the banner; udhcpc's and dhclient's scripts apply
	// the lease with it.
	needIP := s.Network.Mode == "static" || d.Kind == ClientUdhcpc || d.Kind == ClientDhclient || d.Kind == ClientNetworkd
	switch {
	case imageHas(tree, "/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip") != "" || d.busybox != "":
	case rn.ip != "":
		d.Programs = append(d.Programs, rn.ip)
	case rn.busybox != "":
		d.busybox = rn.busybox
		d.Programs = append(d.Programs, rn.busybox)
	case needIP:
		what := "to set the static address"
		if s.Network.Mode != "static" {
			what = "for " + d.Kind + "'s lease"
		}
		return nil, fmt.Errorf("ssh: no ip program (iproute2 or busybox) in the image or the root %s %s", s.root, what)
	}
	return d, nil
}

// String says what was chosen, for the build's output.
func (d *DHCP) String() string {
	if d == nil {
		return "none"
	}
	return d.Reason
}

// shellVars are the client's lines of rescue.conf.
func (d *DHCP) shellVars() string {
	return fmt.Sprintf("DHCP_CLIENT='%s'\nDHCP_PROG='%s'\nDHCP_DIRS='%s'\nDHCP_USER='%s'\nDHCP_HOME='%s'\nBUSYBOX='%s'\n",
		d.Kind, d.Program, strings.Join(d.dirs, " "), d.user, d.home, d.busybox)
}
