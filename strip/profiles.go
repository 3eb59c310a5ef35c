package strip

import (
	"path"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

func sortStrings(s []string) { sort.Strings(s) }

// storageWords are words in script, hook and unit names that bring up,
// check or resume from storage, or log in to remote storage.
var storageWords = words("md mdadm mdraid mdmon raid dmraid imsm lvm lvm2 dm luks multipath multipathd kpartx " +
	"iscsi iscsid iscsiuio nvmf nbd fcoe zfs zpool btrfs bcache resume hibernate fsck root rootfs rootfallback " +
	"block genrules keydev lunmask usr virtiofs nfs nfsroot cifs dasd zfcp waitclean fstab overlay")

// storageName reports whether a script, hook or unit name is about storage.
func storageName(name string) bool {
	for _, w := range tokens(name) {
		if storageWords[w] || strings.HasPrefix(w, "crypt") || strings.HasPrefix(w, "lvm") {
			return true
		}
	}
	return false
}

// ---- initramfs-tools ----

const (
	itoolsExec        = "exec /usr/lib/initrd-remix/rescue"
	itoolsExecComment = "# initrd-remix: hand over to the rescue entry point (never returns)"
)

// itoolsStorageStages run only to find, unlock, resume and mount the root.
var itoolsStorageStages = []string{"local-top", "local-block", "local-premount", "local-bottom", "nfs-top", "nfs-premount", "nfs-bottom"}

func (e *editor) initramfsTools() error {
	boot := embedded("itools-boot.sh")
	for _, s := range []string{"scripts/local", "scripts/nfs"} {
		if err := e.file(NeutraliseScript, "boot script: mountroot hands over to the rescue entry point instead of mounting the root", s, 0o644, boot); err != nil {
			return err
		}
	}
	neutral := embedded("neutral-script.sh")
	for _, st := range itoolsStorageStages {
		dir := "scripts/" + st
		_, kids := children(e.t, dir)
		if kids == nil {
			continue
		}
		for _, n := range kids {
			b := path.Base(n.Path)
			if b == "ORDER" || n.Inode.Type() != newc.TypeReg || isNeutral(n, neutral) {
				continue
			}
			if err := e.file(NeutraliseScript, st+" script: storage activation, resume or root mount", n.Path, 0o755, neutral); err != nil {
				return err
			}
		}
		if n := e.t.Lookup(dir + "/ORDER"); n != nil {
			if err := e.file(NeutraliseScript, st+" runs nothing", dir+"/ORDER", 0o644, []byte("# initrd-remix: nothing runs here in a rescue image\n")); err != nil {
				return err
			}
		}
	}
	// init-top and init-premount run before the root is looked for; keep
	// their hardware steps (udev, keymap, modules) and drop storage ones.
	for _, st := range []string{"init-top", "init-premount"} {
		dir := "scripts/" + st
		_, kids := children(e.t, dir)
		dropped := map[string]bool{}
		for _, n := range kids {
			b := path.Base(n.Path)
			if b == "ORDER" || n.Inode.Type() != newc.TypeReg || !storageName(b) {
				continue
			}
			dropped[b] = true
			if isNeutral(n, neutral) {
				continue
			}
			if err := e.file(NeutraliseScript, st+" script about storage", n.Path, 0o755, neutral); err != nil {
				return err
			}
		}
		order := string(readAll(e.t.Lookup(dir + "/ORDER")))
		var out []string
		for _, line := range strings.Split(order, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && dropped[path.Base(f[0])] {
				continue
			}
			if strings.TrimSpace(line) == itoolsExec || strings.TrimSpace(line) == itoolsExecComment {
				continue
			}
			out = append(out, line)
		}
		for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
			out = out[:len(out)-1]
		}
		if st == "init-premount" {
			// ORDER is sourced by /init (PID 1): after the premount
			// scripts, PID 1 becomes the rescue entry point.
			out = append(out, itoolsExecComment, itoolsExec)
		}
		body := strings.Join(out, "\n")
		if body != "" {
			body += "\n"
		}
		if body != order && (st == "init-premount" || order != "") {
			if err := e.file(NeutraliseScript, st+"/ORDER: storage entries dropped"+map[bool]string{true: ", rescue entry point appended"}[st == "init-premount"], dir+"/ORDER", 0o644, []byte(body)); err != nil {
				return err
			}
		}
	}
	if e.t.Lookup("conf/conf.d/resume") != nil {
		if err := e.file(OverrideConfig, "no resume from the baked RESUME= device", "conf/conf.d/resume", 0o644, []byte("RESUME=none\n")); err != nil {
			return err
		}
	}
	return e.file(OverrideConfig, "no resume, whatever conf.d says", "conf/conf.d/zz-initrd-remix", 0o644, []byte("# initrd-remix rescue image\nRESUME=none\n"))
}

