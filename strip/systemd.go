package strip

import (
	"path"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/allow"
	"github.com/initrd-remix/initrd-remix/strip/unitfile"
	"github.com/initrd-remix/initrd-remix/strip/units"
)

// ---- systemd ----

// ours are the units the systemd edit writes itself.
var ours = map[string]bool{allow.RescueService: true, allow.EmergencyService: true, "initrd.target": true, "default.target": true}

// systemd fails closed: every unit the image defines or links is masked
// unless the allow-list (strip/allow) vouches for it, by name and by the
// programs it runs; a drop-in that makes an allowed unit run anything else
// is masked; every generator but the command-line ones, every environment
// generator and every shutdown program is masked. The rescue entry point
// becomes the console service, initrd.target and default.target its target,
// emergency.service the rescue too.
func (e *editor) systemd() error {
	set := units.New(e.t)
	names := map[string]bool{}
	for _, u := range set.Names() {
		names[u] = true
	}
	for _, u := range allow.RootUnits() {
		names[u] = true
	}
	for _, u := range sortedKeys(names) {
		if ours[u] || strings.HasPrefix(u, "initrd-remix") {
			continue
		}
		if err := e.judgeUnit(set, u); err != nil {
			return err
		}
	}
	if err := e.maskExecutables(MaskGenerator, units.GeneratorDirs, "etc/systemd/system-generators", allow.Generator,
		"a generator that is not on the allow-list: it could write root, fstab, crypttab, gpt-auto, resume or any other units"); err != nil {
		return err
	}
	if err := e.maskExecutables(MaskGenerator, units.EnvGeneratorDirs, "etc/systemd/system-environment-generators", nil,
		"an environment generator: a program systemd runs at start"); err != nil {
		return err
	}
	if err := e.maskExecutables(MaskGenerator, units.ShutdownDirs, "etc/systemd/system-shutdown", nil,
		"a program systemd-shutdown runs last (md, dm and LUKS shutdown steps)"); err != nil {
		return err
	}
	if err := e.file(AddFile, "the rescue entry point as a console service", e.unitPath(allow.RescueService), 0o644, embedded("rescue.service")); err != nil {
		return err
	}
	if err := e.file(OverrideConfig, "should anything fail, the emergency service is the rescue entry point, not the distribution's emergency shell and hooks",
		e.unitPath(allow.EmergencyService), 0o644, embedded("emergency.service")); err != nil {
		return err
	}
	if err := e.file(OverrideConfig, "initrd.target brings up basic.target (udev, coldplug, modules, console) and the rescue, not the root", e.unitPath("initrd.target"), 0o644, embedded("rescue.target")); err != nil {
		return err
	}
	// A relative link resolves in etc/systemd/system, to the override above.
	return e.put(OverrideConfig, "default.target is the overridden initrd.target", remix.Symlink(e.unitPath("default.target"), "initrd.target"))
}

// judgeUnit keeps an allowed unit (masking drop-ins that would make it run
// something else) and masks every other one.
func (e *editor) judgeUnit(set *units.Set, u string) error {
	if _, n := set.Node(u); n != nil && set.Masked(u) {
		return nil
	}
	// A unit is judged as the name it is loaded as, too: an alias link
	// to a unit of another name is that unit.
	main, err := set.Main(u)
	if err != nil {
		return e.mask(MaskUnit, "unreadable, so not known to be harmless: "+err.Error(), e.unitPath(u))
	}
	ok, why := allow.Check(u, main)
	if a := set.Alias(u); ok && a != u {
		if ok, why = allow.Check(a, main); !ok {
			why = "an alias of " + a + ": " + why
		}
	}
	if !ok {
		return e.mask(MaskUnit, why, e.unitPath(u))
	}
	// The unit may run; no drop-in may make it run anything else.
	merged := main
	for _, d := range set.Dropins(u) {
		if units.Masked(d.Node) {
			continue
		}
		df, err := units.Parse(e.t, d.Path, d.Node)
		dwhy := ""
		if err != nil {
			dwhy = "unreadable, so not known to be harmless: " + err.Error()
		} else if dok, w := allow.Check(u, unitfile.Merge(merged, df)); !dok {
			dwhy = w
		} else {
			merged = unitfile.Merge(merged, df)
			continue
		}
		if err := e.mask(MaskUnit, "drop-in of the allowed "+u+": "+dwhy, e.unitPath(u+".d/"+d.Name)); err != nil {
			return err
		}
	}
	p, _ := set.Node(u)
	e.keep(KeepUnit, why, p)
	return nil
}

// maskExecutables masks every program in dirs that keep does not allow.
func (e *editor) maskExecutables(kind Kind, dirs []string, etcDir string, keep func(string) bool, why string) error {
	progs := units.Executables(e.t, dirs)
	for _, g := range sortedKeys(progs) {
		if keep != nil && keep(g) {
			e.keep(KeepGenerator, "reads only the kernel command line the administrator typed", path.Join(etcDir, g))
			continue
		}
		if units.Masked(progs[g]) {
			continue
		}
		if err := e.mask(kind, why, path.Join(etcDir, g)); err != nil {
			return err
		}
	}
	return nil
}

// unitPath is where an edit of a unit file (or drop-in, "NAME.d/FILE")
// goes: etc/systemd/system, which overrides every vendor directory, unless
// the image defines it in etc/systemd/system.control, the one directory
// systemd ranks higher; there the edit must replace that file.
func (e *editor) unitPath(rel string) string {
	ctl := "etc/systemd/system.control/" + rel
	if _, n, err := e.t.Resolve(ctl, false); err == nil && n != nil {
		return ctl
	}
	return "etc/systemd/system/" + rel
}
