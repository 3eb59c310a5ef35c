package bootentry

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// OSRelease reads os-release(5) under root (/etc/os-release, else
// /usr/lib/os-release) and returns its variables; nil when neither exists.
func OSRelease(root string) map[string]string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			return ParseOSRelease(data)
		}
	}
	return nil
}

// ParseOSRelease parses os-release(5): VAR=value lines, the value optionally
// in single or double quotes (with backslash escapes inside double quotes),
// "#" comments. Malformed lines are skipped, as systemd does.
func ParseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		} else if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			} else {
				v = v[1 : len(v)-1]
			}
		}
		m[k] = v
	}
	return m
}

// DefaultTitle names the distribution, the kernel and "rescue".
func DefaultTitle(osRelease map[string]string, version string) string {
	name := osRelease["PRETTY_NAME"]
	if name == "" {
		name = osRelease["NAME"]
	}
	if name == "" {
		name = "Linux"
	}
	return name + ", Linux " + version + ", rescue (initrd-remix)"
}

// DefaultSortKey sorts rescue entries after the distribution's own ones in
// a loader that follows the specification (sort keys compare as strings, and
// the normal entries carry IMAGE_ID or ID), so a rescue entry never becomes
// the default by accident.
func DefaultSortKey(osRelease map[string]string) string {
	id := osRelease["IMAGE_ID"]
	if id == "" {
		id = osRelease["ID"]
	}
	if id == "" {
		id = "linux"
	}
	return id + "-rescue"
}

// MachineID reads root's /etc/machine-id; "" when it is missing, empty,
// "uninitialized" or not 32 hexadecimal digits.
func MachineID(root string) string {
	data, err := os.ReadFile(filepath.Join(root, "/etc/machine-id"))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(data))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return id
}

// DefaultOptions is the kernel command line systemd's 90-loaderentry.install
// would use: /etc/kernel/cmdline, else /usr/lib/kernel/cmdline (both under
// root), else the running kernel's, passed through SanitizeOptions.
func DefaultOptions(root string) string {
	for _, p := range []string{filepath.Join(root, "/etc/kernel/cmdline"), filepath.Join(root, "/usr/lib/kernel/cmdline"), "/proc/cmdline"} {
		if data, err := os.ReadFile(p); err == nil {
			return SanitizeOptions(string(bytes.TrimSpace(data)))
		}
	}
	return ""
}

// SanitizeOptions removes the arguments a rescue entry must not inherit from
// the command line it is given, and collapses white space: the loader's own
// (initrd=, BOOT_IMAGE=) and those that would replace the rescue image's
// init, select another target or stop the boot half-way (a VM or rescue
// host often runs with rdinit= or init=), and everything after "--", which
// the kernel hands to init as its arguments. The rescue image ignores root=
// and storage arguments by design, so they may stay.
func SanitizeOptions(cmdline string) string {
	// What follows "--" is for init, not for a rescue entry.
	args := strings.Fields(cmdline)
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	return DropOptions(strings.Join(args, " "), []string{"initrd=", "BOOT_IMAGE=", "init=", "rdinit=", "systemd.unit=",
		"rd.systemd.unit=", "rd.break", "rd.break=", "break", "break=", "rd.shell", "rd.shell=", "rd.emergency="})
}

// DropOptions returns cmdline without the arguments that dropped names: an
// entry ending in "=" or "." drops every argument it prefixes ("root="
// drops root=/dev/sda1, "rd.luks." drops rd.luks.uuid=...); any other
// drops only itself.
func DropOptions(cmdline string, dropped []string) string {
	var keep []string
	for _, a := range strings.Fields(cmdline) {
		drop := false
		for _, d := range dropped {
			if a == d || (strings.HasSuffix(d, "=") || strings.HasSuffix(d, ".")) && strings.HasPrefix(a, d) {
				drop = true
				break
			}
		}
		if !drop {
			keep = append(keep, a)
		}
	}
	return strings.Join(keep, " ")
}
