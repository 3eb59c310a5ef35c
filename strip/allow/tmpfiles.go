package allow

import (
	"path"
	"strings"
)

// tmpfilesWrites are the tmpfiles.d line types that write into an existing
// file (w, w+), or truncate and write one (F, f+): pointed at a block
// device they would write to a disk.
var tmpfilesWrites = map[string]bool{"w": true, "w+": true, "F": true, "f+": true}

// tmpfilesWritable are where such lines may write: kernel parameters and
// the runtime file systems of the initrd, never a device node.
var tmpfilesWritable = []string{"/proc/sys/", "/sys/module/", "/sys/kernel/", "/run/", "/tmp/", "/var/", "/etc/"}

// TmpfilesLine reports whether a line of a tmpfiles.d file may be
// applied by systemd-tmpfiles in the rescue boot: everything that does not
// write into a file, and writes only into kernel parameters and the
// initrd's own runtime files. A line whose path has specifiers or globs
// where a write goes is not allowed.
func TmpfilesLine(line string) bool {
	f := strings.Fields(line)
	if len(f) < 2 || strings.HasPrefix(f[0], "#") {
		return true
	}
	typ := strings.TrimRight(f[0], "!-=~^$?")
	if !tmpfilesWrites[typ] {
		return true
	}
	p := f[1]
	if strings.ContainsAny(p, "%*?[") || strings.Contains(p, "..") {
		return false
	}
	for _, w := range tmpfilesWritable {
		if strings.HasPrefix(p, w) {
			return true
		}
	}
	return false
}

// TmpfilesDirs are where systemd-tmpfiles reads its configuration, lowest
// priority first; a file in a later one overrides a same-named one.
var tmpfilesDirs = []string{"lib/tmpfiles.d", "usr/lib/tmpfiles.d", "usr/local/lib/tmpfiles.d", "etc/tmpfiles.d"}

// TmpfilesDirs lists them.
func TmpfilesDirs() []string { return append([]string(nil), tmpfilesDirs...) }

// modprobeCommands are the programs a modprobe.d install or remove command
// may run: module loading itself, and the no-ops used to blacklist.
var modprobeCommands = map[string]bool{"modprobe": true, "true": true, "false": true, "echo": true}

// ModprobeLine reports whether a modprobe.d line may stay: an install or
// remove command (which libkmod runs through a shell instead of loading
// the module, when udev loads it) only if it runs modprobe and no-ops.
func ModprobeLine(line string) bool {
	f := strings.Fields(line)
	if len(f) < 3 || (f[0] != "install" && f[0] != "remove") {
		return true
	}
	cmd := strings.Join(f[2:], " ")
	if strings.ContainsAny(cmd, "`<>") || strings.Contains(cmd, "$(") {
		return false
	}
	for _, part := range strings.FieldsFunc(cmd, func(r rune) bool { return r == ';' || r == '&' || r == '|' }) {
		w := strings.Fields(part)
		if len(w) == 0 {
			continue
		}
		if !modprobeCommands[path.Base(w[0])] {
			return false
		}
	}
	return true
}

// modprobeDirs are where libkmod reads modprobe.d, lowest priority first.
var modprobeDirs = []string{"lib/modprobe.d", "usr/lib/modprobe.d", "usr/local/lib/modprobe.d", "etc/modprobe.d"}

// ModprobeDirs lists them.
func ModprobeDirs() []string { return append([]string(nil), modprobeDirs...) }
