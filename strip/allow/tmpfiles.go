package allow

import "strings"

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
