// Package sshd puts an SSH server into the rescue image: OpenSSH's sshd
// from --root with every helper it executes (sshd-session and sshd-auth
// from OpenSSH 9.8 on), or Dropbear where the root has only that, the
// project's own sshd_config (public keys only,
// root by key, no passwords, whatever the root's sshd_config says), the
// machine's host key (made once under /etc/initrd-remix/ssh and reused by
// every build), the authorized keys, passwd/group/shadow entries for root
// and the privilege separation user, and a rescue hook that brings the
// network up (DHCP on every wired NIC, or the kernel's ip= syntax) and
// starts the server. Nothing in it touches storage.
//
// Programs are added through the overlay (Setup.Programs go into
// overlay.Options.Add: interpreter and libraries resolved in the root);
// Install writes the rest into the tree after the overlay ran.
package sshd

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/remix"
)

// Paths inside the rescue image.
const (
	ConfDir        = "/etc/initrd-remix/ssh"
	configPath     = ConfDir + "/sshd_config"
	authorizedPath = ConfDir + "/authorized_keys"
	hostKeyPath    = ConfDir + "/" + HostKeyName
	// dropbearKeyPath is the same host key in Dropbear's format.
	dropbearKeyPath = ConfDir + "/dropbear_ed25519_host_key"
	rescueConfPath  = ConfDir + "/rescue.conf"
	hookPath        = "/usr/lib/initrd-remix/rescue.d/50-ssh"
	udhcpcScript    = "/usr/lib/initrd-remix/udhcpc.script"
	dhcpcdScript    = "/usr/lib/initrd-remix/dhcpcd.script"
	dhclientScript  = "/usr/lib/initrd-remix/dhclient.script"
	ipParserPath    = "/usr/lib/initrd-remix/ssh-ip.sh"
	privsepUser     = "sshd"
)

//go:embed files/rescue-ssh.sh
var hookScript []byte

//go:embed files/udhcpc.sh
var udhcpcBody []byte

//go:embed files/ip.sh
var ipParser []byte

//go:embed files/dhcpcd.sh
var dhcpcdBody []byte

//go:embed files/dhclient.sh
var dhclientBody []byte

// Options say where the server, keys and network settings come from.
type Options struct {
	// Root is --root: sshd, and the DHCP client where the image has
	// none, are taken from it.
	Root string
	// KeyDir holds the host key; "" is Root/etc/initrd-remix/ssh.
	KeyDir string
	// AuthorizedKeys names the authorized_keys file; "" searches
	// AuthorizedKeysSearch(Root).
	AuthorizedKeys string
	// IP is the kernel's ip= syntax; "" is DHCP on every wired NIC.
	IP string
	// DryRun makes no host key on disk (a missing one is made in memory).
	DryRun bool
}

// Setup is what Prepare found: the programs the overlay adds and the
// files Install writes.
type Setup struct {
	// Programs are absolute paths inside the root, for overlay.Options.Add.
	Programs []string
	HostKey  *HostKey
	// AuthorizedKeysFile is the file the keys came from.
	AuthorizedKeysFile string
	Network            Network

	root       string
	sshd       string   // path of sshd (or dropbear) in the root and the image
	dropbear   bool     // the server is Dropbear
	privsep    []string // privilege separation directories named in the binaries
	net        rootNet  // the root's DHCP clients and ip, for ChooseDHCP
	authorized []byte
}

// DefaultKeyDir is where the host key of the machine whose root is root
// lives.
func DefaultKeyDir(root string) string { return filepath.Join(root, ConfDir) }

// Prepare finds the SSH server and a DHCP client in opts.Root, reads the
// authorized keys and loads (or makes, once) the host key.
func Prepare(opts Options) (*Setup, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	net, err := ParseIP(opts.IP)
	if err != nil {
		return nil, err
	}
	s := &Setup{Network: net, root: root}
	res, err := ldso.NewResolver(root, ldso.Options{})
	if err != nil {
		return nil, err
	}
	if err := s.findServer(res, root); err != nil {
		return nil, err
	}
	s.net = findNetwork(res, root)
	if s.AuthorizedKeysFile, err = FindAuthorizedKeys(opts.AuthorizedKeys, root); err != nil {
		return nil, err
	}
	if s.authorized, err = ReadAuthorizedKeys(s.AuthorizedKeysFile); err != nil {
		return nil, err
	}
	dir := opts.KeyDir
	if dir == "" {
		dir = DefaultKeyDir(root)
	}
	if s.HostKey, err = LoadOrCreateHostKey(dir, !opts.DryRun); err != nil {
		return nil, err
	}
	return s, nil
}

