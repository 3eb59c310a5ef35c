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

// storageTool matches a command line that runs a storage tool.
var storageTool = regexp.MustCompile(`\b(mdadm|mdmon|lvm|pvscan|vgchange|lvchange|cryptsetup|systemd-cryptsetup|multipath|kpartx|dmraid|zpool|zfs|iscsiadm|nvme)\b`)

// udevRunsStorageTool reports whether a rules file runs a storage tool from
// a RUN, PROGRAM or IMPORT{program} key, however the key is spaced
// (`RUN += "..."`), optioned (`RUN{program}`) or continued over lines
// (udev joins a line ending in a backslash with the next).
func udevRunsStorageTool(body []byte) bool {
	text := strings.ReplaceAll(string(body), "\\\n", "")
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range udevProgram.FindAllStringSubmatch(line, -1) {
			if storageTool.MatchString(m[1]) {
				return true
			}
		}
	}
	return false
}

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

// udevPassiveRules only describe device-mapper and md devices that already
// exist: names and links (/dev/mapper/NAME, /dev/VG/LV, /dev/md/NAME,
// by-uuid) and libdevmapper's udev handshake (95-dm-notify). They never
// assemble, activate or unlock anything, so they stay when their programs
// are only those of udevPassiveProgram. Masking them makes vgchange and
// cryptsetup typed in the rescue shell wait forever for udev to complete
// their cookie, and leaves no /dev/VG/LV for mount.
var udevPassiveRules = words("10-dm.rules 11-dm.rules 13-dm-disk.rules 55-dm.rules 11-dm-lvm.rules 56-lvm.rules " +
	"59-persistent-storage-dm.rules 60-persistent-storage-dm.rules 59-persistent-storage-md.rules 63-md-raid-arrays.rules 95-dm-notify.rules")

// udevProgram matches a rule key that runs a program (not a udev builtin)
// and captures its command line.
var udevProgram = regexp.MustCompile(`\b(?:RUN|PROGRAM|IMPORT\{program\})(?:\{program\})?\s*[+:!]?==?\s*"([^"]*)"`)

// udevBuiltinRun matches RUN{builtin} keys, which run no program.
var udevBuiltinRun = regexp.MustCompile(`\bRUN\{builtin\}\s*[+:]?=\s*"[^"]*"`)

// udevPassiveProgram matches the only commands a passive rules file may run:
// queries and the dm cookie completion.
var udevPassiveProgram = regexp.MustCompile(`^(?:\S*/)?(?:dmsetup (?:udevflags|info|splitname|udevcomplete)|mdadm --detail|readlink|basename)(?:\s|$)`)

// udevPassive reports whether a rules file is one of udevPassiveRules and
// runs nothing but passive commands. It fails closed: a program key that
// udevProgram cannot read (a value split over lines, say) is not passive.
func udevPassive(name string, body []byte) bool {
	if !udevPassiveRules[name] {
		return false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range udevProgram.FindAllStringSubmatch(line, -1) {
			if !udevPassiveProgram.MatchString(strings.TrimSpace(m[1])) {
				return false
			}
		}
		rest := udevBuiltinRun.ReplaceAllString(udevProgram.ReplaceAllString(line, ""), "")
		if strings.Contains(rest, "RUN") || strings.Contains(rest, "PROGRAM") || strings.Contains(rest, "IMPORT{program}") {
			return false
		}
	}
	return true
}

// udevRuleDangerous says why a rules file must not run in a rescue image, or
// "" if it may.
func udevRuleDangerous(name string, n *remix.Node) string {
	if masked(n) || udevPassive(name, readAll(n)) {
		return ""
	}
	if anyToken(name, udevRuleWords) {
		return "storage rules (md/LVM/dm/crypt/multipath/btrfs) assemble or activate devices on their own"
	}
	if udevRunsStorageTool(readAll(n)) {
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
