// Package audit evaluates what the boot of an initrd tree would run — the
// systemd units reachable from the targets systemd starts and the units
// udev asks for, the generators, the programs udev rules run, the shell
// init's scripts and hooks and the configuration it sources — and reports
// everything the rescue allow-list (strip/allow) does not allow. It reads
// the tree the way systemd, udev and the shell inits do and never re-runs
// strip's edits, so it catches what a profile misses; verify runs it on
// every rescue image.
package audit

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/allow"
	"github.com/initrd-remix/initrd-remix/strip/udevrule"
	"github.com/initrd-remix/initrd-remix/strip/units"
)

// Finding is one thing the boot would run that the allow-list does not
// allow, or that the audit cannot read.
type Finding struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// Init says how an image boots, which decides what runs.
type Init string

const (
	Systemd        Init = "systemd"
	InitramfsTools Init = "initramfs-tools"
	DracutShell    Init = "dracut-shell"
	UnknownInit    Init = "unknown"
)

// Kind tells how t's /init boots: systemd (a link to, or a copy of,
// systemd), initramfs-tools' or dracut's shell script.
func Kind(t *remix.Tree) Init {
	_, n, err := t.Resolve("init", false)
	if err != nil || n == nil {
		return UnknownInit
	}
	if n.IsSymlink() {
		if path.Base(n.Inode.Target) == "systemd" {
			return Systemd
		}
		n = t.Lookup("init")
		if n == nil {
			return UnknownInit
		}
	}
	if !n.IsRegular() {
		return UnknownInit
	}
	head := remix.Head(n.Inode.Content, 4096)
	switch {
	case remix.IsELF(head) && t.Lookup("usr/lib/systemd/systemd") != nil:
		// A hard-linked or copied systemd; no other ELF init is known.
		return Systemd
	case !remix.IsScript(head):
		return UnknownInit
	case t.Lookup("scripts/functions") != nil && t.Lookup("conf/initramfs.conf") != nil:
		return InitramfsTools
	case t.Lookup("usr/lib/dracut-lib.sh") != nil || t.Lookup("lib/dracut-lib.sh") != nil:
		return DracutShell
	}
	return UnknownInit
}

// Check returns everything the boot of t would run that the allow-list
// does not allow. An init it cannot evaluate is a finding itself.
func Check(t *remix.Tree) []Finding {
	a := &auditor{t: t}
	wants := a.udev()
	a.dracutHooks()
	switch k := Kind(t); k {
	case Systemd:
		a.systemd(wants)
	case InitramfsTools:
		a.initramfsTools()
	case DracutShell:
		// Hooks and sourced configuration are checked above and below.
	default:
		a.add("init", "an /init that is neither systemd nor a known shell init: what it runs cannot be evaluated")
	}
	a.sourced()
	a.configLines()
	sort.SliceStable(a.out, func(i, j int) bool { return a.out[i].Path < a.out[j].Path })
	return a.out
}

type auditor struct {
	t   *remix.Tree
	out []Finding
}

func (a *auditor) add(p, format string, args ...any) {
	a.out = append(a.out, Finding{Path: p, Problem: fmt.Sprintf(format, args...)})
}

// ---- systemd ----

// bootTargets are what systemd may be asked to reach in an initrd: its
// default (initrd.target in an initrd, default.target otherwise), the
// emergency target on a failure, and the shutdown targets.
var bootTargets = []string{"initrd.target", "default.target", "emergency.target", "poweroff.target", "reboot.target", "halt.target", "kexec.target", "ctrl-alt-del.target"}