// isNeutral reports whether n is already a neutral script or hook.
func isNeutral(n *remix.Node, neutral []byte) bool {
	if masked(n) {
		return true
	}
	b := readAll(n)
	return string(b) == string(neutral) || string(b) == string(embedded("neutral-hook.sh")) || string(b) == string(embedded("neutral-script.sh"))
}

// ---- dracut ----

var dracutHookDirs = []string{"usr/lib/dracut/hooks", "lib/dracut/hooks", "var/lib/dracut/hooks"}

// dracutRootStages only exist to find, mount and switch to the root.
var dracutRootStages = words("mount pre-mount pre-pivot cleanup netroot initqueue/finished initqueue/timeout")

// dracutKeptStages keep every hook not named after storage; emergency and
// shutdown hooks only run when asked and are left alone.
var dracutKeptStages = words("cmdline pre-udev pre-trigger initqueue initqueue/settled initqueue/online")

const (
	dracutCmdlineHook = "cmdline/99zz-initrd-remix.sh"
	dracutExecHook    = "00-initrd-remix-rescue.sh"
)

func (e *editor) dracut(systemd bool) error {
	neutral := embedded("neutral-hook.sh")
	execHook := embedded("dracut-exec-hook.sh")
	cmdHook := embedded("dracut-cmdline-hook.sh")
	hookDirs := uniqueDirs(e.t, dracutHookDirs...)
	for _, hd := range hookDirs {
		var names []string
		byName := map[string]*remix.Node{}
		for _, n := range e.t.Nodes() {
			rest, ok := strings.CutPrefix(n.Path, hd+"/")
			if ok && n.Inode.Type() == newc.TypeReg && strings.HasSuffix(rest, ".sh") {
				names = append(names, rest)
				byName[rest] = n
			}
		}
		sort.Strings(names)
		for _, rest := range names {
			n := byName[rest]
			stage, base := path.Split(rest)
			stage = strings.TrimSuffix(stage, "/")
			var why string
			switch {
			case dracutRootStages[stage]:
				why = stage + " hook: root discovery, mount or switch_root"
			case dracutKeptStages[stage] && storageName(base):
				why = stage + " hook about storage"
			default:
				continue
			}
			body := readAll(n)
			if isNeutral(n, neutral) || string(body) == string(execHook) || string(body) == string(cmdHook) {
				continue
			}
			if err := e.file(NeutraliseScript, why, n.Path, 0o755, neutral); err != nil {
				return err
			}
		}
	}
	if len(hookDirs) == 0 {
		hookDirs = []string{"usr/lib/dracut/hooks"}
	}
	hd := hookDirs[0]
	if err := e.file(AddFile, "last cmdline hook: a missing or unknown root= must not make dracut halt", hd+"/"+dracutCmdlineHook, 0o755, cmdHook); err != nil {
		return err
	}
	if !systemd {
		for _, st := range []struct{ stage, why string }{
			{"pre-mount", "dracut's /init (PID 1) becomes the rescue entry point before any mount"},
			{"initqueue/timeout", "should anything still wait for a device, the rescue starts instead of a fallback"},
			{"emergency", "an emergency (rd.break, a failure) starts the rescue instead of continuing the boot"},
		} {
			if err := e.file(AddFile, st.why, hd+"/"+st.stage+"/"+dracutExecHook, 0o755, execHook); err != nil {
				return err
			}
		}
	}
	// Baked kernel arguments (host-only images): root=, rd.lvm.lv=,
	// rd.luks.uuid=, resume= are read by dracut's getarg.
	_, kids := children(e.t, "etc/cmdline.d")
	for _, n := range kids {
		if !strings.HasSuffix(n.Path, ".conf") || path.Base(n.Path) == "99-initrd-remix.conf" || masked(n) {
			continue
		}
		if err := e.file(OverrideConfig, "baked kernel arguments dropped (root=, rd.lvm.lv=, rd.luks.uuid=, resume=...)", n.Path, 0o644,
			[]byte("# initrd-remix: baked arguments dropped in the rescue image\n")); err != nil {
			return err
		}
	}
	if err := e.file(OverrideConfig, "storage switches off by default (the real command line still wins for getarg; the hooks are neutralised too)",
		"etc/cmdline.d/99-initrd-remix.conf", 0o644, []byte(dracutOffArgs+"\n")); err != nil {
		return err
	}
	if systemd {
		return e.systemd()
	}
	return nil
}

// dracutOffArgs are dracut's and systemd's own switches for storage.
const dracutOffArgs = "rd.lvm=0 rd.md=0 rd.dm=0 rd.luks=0 rd.multipath=0 rd.iscsi=0 rd.nvmf.discover=0 systemd.gpt_auto=0 noresume"

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
