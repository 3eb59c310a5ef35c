package strip

import (
	"path"
	"slices"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/allow"
)

// InitramfsTools is Debian's and Ubuntu's generator: /init is a shell script
// that sources conf/, runs scripts/<stage>/ in their ORDER and mounts the
// root with scripts/local or scripts/nfs.
const InitramfsTools Generator = "initramfs-tools"

func initramfsToolsProfile() Profile {
	return Profile{
		Name: InitramfsTools,
		Detect: func(t *remix.Tree) []string {
			if ev := present(t, "conf/initramfs.conf", "scripts/functions", "scripts/local"); len(ev) >= 2 {
				return ev
			}
			return nil
		},
		Edit: (*editor).initramfsTools,
	}
}

const (
	itoolsExec        = "exec /usr/lib/initrd-remix/rescue"
	itoolsExecComment = "# initrd-remix: hand over to the rescue entry point (never returns)"
)

// itoolsParamLine is the line initramfs-tools ends every ORDER file with.
const itoolsParamLine = "[ -e /conf/param.conf ] && . /conf/param.conf"

// initramfsTools fails closed: /init runs the scripts of init-top and
// init-premount (in their ORDER) and then PID 1 becomes the rescue entry
// point, so only the allow-listed hardware scripts of those two stages stay
// (strip/allow); every other script of every stage is neutralised, every
// ORDER file is rebuilt from the kept scripts alone (it is sourced shell),
// the boot scripts' mountroot hands over to the rescue, and the sourced
// configuration files keep only constant assignments.
func (e *editor) initramfsTools() error {
	boot := embedded("itools-boot.sh")
	for _, s := range []string{"scripts/local", "scripts/nfs"} {
		if err := e.file(NeutraliseScript, "boot script: mountroot hands over to the rescue entry point instead of mounting the root", s, 0o644, boot); err != nil {
			return err
		}
	}
	neutral := embedded("neutral-script.sh")
	running := map[string]bool{}
	for _, st := range allow.ItoolsStages() {
		running[st] = true
	}
	// Every stage directory of the image, and init-premount always: its
	// ORDER is where PID 1 hands over to the rescue.
	stages := map[string]bool{"init-premount": true}
	stageDirs, _ := e.t.ReadDir("scripts")
	for _, sd := range stageDirs {
		if sd.IsDir() {
			stages[path.Base(sd.Path)] = true
		}
	}
	for _, st := range sortedKeys(stages) {
		dir := "scripts/" + st
		kids, _ := e.t.ReadDir(dir)
		kept := map[string]bool{}
		for _, n := range kids {
			b := path.Base(n.Path)
			if b == "ORDER" || !n.IsRegular() {
				continue
			}
			why, bad := "", ""
			if running[st] {
				why = allow.ItoolsScript(st + "/" + b)
				bad = allow.StorageCommand(readAll(n))
			}
			if why != "" && bad == "" {
				kept[b] = true
				e.keep(KeepScript, why, n.Path)
				continue
			}
			if isNeutral(n, neutral) {
				continue
			}
			reason := st + " script not on the allow-list of hardware steps"
			switch {
			case !running[st]:
				reason = st + " script: storage activation, resume, root mount or later (never runs in a rescue boot)"
			case why != "":
				reason = st + " script runs " + bad
			}
			if err := e.file(NeutraliseScript, reason, n.Path, 0o755, neutral); err != nil {
				return err
			}
		}
		order := e.t.Lookup(dir + "/ORDER")
		if order == nil && st != "init-premount" {
			continue
		}
		var out []string
		if running[st] {
			for _, line := range strings.Split(string(readAll(order)), "\n") {
				t := strings.TrimSpace(line)
				if t == itoolsParamLine {
					out = append(out, t)
					continue
				}
				f := strings.Fields(t)
				if len(f) >= 1 && len(f) <= 2 && f[0] == "/scripts/"+st+"/"+path.Base(f[0]) && kept[path.Base(f[0])] && (len(f) == 1 || f[1] == `"$@"`) {
					out = append(out, f[0]+` "$@"`)
				}
			}
		} else {
			out = append(out, "# initrd-remix: nothing runs here in a rescue image")
		}
		if st == "init-premount" {
			// ORDER is sourced by /init (PID 1): after the premount
			// scripts, PID 1 becomes the rescue entry point.
			out = append(out, itoolsExecComment, itoolsExec)
		}
		body := strings.Join(out, "\n") + "\n"
		if string(readAll(order)) == body {
			continue
		}
		why := st + "/ORDER: only the kept scripts"
		if st == "init-premount" {
			why += ", then the rescue entry point"
		}
		if err := e.file(NeutraliseScript, why, dir+"/ORDER", 0o644, []byte(body)); err != nil {
			return err
		}
	}
	if e.t.Lookup("conf/conf.d/resume") != nil {
		if err := e.file(OverrideConfig, "no resume from the baked RESUME= device", "conf/conf.d/resume", 0o644, []byte("RESUME=none\n")); err != nil {
			return err
		}
	}
	var confs []*remix.Node
	for _, c := range []string{"conf/initramfs.conf", "conf/arch.conf"} {
		if n := e.t.Lookup(c); n != nil {
			confs = append(confs, n)
		}
	}
	dd, _ := e.t.ReadDir("conf/conf.d")
	confs = append(confs, dd...)
	if err := e.plainConfigs(confs, "zz-initrd-remix", "resume"); err != nil {
		return err
	}
	return e.file(OverrideConfig, "no resume, whatever conf.d says", "conf/conf.d/zz-initrd-remix", 0o644, []byte("# initrd-remix rescue image\nRESUME=none\n"))
}

// plainConfigs comments out every line of the sourced shell configuration
// files that is more than a constant assignment (a command, an expansion, a
// substitution): /init sources them as PID 1.
func (e *editor) plainConfigs(files []*remix.Node, skip ...string) error {
	for _, n := range files {
		if !n.IsRegular() || slices.Contains(skip, path.Base(n.Path)) {
			continue
		}
		body := string(readAll(n))
		var out []string
		changed := false
		for _, line := range strings.Split(body, "\n") {
			if !allow.PlainConfigLine(line) {
				line = disabledMark + line
				changed = true
			}
			out = append(out, line)
		}
		if !changed {
			continue
		}
		if err := e.file(DisableLines, "a sourced configuration file: only constant assignments stay, commands and expansions are disabled", n.Path, 0o644, []byte(strings.Join(out, "\n"))); err != nil {
			return err
		}
	}
	return nil
}