func (a *auditor) systemd(udevWants map[string]string) {
	set := units.New(a.t)
	// [Install] sections, read in reverse: a unit naming a reached unit in
	// WantedBy=/RequiredBy=/UpheldBy= may have been enabled into it.
	installedBy := map[string][]string{}
	for _, u := range set.Names() {
		if set.Masked(u) {
			continue
		}
		f, err := set.Load(u)
		if err != nil {
			continue // reported if the unit is reached
		}
		for _, k := range []string{"WantedBy", "RequiredBy", "UpheldBy"} {
			for _, target := range f.Words("Install", k) {
				installedBy[target] = append(installedBy[target], u)
			}
		}
	}
	from := map[string]string{}
	var queue []string
	push := func(u, by string) {
		if _, seen := from[u]; !seen {
			from[u] = by
			queue = append(queue, u)
		}
	}
	for _, u := range bootTargets {
		push(u, "systemd")
	}
	for _, u := range slices.Sorted(maps.Keys(udevWants)) {
		push(u, udevWants[u])
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		p, n := set.Node(u)
		if n == nil {
			// No unit file: systemd cannot load it, but its .wants
			// links may still be read; fail closed and follow them.
			for _, d := range set.Links(u) {
				push(d, u+"'s .wants/.requires")
			}
			continue
		}
		if set.Masked(u) {
			continue
		}
		f, err := set.Load(u)
		if err != nil {
			a.add(p, "%s would start (pulled in by %s) but cannot be read: %v", u, from[u], err)
			continue
		}
		ok, why := allow.Check(u, f)
		if alias := set.Alias(u); ok && alias != u {
			ok, why = allow.Check(alias, f)
			push(alias, u)
		}
		if !ok {
			a.add(p, "%s would start (pulled in by %s): %s", u, from[u], why)
		}
		for _, k := range []string{"Wants", "Requires", "Requisite", "BindsTo", "Upholds", "OnFailure", "OnSuccess"} {
			for _, d := range f.Words("Unit", k) {
				push(d, u+" "+k+"=")
			}
		}
		for _, d := range set.Links(u) {
			push(d, u+"'s .wants/.requires")
		}
		for _, d := range installedBy[u] {
			push(d, u+" through its [Install] section")
		}
		switch allow.Type(u) {
		case "socket":
			push(allow.SocketService(u, f), u)
		case "path", "timer":
			sec := map[string]string{"path": "Path", "timer": "Timer"}[allow.Type(u)]
			if t := f.Last(sec, "Unit"); t != "" {
				push(t, u)
			} else {
				push(strings.TrimSuffix(u, "."+allow.Type(u))+".service", u)
			}
		case "automount":
			push(strings.TrimSuffix(u, ".automount")+".mount", u)
		}
	}
	for _, g := range []struct {
		dirs []string
		keep func(string) bool
		what string
	}{
		{units.GeneratorDirs, allow.Generator, "generator"},
		{units.EnvGeneratorDirs, nil, "environment generator"},
		{units.ShutdownDirs, nil, "shutdown program"},
	} {
		progs := units.Executables(a.t, g.dirs)
		for _, name := range slices.Sorted(maps.Keys(progs)) {
			if units.Masked(progs[name]) || g.keep != nil && g.keep(name) {
				continue
			}
			a.add(progs[name].Path, "the %s %s would run and is not on the allow-list", g.what, name)
		}
	}
}

// ---- udev ----

var udevRuleDirs = []string{"lib/udev/rules.d", "usr/lib/udev/rules.d", "usr/local/lib/udev/rules.d", "etc/udev/rules.d"}

// udev checks every program the effective rules files run and returns the
// units their ENV{SYSTEMD_WANTS} ask systemd to start, with where.
func (a *auditor) udev() map[string]string {
	eff := units.Effective(a.t, udevRuleDirs, ".rules")
	wants := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(eff)) {
		n := eff[name]
		if n.IsSymlink() {
			if n.Inode.Target == "/dev/null" {
				continue
			}
			n = a.t.Lookup(n.Path)
		}
		if units.Masked(n) {
			continue
		}
		if !n.IsRegular() {
			a.add(eff[name].Path, "a rules file that is not a regular file")
			continue
		}
		for _, r := range udevrule.Rules(units.Read(n)) {
			if r.Err != nil {
				a.add(n.Path, "line %d cannot be read (%v); udev may run what it says", r.Line, r.Err)
				continue
			}
			for _, k := range r.Keys {
				if k.Runs() && !allow.UdevProgram(k.Value) {
					a.add(n.Path, "line %d runs %q, not a udev helper known to be read-only", r.Line, k.Value)
				}
				for _, w := range k.Wants() {
					wants[w] = fmt.Sprintf("udev rule %s:%d", n.Path, r.Line)
				}
			}
		}
	}
	return wants
}

// ---- shell inits ----

var dracutHookDirs = []string{"usr/lib/dracut/hooks", "lib/dracut/hooks", "var/lib/dracut/hooks"}

// rescueHooks are the hooks initrd-remix adds to dracut images: they may
// run if they name no storage tool.
var rescueHooks = map[string]bool{"99zz-initrd-remix.sh": true, "00-initrd-remix-rescue.sh": true}

// dracutHooks checks every hook of every stage: dracut sources each one it
// reaches, and which stage is reached depends on the boot.
func (a *auditor) dracutHooks() {
	for _, hd := range units.Unique(a.t, dracutHookDirs...) {
		for _, n := range units.Below(a.t, hd) {
			rel, ok := strings.CutPrefix(n.Path, hd+"/")
			if !ok || !strings.HasSuffix(rel, ".sh") {
				continue
			}
			if n.IsSymlink() {
				n = a.t.Lookup(n.Path)
			}
			if n == nil || !n.IsRegular() {
				continue
			}
			a.script(n, rel, allow.DracutHook(rel) != "" || rescueHooks[path.Base(rel)], "dracut hook")
		}
	}
}

