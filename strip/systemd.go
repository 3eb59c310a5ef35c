package strip

import (
	"path"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// ---- systemd ----

var unitDirs = []string{"usr/lib/systemd/system", "lib/systemd/system", "usr/local/lib/systemd/system", "etc/systemd/system"}
var generatorDirs = []string{"usr/lib/systemd/system-generators", "lib/systemd/system-generators", "usr/local/lib/systemd/system-generators", "etc/systemd/system-generators"}

// keptGenerators touch no storage: command-line debugging, gettys, run=.
var keptGenerators = words("systemd-debug-generator systemd-getty-generator systemd-run-generator systemd-system-update-generator")

// rootUnits lead to the root mount or switch_root; masked by name even when
// absent, since generators create some of them at boot.
var rootUnits = []string{
	"sysroot.mount", "sysroot-usr.mount", "systemd-fsck-root.service", "systemd-fsck-usr.service",
	"systemd-hibernate-resume.service", "initrd-switch-root.service", "initrd-switch-root.target",
	"initrd-cleanup.service", "initrd-parse-etc.service", "initrd-root-fs.target", "initrd-root-device.target",
	"initrd-fs.target", "initrd-usr-fs.target", "dracut-initqueue.service", "dracut-pre-mount.service",
	"dracut-mount.service", "dracut-pre-pivot.service", "systemd-volatile-root.service",
	"systemd-ask-password-console.path", "systemd-ask-password-console.service",
}

// unitFiles lists unit names found in the image's unit directories.
func unitFiles(t *remix.Tree) map[string]bool {
	out := map[string]bool{}
	for _, d := range uniqueDirs(t, unitDirs...) {
		_, kids := children(t, d)
		for _, n := range kids {
			if n.Inode.Type() != newc.TypeDir {
				out[path.Base(n.Path)] = true
			}
		}
	}
	return out
}

// effective returns the node systemd would use for a unit or generator
// name: etc first, then the vendor directories.
func effective(t *remix.Tree, dirs []string, name string) *remix.Node {
	for i := len(dirs) - 1; i >= 0; i-- {
		if n := t.Lookup(dirs[i] + "/" + name); n != nil {
			return n
		}
	}
	return nil
}

func (e *editor) systemd() error {
	names := unitFiles(e.t)
	var toMask []string
	for _, u := range rootUnits {
		toMask = append(toMask, u)
	}
	for _, u := range sortedKeys(names) {
		if storageName(u) && !strings.HasPrefix(u, "initrd-remix") {
			toMask = append(toMask, u)
		}
	}
	seen := map[string]bool{}
	for _, u := range toMask {
		if seen[u] {
			continue
		}
		seen[u] = true
		n := effective(e.t, unitDirs, u)
		if n != nil && masked(n) {
			continue
		}
		if err := e.mask(MaskUnit, "storage activation, root mount, resume, fsck or switch_root", "etc/systemd/system/"+u); err != nil {
			return err
		}
	}
	gens := map[string]bool{}
	for _, d := range uniqueDirs(e.t, generatorDirs...) {
		_, kids := children(e.t, d)
		for _, n := range kids {
			gens[path.Base(n.Path)] = true
		}
	}
	for _, g := range sortedKeys(gens) {
		if keptGenerators[g] {
			continue
		}
		if n := effective(e.t, generatorDirs, g); n != nil && masked(n) {
			continue
		}
		if err := e.mask(MaskGenerator, "generates root, fstab, crypttab, gpt-auto or resume units from the command line", "etc/systemd/system-generators/"+g); err != nil {
			return err
		}
	}
	if err := e.file(AddFile, "the rescue entry point as a console service", "etc/systemd/system/initrd-remix-rescue.service", 0o644, embedded("rescue.service")); err != nil {
		return err
	}
	if err := e.file(OverrideConfig, "initrd.target brings up basic.target (udev, coldplug, modules, console) and the rescue, not the root", "etc/systemd/system/initrd.target", 0o644, embedded("rescue.target")); err != nil {
		return err
	}
	// A relative link resolves in etc/systemd/system, to the override above.
	return e.put(OverrideConfig, "default.target is the overridden initrd.target", remix.Entry{Name: "etc/systemd/system/default.target", Mode: newc.TypeSymlink | 0o777, Target: "initrd.target"})
}