// findServer finds OpenSSH's sshd on the root's sbin directories and the
// helpers and directories its build names (sshd-session, sshd-auth, the
// privilege separation directory), from the strings in the binaries.
func (s *Setup) findServer(res *ldso.Resolver, root string) error {
	var tried []string
	for _, p := range []string{"/usr/sbin/sshd", "/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd"} {
		tried = append(tried, p)
		if _, _, mode, err := res.Walk(p); err == nil && mode.IsRegular() {
			s.sshd = p
			break
		}
	}
	if s.sshd == "" {
		// Dropbear, where that is what the root has.
		for _, p := range []string{"/usr/sbin/dropbear", "/sbin/dropbear", "/usr/bin/dropbear", "/usr/local/sbin/dropbear"} {
			tried = append(tried, p)
			if _, _, mode, err := res.Walk(p); err == nil && mode.IsRegular() {
				s.sshd, s.dropbear = p, true
				s.Programs = append(s.Programs, p)
				return nil
			}
		}
		return fmt.Errorf("no SSH server in %s (looked for %s): install openssh-server (or dropbear-bin) there", root, strings.Join(tried, ", "))
	}
	s.Programs = append(s.Programs, s.sshd)
	queue := []string{s.sshd}
	seen := map[string]bool{s.sshd: true}
	privsep := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		strs, err := pathStrings(res, p)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", p, root, err)
		}
		for _, str := range strs {
			base := path.Base(str)
			switch {
			case base == "sshd-session" || base == "sshd-auth":
				if seen[str] {
					continue
				}
				seen[str] = true
				if _, _, mode, err := res.Walk(str); err != nil || !mode.IsRegular() {
					return fmt.Errorf("%s in %s runs %s, which the root lacks", p, root, str)
				}
				s.Programs = append(s.Programs, str)
				queue = append(queue, str)
			case str == "/run/sshd" || str == "/var/run/sshd" || str == "/var/empty" || str == "/var/empty/sshd":
				privsep[str] = true
			}
		}
	}
	if len(privsep) == 0 {
		privsep["/run/sshd"] = true
	}
	for d := range privsep {
		s.privsep = append(s.privsep, d)
	}
	sort.Strings(s.privsep)
	return nil
}

// pathStrings returns the NUL-terminated strings of a file (up to 64 MiB)
// that are absolute paths.
func pathStrings(res *ldso.Resolver, p string) ([]string, error) {
	_, phys, _, err := res.Walk(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(res.Root(), phys))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, str := range bytes.Split(data, []byte{0}) {
		if len(str) < 2 || len(str) > 256 || str[0] != '/' {
			continue
		}
		ok := true
		for _, c := range str {
			if c < 0x21 || c > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, string(str))
		}
	}
	return out, nil
}

// SSHDConfig is the rescue's sshd_config.
func (s *Setup) SSHDConfig() string {
	return `# initrd-remix rescue: the SSH server's configuration, written by
# initrd-remix build --ssh. The root's own sshd_config is not read.
Port 22
AddressFamily any
HostKey ` + hostKeyPath + `
AuthorizedKeysFile ` + authorizedPath + `
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitEmptyPasswords no
PermitRootLogin prohibit-password
UsePAM no
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
PidFile /run/initrd-remix/sshd.pid
SetEnv PATH=/usr/sbin:/usr/bin:/sbin:/bin:/run/initrd-remix/bin ENV=/usr/lib/initrd-remix/shrc
Subsystem sftp internal-sftp
`
}