// script judges one shell script that would run: neutral (comments and
// ":" only) is fine; otherwise it must be allowed and name no storage
// tool.
func (a *auditor) script(n *remix.Node, rel string, allowed bool, what string) {
	body := units.Read(n)
	if neutral(body) {
		return
	}
	if !allowed {
		a.add(n.Path, "the %s %s would run and is not on the allow-list of hardware steps", what, rel)
		return
	}
	if c := allow.StorageCommand(body); c != "" {
		a.add(n.Path, "the %s %s would run %s", what, rel, c)
	}
}

// neutral reports whether a script does nothing: only comments, blank
// lines and ":".
func neutral(body []byte) bool {
	for _, l := range strings.Split(string(body), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l[0] != '#' && l != ":" {
			return false
		}
	}
	return true
}

const (
	rescueExec = "exec " + allow.RescueProgram
	paramLine  = "[ -e /conf/param.conf ] && . /conf/param.conf"
)

// initramfsTools follows initramfs-tools' /init: the scripts of each stage
// in ORDER (or the directory's scripts without one) until a line hands
// over to the rescue; without that hand-over /init goes on to mount the
// root.
func (a *auditor) initramfsTools() {
	for _, st := range []string{"init-top", "init-premount"} {
		if a.itoolsStage(st) {
			return
		}
	}
	a.add("scripts/init-premount/ORDER", "no stage hands over to %s: /init would go on to find, resume from and mount the root", allow.RescueProgram)
	for _, st := range []string{"local-top", "local-block", "local-premount", "local-bottom", "nfs-top", "nfs-premount", "nfs-bottom", "init-bottom"} {
		a.itoolsStage(st)
	}
}

// itoolsStage checks what one stage runs and reports whether it hands over
// to the rescue.
func (a *auditor) itoolsStage(st string) bool {
	dir := "scripts/" + st
	running := st == "init-top" || st == "init-premount"
	judge := func(name string) {
		n := a.t.Lookup(dir + "/" + name)
		if n == nil || !n.IsRegular() {
			return
		}
		a.script(n, st+"/"+name, running && allow.ItoolsScript(st+"/"+name) != "", "initramfs-tools script")
	}
	order := a.t.Lookup(dir + "/ORDER")
	if order == nil {
		kids, _ := a.t.ReadDir(dir)
		for _, n := range kids {
			if b := path.Base(n.Path); b != "ORDER" {
				judge(b)
			}
		}
		return false
	}
	for i, line := range strings.Split(string(units.Read(order)), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#' || t == paramLine:
			continue
		case t == rescueExec:
			return true
		}
		f := strings.Fields(t)
		if len(f) <= 2 && strings.HasPrefix(f[0], "/scripts/"+st+"/") && (len(f) == 1 || f[1] == `"$@"`) {
			judge(path.Base(f[0]))
			continue
		}
		a.add(order.Path, "line %d runs %q, which is no script of the stage", i+1, t)
	}
	return false
}

// sourced checks the configuration files the shell inits source: only
// constant assignments may run.
func (a *auditor) sourced() {
	var files []*remix.Node
	for _, p := range []string{"conf/initramfs.conf", "conf/arch.conf"} {
		if n := a.t.Lookup(p); n != nil {
			files = append(files, n)
		}
	}
	for _, d := range []string{"conf/conf.d", "etc/conf.d"} {
		kids, _ := a.t.ReadDir(d)
		for _, f := range kids {
			if d == "etc/conf.d" && !strings.HasSuffix(f.Path, ".conf") {
				continue
			}
			files = append(files, a.t.Lookup(f.Path))
		}
	}
	for _, n := range files {
		if n == nil || !n.IsRegular() {
			continue
		}
		for i, l := range strings.Split(string(units.Read(n)), "\n") {
			if !allow.PlainConfigLine(l) {
				a.add(n.Path, "line %d of a sourced configuration file runs more than an assignment: %q", i+1, strings.TrimSpace(l))
			}
		}
	}
}

// configLines checks the lines allowed programs act on: tmpfiles.d (none
// may write into a device) and modprobe.d (no install or remove command
// may run more than modprobe), in the effective file of each name.
func (a *auditor) configLines() {
	for _, c := range []struct {
		dirs []string
		ok   func(string) bool
		what string
	}{
		{allow.TmpfilesDirs(), allow.TmpfilesLine, "would write outside kernel parameters and runtime files"},
		{allow.ModprobeDirs(), allow.ModprobeLine, "runs more than modprobe when the module is loaded"},
	} {
		eff := units.Effective(a.t, c.dirs, ".conf")
		for _, name := range slices.Sorted(maps.Keys(eff)) {
			n := eff[name]
			if n.IsSymlink() {
				n = a.t.Lookup(n.Path)
			}
			if units.Masked(n) {
				continue
			}
			for i, l := range strings.Split(string(units.Read(n)), "\n") {
				if !c.ok(l) {
					a.add(n.Path, "line %d %s: %q", i+1, c.what, strings.TrimSpace(l))
				}
			}
		}
	}
}
