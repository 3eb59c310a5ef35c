package strip

import (
	"path"
	"regexp"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// udevRuleWords are name words of rules files that assemble, activate or
// unlock storage (or only make sense once it is): md, LVM, device-mapper,
// dm-raid, multipath, btrfs multi-device, bcache, zfs.
var udevRuleWords = words("md mdadm mdraid raid imsm lvm dm dmraid crypt cryptsetup luks multipath kpartx btrfs bcache zfs iscsi nvmf")

// udevActs matches a rule line that runs a storage tool.
var udevActs = regexp.MustCompile(`(?i)(RUN|PROGRAM|IMPORT\{program\})[+:!]?=+"[^"]*\b(mdadm|mdmon|lvm|pvscan|vgchange|lvchange|cryptsetup|systemd-cryptsetup|multipath|kpartx|dmraid|zpool|zfs|iscsiadm|nvme)\b`)

// udevRuleDirs are where udev reads rules, lowest priority first; a file in
// etc/udev/rules.d overrides a same-named one anywhere else.
var udevRuleDirs = []string{"lib/udev/rules.d", "usr/lib/udev/rules.d", "usr/local/lib/udev/rules.d", "etc/udev/rules.d"}

// effectiveRules returns, by file name, the rules file udev would use.
func effectiveRules(t *remix.Tree) map[string]*remix.Node {
	eff := map[string]*remix.Node{}
	for _, d := range uniqueDirs(t, udevRuleDirs...) {
		_, kids := children(t, d)
		for _, n := range kids {
			if strings.HasSuffix(n.Path, ".rules") {
				eff[path.Base(n.Path)] = n
			}
		}
	}
	return eff
}

// udevRuleDangerous says why a rules file must not run in a rescue image, or
// "" if it may.
func udevRuleDangerous(name string, n *remix.Node) string {
	if masked(n) {
		return ""
	}
	if anyToken(name, udevRuleWords) {
		return "storage rules (md/LVM/dm/crypt/multipath/btrfs) assemble or activate devices on their own"
	}
	if udevActs.Match(readAll(n)) {
		return "runs a storage tool from a udev rule"
	}
	return ""
}

// masked reports whether a unit, generator or rules file is disabled: a
// link to /dev/null or an empty (or comment-only) file.
func masked(n *remix.Node) bool {
	if n == nil {
		return true
	}
	switch n.Inode.Type() {
	case newc.TypeSymlink:
		return n.Inode.Target == "/dev/null"
	case newc.TypeReg:
		if n.Inode.Size() == 0 {
			return true
		}
		for _, line := range strings.Split(string(readAll(n)), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				return false
			}
		}
		return true
	case newc.TypeChar:
		return n.Inode.RDevMajor == 1 && n.Inode.RDevMinor == 3
	}
	return false
}

func (e *editor) udevRules() error {
	eff := effectiveRules(e.t)
	for _, name := range sortedKeys(eff) {
		if why := udevRuleDangerous(name, eff[name]); why != "" {
			// An empty file rather than a /dev/null link: it is a mask
			// for every udev version and needs no /dev at unpack time.
			if err := e.file(MaskUdevRule, why, "etc/udev/rules.d/"+name, 0o644, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