// rescueConf is what the hook script sources.
func (s *Setup) rescueConf(d *DHCP) string {
	var b strings.Builder
	b.WriteString("# initrd-remix rescue: network and SSH settings of this image (build --ssh, --ip).\n")
	kind := "openssh"
	if s.dropbear {
		kind = "dropbear"
	}
	fmt.Fprintf(&b, "SSHD='%s'\nSSHD_KIND='%s'\nSSHD_CONFIG='%s'\nDROPBEAR_KEY='%s'\nSSHD_PRIVSEP='%s'\n",
		s.sshd, kind, configPath, dropbearKeyPath, strings.Join(s.privsep, " "))
	fmt.Fprintf(&b, "UDHCPC_SCRIPT='%s'\nDHCPCD_SCRIPT='%s'\nDHCLIENT_SCRIPT='%s'\n", udhcpcScript, dhcpcdScript, dhclientScript)
	b.WriteString(d.shellVars())
	fmt.Fprintf(&b, "SSH_FINGERPRINT='%s %s'\n", s.HostKey.Public.Type(), s.HostKey.Fingerprint)
	b.WriteString(s.Network.shellVars())
	return b.String()
}

// Install writes the server's configuration, keys, accounts and the rescue
// hook into tree, with d (from ChooseDHCP, its programs added by the
// overlay) as the DHCP client.
func (s *Setup) Install(tree *remix.Tree, d *DHCP) error {
	mtime := uint32(0)
	if n := tree.Lookup("init"); n != nil {
		mtime = n.Inode.Mtime
	}
	if _, n, err := tree.Resolve(strings.TrimPrefix(s.sshd, "/"), true); err != nil || n == nil {
		return fmt.Errorf("ssh: %s did not make it into the image", s.sshd)
	}
	if d.Program != "" && imageHas(tree, d.Program) == "" {
		return fmt.Errorf("ssh: the DHCP client %s did not make it into the image", d.Program)
	}
	users := []sysUser{{privsepUser, "sshd privilege separation", "/run/sshd", true}}
	if d.user != "" {
		users = append(users, sysUser{d.user, d.Kind + " (initrd-remix rescue)", d.home, false})
	}
	passwd, group, shadow, err := accounts(tree, users)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		mode uint32
		body []byte
	}{
		{configPath, 0o644, []byte(s.SSHDConfig())},
		{hostKeyPath, 0o600, s.HostKey.Private},
		{hostKeyPath + ".pub", 0o644, []byte(s.HostKey.AuthorizedLine() + " initrd-remix-rescue\n")},
		{authorizedPath, 0o600, s.authorized},
		{rescueConfPath, 0o644, []byte(s.rescueConf(d))},
		{hookPath, 0o755, hookScript},
		{udhcpcScript, 0o755, udhcpcBody},
		{dhcpcdScript, 0o755, dhcpcdBody},
		{dhclientScript, 0o755, dhclientBody},
		{ipParserPath, 0o644, ipParser},
		{"/etc/passwd", 0o644, passwd},
		{"/etc/group", 0o644, group},
		{"/etc/shadow", 0o600, shadow},
	}
	if _, err := tree.MkdirAll(remix.Canonical(ConfDir), 0o755, mtime); err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	for _, f := range files {
		e := remix.File(f.name, f.mode, remix.BytesContent(f.body))
		e.Mtime = mtime
		if _, err := tree.Install(e, remix.ParentMtime(mtime)); err != nil {
			return fmt.Errorf("ssh: %w", err)
		}
	}
	for _, d := range []string{"/root", "/root/.ssh"} {
		home := remix.Dir(d, 0o700)
		home.Mtime = mtime
		if n := tree.Lookup(strings.TrimPrefix(d, "/")); n == nil {
			if _, err := tree.Install(home); err != nil {
				return fmt.Errorf("ssh: %w", err)
			}
		}
	}
	if !s.dropbear {
		return nil
	}
	// Dropbear has no configuration file: its host key in its own format,
	// root's authorized_keys where it looks, options on its command line
	// (the hook's: -s, no passwords).
	key, err := s.HostKey.DropbearPrivate()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		body []byte
	}{{dropbearKeyPath, key}, {"/root/.ssh/authorized_keys", s.authorized}} {
		e := remix.File(f.name, 0o600, remix.BytesContent(f.body))
		e.Mtime = mtime
		if _, err := tree.Install(e, remix.ParentMtime(mtime)); err != nil {
			return fmt.Errorf("ssh: %w", err)
		}
	}
	return nil
}

