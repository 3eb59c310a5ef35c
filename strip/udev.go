package strip

import (
	"regexp"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/allow"
	"github.com/initrd-remix/initrd-remix/strip/udevrule"
	"github.com/initrd-remix/initrd-remix/strip/units"
)

// udevRuleWords are name words of rules files that assemble, activate or
// unlock storage (or only make sense once it is): md, LVM, device-mapper,
// dm-raid, multipath, btrfs multi-device, bcache, zfs.
var udevRuleWords = words("md mdadm mdraid raid imsm lvm dm dmraid crypt cryptsetup luks multipath kpartx btrfs bcache zfs iscsi nvmf")

// udevRuleDirs are where udev reads rules, lowest priority first; a file in
// etc/udev/rules.d overrides a same-named one anywhere else.
var udevRuleDirs = []string{"lib/udev/rules.d", "usr/lib/udev/rules.d", "usr/local/lib/udev/rules.d", "etc/udev/rules.d"}

// effectiveRules returns, by file name, the rules file udev would use.
func effectiveRules(t *remix.Tree) map[string]*remix.Node {
	return units.Effective(t, udevRuleDirs, ".rules")
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

// masked reports whether a unit, generator, rules file or script is
// disabled (see units.Masked).
func masked(n *remix.Node) bool { return units.Masked(n) }

// udevRules masks the rules files that assemble, activate or unlock
// storage by name (but the passive ones), and fails closed on every other
// file: a rule line that runs a program the allow-list does not know as a
// read-only udev helper, or that cannot be read, is commented out in an
// override of the file in etc/udev/rules.d.
func (e *editor) udevRules() error {
	eff := effectiveRules(e.t)
	for _, name := range sortedKeys(eff) {
		n := eff[name]
		if masked(n) {
			continue
		}
		kind, out, why := udevEdit(name, readAll(n))
		if why == "" {
			continue
		}
		if err := e.file(kind, why, "etc/udev/rules.d/"+name, 0o644, out); err != nil {
			return err
		}
	}
	return nil
}

// udevEdit says what a rules file needs in a rescue image: nothing (why is
// ""), a mask (MaskUdevRule: an empty file rather than a /dev/null link, a
// mask for every udev version that needs no /dev at unpack time) for the
// storage rules named so (but the passive ones), or an override with the
// rules that run programs not allowed commented out (DisableLines).
func udevEdit(name string, body []byte) (Kind, []byte, string) {
	if anyToken(name, udevRuleWords) && !udevPassive(name, body) {
		return MaskUdevRule, nil, "storage rules (md/LVM/dm/crypt/multipath/btrfs) assemble or activate devices on their own"
	}
	out, why := disableUdevLines(body)
	return DisableLines, out, why
}

// DisabledMark starts every line strip comments out of a rules file.
const disabledMark = "# initrd-remix disabled: "

// disableUdevLines returns body with every rule that runs a program not
// allowed (or that cannot be read) commented out, and why; why is "" when
// nothing had to be.
func disableUdevLines(body []byte) ([]byte, string) {
	lines := strings.Split(string(body), "\n")
	var progs []string
	off := map[int]bool{}
	for _, r := range udevrule.Rules(body) {
		bad := ""
		if r.Err != nil {
			bad = "an unreadable rule (" + r.Err.Error() + ")"
		}
		for _, k := range r.Keys {
			if k.Runs() && !allow.UdevProgram(k.Value) {
				bad = strings.Fields(k.Value + " ?")[0]
				break
			}
		}
		if bad == "" {
			continue
		}
		progs = append(progs, bad)
		for i := r.Line - 1; i < r.Line-1+r.Lines && i < len(lines); i++ {
			off[i] = true
		}
	}
	if len(off) == 0 {
		return nil, ""
	}
	var b strings.Builder
	b.WriteString("# initrd-remix: rules that run programs not known to be read-only udev helpers are disabled\n")
	for i, l := range lines {
		if i == len(lines)-1 && l == "" {
			break
		}
		if off[i] {
			b.WriteString(disabledMark)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return []byte(b.String()), "rules that run " + strings.Join(uniq(progs), ", ") + " (not a udev helper known to be read-only) disabled"
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// lineFilter is a configuration directory whose lines an allowed program
// acts on (systemd-tmpfiles, libkmod when udev loads a module), with the
// rule for a line and why a line is disabled.
type lineFilter struct {
	dirs []string
	etc  string
	ok   func(string) bool
	why  string
}

// lineFilters lists them.
func lineFilters() []lineFilter {
	return []lineFilter{
		{allow.TmpfilesDirs(), "etc/tmpfiles.d", allow.TmpfilesLine, "tmpfiles.d lines that would write into a device or a file outside kernel parameters and runtime files disabled"},
		{allow.ModprobeDirs(), "etc/modprobe.d", allow.ModprobeLine, "modprobe.d install/remove commands that run more than modprobe (libkmod runs them when udev loads the module) disabled"},
	}
}

// configLines comments out, in an override of the same name in etc, every
// line of the effective configuration files that a filter does not allow.
func (e *editor) configLines() error {
	for _, lf := range lineFilters() {
		eff := units.Effective(e.t, lf.dirs, ".conf")
		for _, name := range sortedKeys(eff) {
			n := eff[name]
			if masked(n) {
				continue
			}
			lines := strings.Split(string(readAll(n)), "\n")
			changed := false
			for i, l := range lines {
				if !lf.ok(l) {
					lines[i] = disabledMark + l
					changed = true
				}
			}
			if !changed {
				continue
			}
			if err := e.file(DisableLines, lf.why, lf.etc+"/"+name, 0o644, []byte(strings.Join(lines, "\n"))); err != nil {
				return err
			}
		}
	}
	return nil
}
