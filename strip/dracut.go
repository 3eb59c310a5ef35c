package strip

import (
	"path"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/allow"
	"github.com/initrd-remix/initrd-remix/strip/units"
)

// dracutEvidence returns what shows dracut built t, and whether its /init is
// systemd: /init links to systemd, or default.target is initrd.target.
func dracutEvidence(t *remix.Tree) (ev []string, systemd bool) {
	ev = present(t, "usr/lib/dracut/modules.txt", "usr/lib/dracut/build-parameter.txt", "usr/lib/dracut-lib.sh", "lib/dracut-lib.sh")
	if ev == nil {
		return nil, false
	}
	if n := t.Lookup("init"); n != nil && n.IsSymlink() && strings.HasSuffix(n.Inode.Target, "systemd") {
		systemd = true
	}
	if d := t.Lookup("etc/systemd/system/default.target"); d != nil && d.IsSymlink() && strings.HasSuffix(d.Inode.Target, "initrd.target") {
		ev = append(ev, "etc/systemd/system/default.target -> "+d.Inode.Target)
		systemd = true
	}
	return ev, systemd
}

var dracutHookDirs = []string{"usr/lib/dracut/hooks", "lib/dracut/hooks", "var/lib/dracut/hooks"}

const (
	dracutCmdlineHook = "cmdline/99zz-initrd-remix.sh"
	dracutExecHook    = "00-initrd-remix-rescue.sh"
)

// dracut fails closed on hooks: every hook of every stage is neutralised
// unless the allow-list (strip/allow) names it as a hardware step and it
// runs no storage tool; the rescue's own hooks take over before any mount.
// The configuration dracut's library sources keeps constant assignments
// only, baked kernel arguments are dropped, and with systemd the units fail
// closed too (see systemd).
func (e *editor) dracut(systemd bool) error {
	neutral := embedded("neutral-hook.sh")
	execHook := embedded("dracut-exec-hook.sh")
	cmdHook := embedded("dracut-cmdline-hook.sh")
	hookDirs := units.Unique(e.t, dracutHookDirs...)
	for _, hd := range hookDirs {
		for _, n := range units.Below(e.t, hd) {
			rest := strings.TrimPrefix(n.Path, hd+"/")
			if !n.IsRegular() || !strings.HasSuffix(rest, ".sh") {
				continue
			}
			body := readAll(n)
			if string(body) == string(execHook) || string(body) == string(cmdHook) {
				continue
			}
			why := allow.DracutHook(rest)
			bad := allow.StorageCommand(body)
			if why != "" && bad == "" {
				e.keep(KeepScript, why, n.Path)
				continue
			}
			if isNeutral(n, neutral) {
				continue
			}
			stage := path.Dir(rest)
			reason := stage + " hook not on the allow-list of hardware steps"
			if why != "" {
				reason = stage + " hook runs " + bad
			}
			if err := e.file(NeutraliseScript, reason, n.Path, 0o755, neutral); err != nil {
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
	kids, _ := e.t.ReadDir("etc/cmdline.d")
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
	confs, _ := e.t.ReadDir("etc/conf.d")
	var sourced []*remix.Node
	for _, n := range confs {
		if strings.HasSuffix(n.Path, ".conf") {
			sourced = append(sourced, n)
		}
	}
	if err := e.plainConfigs(sourced); err != nil {
		return err
	}
	if systemd {
		return e.systemd()
	}
	return nil
}

// StorageOffArgs are dracut's and systemd's own kernel arguments that
// switch storage activation off; a rescue UKI's command line carries them.
const StorageOffArgs = dracutOffArgs

// dracutOffArgs are dracut's and systemd's own switches for storage.
const dracutOffArgs = "rd.lvm=0 rd.md=0 rd.dm=0 rd.luks=0 rd.multipath=0 rd.iscsi=0 rd.nvmf.discover=0 systemd.gpt_auto=0 noresume"