// sysUser is a system account the rescue's daemons drop to.
type sysUser struct {
	name, comment, home string
	// replace: the image's own entry of that name is replaced (else kept).
	replace bool
}

// accounts returns the image's passwd, group and shadow with the rescue's
// root and the daemons' users (sshd's privilege separation user, the DHCP
// client's): root's password field is "*", which no password matches and
// which OpenSSH does not take for a locked account (with UsePAM no, a
// shadow field starting with "!" refuses even key logins:
// LOCKED_PASSWD_PREFIX on Linux). Each user gets a uid the image does not
// use and the group nogroup.
func accounts(tree *remix.Tree, users []sysUser) (passwd, group, shadow []byte, err error) {
	read := func(name string) ([]string, error) {
		_, n, err := tree.Resolve(name, true)
		if err != nil || n == nil || !n.IsRegular() || n.Inode.Content == nil {
			return nil, nil
		}
		r, err := n.Inode.Content.Open()
		if err != nil {
			return nil, fmt.Errorf("ssh: %s of the image: %w", name, err)
		}
		defer r.Close()
		var lines []string
		sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				lines = append(lines, l)
			}
		}
		return lines, sc.Err()
	}
	pw, err := read("etc/passwd")
	if err != nil {
		return nil, nil, nil, err
	}
	gr, err := read("etc/group")
	if err != nil {
		return nil, nil, nil, err
	}
	sh, err := read("etc/shadow")
	if err != nil {
		return nil, nil, nil, err
	}
	usedUID, usedGID := map[int]bool{}, map[int]bool{}
	gidOf := map[string]string{}
	drop := func(lines []string, names ...string) []string {
		var out []string
		for _, l := range lines {
			name, _, _ := strings.Cut(l, ":")
			keep := true
			for _, n := range names {
				if name == n {
					keep = false
				}
			}
			if keep {
				out = append(out, l)
			}
		}
		return out
	}
	names := []string{"root"}
	have := map[string]bool{}
	for _, l := range pw {
		name, _, _ := strings.Cut(l, ":")
		have[name] = true
	}
	var add []sysUser
	for _, u := range users {
		if u.replace || !have[u.name] {
			names = append(names, u.name)
			add = append(add, u)
		}
	}
	pw = drop(pw, names...)
	sh = drop(sh, names...)
	for _, l := range pw {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if u, err := strconv.Atoi(f[2]); err == nil {
				usedUID[u] = true
			}
		}
	}
	for _, l := range gr {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if g, err := strconv.Atoi(f[2]); err == nil {
				usedGID[g] = true
			}
			gidOf[f[0]] = f[2]
		}
	}
	if _, ok := gidOf["root"]; !ok {
		gr = append([]string{"root:x:0:"}, gr...)
		gidOf["root"] = "0"
	}
	nogroup, ok := gidOf["nogroup"]
	if !ok {
		if usedGID[65534] {
			return nil, nil, nil, errors.New("ssh: the image's group 65534 is not nogroup")
		}
		gr = append(gr, "nogroup:x:65534:")
		nogroup = "65534"
	}
	pw = append([]string{"root:x:0:0:root:/root:/bin/sh"}, pw...)
	sh = append([]string{"root:*:1::::::"}, sh...)
	uid := 100
	for _, u := range add {
		for usedUID[uid] {
			uid++
		}
		usedUID[uid] = true
		pw = append(pw, fmt.Sprintf("%s:x:%d:%s:%s:%s:/bin/false", u.name, uid, nogroup, u.comment, u.home))
		sh = append(sh, u.name+":*:1::::::")
	}
	join := func(l []string) []byte { return []byte(strings.Join(l, "\n") + "\n") }
	return join(pw), join(gr), join(sh), nil
}
