package strip

import (
	"path"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
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
