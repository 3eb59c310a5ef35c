// Package allow is the rescue boot's allow-list: the systemd units, udev
// rule programs, dracut hooks and initramfs-tools scripts that bring
// hardware up (udev and coldplug, modules, journald, tmpfiles, sysctl, the
// console and keymap, random seed, power off and reboot) and may run in a
// rescue image. Everything else is disabled by strip and reported by
// verify, whatever its name: a new unit or hook that activates storage is
// never guessed to be harmless. The package holds the policy only; strip
// applies it and strip/audit checks a result against it independently.
package allow

import (
	"path"
	"regexp"
	"strings"

	"github.com/initrd-remix/initrd-remix/strip/unitfile"
)

// Unit is the rule for one allowed unit name.
type Unit struct {
	// Programs are the base names the unit's command lines may run; a
	// unit running anything else is not allowed, whatever its name.
	Programs []string
	// Why says what the unit does for the rescue.
	Why string
}

// Ours are the units strip writes itself.
const (
	RescueService    = "initrd-remix-rescue.service"
	EmergencyService = "emergency.service"
	RescueProgram    = "/usr/lib/initrd-remix/rescue"
)

// units is the allow-list, by unit name (templates by their "@." name).
func units() map[string]Unit {
	udev := Unit{[]string{"systemd-udevd", "udevadm"}, "udev: devices, module autoloading and firmware"}
	return map[string]Unit{
		"systemd-udevd.service":                    udev,
		"systemd-udev-trigger.service":             {[]string{"udevadm"}, "coldplug: replays the kernel's device events so udev loads drivers"},
		"systemd-udev-settle.service":              {[]string{"udevadm"}, "waits for udev to finish"},
		"systemd-udev-load-credentials.service":    {[]string{"udevadm"}, "udev configuration from credentials"},
		"systemd-journald.service":                 {[]string{"systemd-journald"}, "the journal (log)"},
		"systemd-journald@.service":                {[]string{"systemd-journald"}, "the journal (log)"},
		"kmod-static-nodes.service":                {[]string{"kmod"}, "device nodes for modules loaded on demand"},
		"systemd-modules-load.service":             {[]string{"systemd-modules-load"}, "modules from modules-load.d and rd.modules-load="},
		"modprobe@.service":                        {[]string{"modprobe"}, "loads one kernel module"},
		"systemd-tmpfiles-setup-dev-early.service": {[]string{"systemd-tmpfiles"}, "static device nodes"},
		"systemd-tmpfiles-setup-dev.service":       {[]string{"systemd-tmpfiles"}, "static device nodes"},
		"systemd-tmpfiles-setup.service":           {[]string{"systemd-tmpfiles"}, "runtime directories"},
		"systemd-sysctl.service":                   {[]string{"systemd-sysctl"}, "kernel parameters"},
		"systemd-vconsole-setup.service":           {[]string{"systemd-vconsole-setup"}, "console font and keymap"},
		"systemd-random-seed.service":              {[]string{"systemd-random-seed"}, "random seed"},
		"systemd-poweroff.service":                 {[]string{"systemctl"}, "power off from the rescue"},
		"systemd-reboot.service":                   {[]string{"systemctl"}, "reboot from the rescue"},
		"systemd-halt.service":                     {[]string{"systemctl"}, "halt from the rescue"},
		"systemd-kexec.service":                    {[]string{"systemctl"}, "kexec from the rescue"},
		"dracut-cmdline.service":                   {[]string{"dracut-cmdline"}, "dracut's cmdline hooks (each hook is allow-listed on its own)"},
		"dracut-pre-udev.service":                  {[]string{"dracut-pre-udev"}, "dracut's pre-udev hooks and rd.driver.pre/rd.driver.blacklist (each hook is allow-listed on its own)"},
		"dracut-pre-trigger.service":               {[]string{"dracut-pre-trigger"}, "dracut's pre-trigger hooks (each hook is allow-listed on its own)"},
		RescueService:                              {[]string{"rescue"}, "the rescue entry point"},
		EmergencyService:                           {[]string{"rescue"}, "the rescue entry point, should anything fail"},
		// Targets start nothing themselves; what their .wants pull in is
		// judged unit by unit.
		"basic.target":        {nil, "boot synchronisation"},
		"sysinit.target":      {nil, "boot synchronisation"},
		"sockets.target":      {nil, "boot synchronisation"},
		"paths.target":        {nil, "boot synchronisation"},
		"timers.target":       {nil, "boot synchronisation"},
		"slices.target":       {nil, "boot synchronisation"},
		"local-fs-pre.target": {nil, "boot synchronisation"},
		"local-fs.target":     {nil, "boot synchronisation"},
		"swap.target":         {nil, "boot synchronisation"},
		"initrd.target":       {nil, "the rescue's own target (written by initrd-remix)"},
		"default.target":      {nil, "the rescue's own target (written by initrd-remix)"},
		"emergency.target":    {nil, "the rescue entry point, should anything fail"},
		"shutdown.target":     {nil, "power off and reboot"},
		"umount.target":       {nil, "power off and reboot"},
		"final.target":        {nil, "power off and reboot"},
		"poweroff.target":     {nil, "power off and reboot"},
		"reboot.target":       {nil, "power off and reboot"},
		"halt.target":         {nil, "power off and reboot"},
		"kexec.target":        {nil, "power off and reboot"},
		"ctrl-alt-del.target": {nil, "power off and reboot"},
		"-.slice":             {nil, "the root slice"},
		"system.slice":        {nil, "the system slice"},
		"initrd-remix.target": {nil, "the rescue's own target"},
	}
}

// programDirs are where the allowed programs live; a program of an allowed
// name anywhere else (/usr/libexec/x/systemd-udevd) is not the one the
// allow-list means.
var programDirs = map[string]bool{"/bin": true, "/sbin": true, "/usr/bin": true, "/usr/sbin": true,
	"/lib/systemd": true, "/usr/lib/systemd": true, "/lib/udev": true, "/usr/lib/udev": true, "/usr/lib/initrd-remix": true}

// systemDir reports whether a program named in a unit or rule is a bare
// name (found on the standard search path, or in udev's directory) or an
// absolute path in one of programDirs.
func systemDir(program string) bool {
	if !strings.Contains(program, "/") {
		return true
	}
	return programDirs[path.Dir(program)]
}

// SystemctlVerbs are the only systemctl verbs an allowed unit may use.
var systemctlVerbs = map[string]bool{"poweroff": true, "reboot": true, "halt": true, "kexec": true}

// LookupUnit returns the rule for a unit name: the name itself, else its
// template (foo@bar.service -> foo@.service). Sockets, slices and mounts
// have their own rules (Socket, Mount); ok is false for everything else.
func LookupUnit(name string) (Unit, bool) {
	all := units()
	if u, ok := all[name]; ok {
		return u, true
	}
	if t := unitfile.Template(name); t != "" {
		if u, ok := all[t]; ok {
			return u, true
		}
	}
	if strings.HasSuffix(name, ".slice") {
		return Unit{nil, "a slice (resource control only)"}, true
	}
	return Unit{}, false
}

// Type returns a unit name's type: "service", "socket", ...
func Type(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// CommandAllowed reports whether an allowed unit with rule u may run the
// command line cmd (its program and, for systemctl, its verb).
func CommandAllowed(u Unit, program, cmd string) bool {
	if !systemDir(program) {
		return false
	}
	base := path.Base(program)
	ok := false
	for _, p := range u.Programs {
		if base == p {
			ok = true
		}
	}
	if !ok {
		return false
	}
	if base == "systemctl" {
		for _, w := range strings.Fields(cmd) {
			if systemctlVerbs[w] {
				return true
			}
		}
		return false
	}
	return true
}

// VirtualFS are the file system types a mount unit may mount: kernel
// interfaces, never a disk.
var virtualFS = map[string]bool{"tmpfs": true, "proc": true, "sysfs": true, "devtmpfs": true, "configfs": true, "debugfs": true,
	"tracefs": true, "mqueue": true, "hugetlbfs": true, "fusectl": true, "securityfs": true, "bpf": true, "pstore": true,
	"efivarfs": true, "cgroup2": true, "binfmt_misc": true, "ramfs": true, "devpts": true}

// VirtualFS reports whether a mount of type fstype touches no disk.
func VirtualFS(fstype string) bool { return virtualFS[fstype] }

// KeptGenerators are the systemd generators allowed to run: they read only
// the kernel command line the administrator typed (debug shell, masks,
// systemd.run=, serial gettys) and never look at storage.
var keptGenerators = map[string]bool{"systemd-debug-generator": true, "systemd-getty-generator": true, "systemd-run-generator": true}

// Generator reports whether a systemd generator may run.
func Generator(name string) bool { return keptGenerators[name] }

// RootUnits lead to the root mount or switch_root; strip masks them by name
// even when absent, since generators create some of them at boot.
func RootUnits() []string {
	return []string{
		"sysroot.mount", "sysroot-usr.mount", "systemd-fsck-root.service", "systemd-fsck-usr.service",
		"systemd-hibernate-resume.service", "initrd-switch-root.service", "initrd-switch-root.target",
		"initrd-cleanup.service", "initrd-parse-etc.service", "initrd-root-fs.target", "initrd-root-device.target",
		"initrd-fs.target", "initrd-usr-fs.target", "dracut-initqueue.service", "dracut-pre-mount.service",
		"dracut-mount.service", "dracut-pre-pivot.service", "systemd-volatile-root.service",
		"systemd-ask-password-console.path", "systemd-ask-password-console.service",
	}
}

// ---- udev ----

// udevHelpers are the programs udev rules may run: udev's own read-only
// probes and queries of devices that already exist.
var udevHelpers = map[string]bool{"ata_id": true, "scsi_id": true, "cdrom_id": true, "mtd_probe": true, "v4l_id": true,
	"fido_id": true, "dmi_memory_id": true, "iocost": true, "usb_id": true, "path_id": true, "collect": true,
	"readlink": true, "basename": true, "systemd-sysctl": true, "blkid": true}

// udevQueries are programs allowed with some arguments only.
var udevQueries = regexp.MustCompile(`^(?:dmsetup (?:udevflags|info|splitname|udevcomplete|version)|mdadm (?:--detail|-D|--examine|-E)|udevadm (?:trigger|info|settle|control --reload)|loginctl lock-sessions)(?:\s|$)`)

// UdevProgram reports whether a udev rule may run cmdline (the value of a
// RUN, PROGRAM or IMPORT{program} key).
func UdevProgram(cmdline string) bool {
	f := strings.Fields(cmdline)
	if len(f) == 0 {
		return true
	}
	prog := f[0]
	if strings.Contains(prog, "$") || strings.Contains(prog, "%") || strings.Contains(prog, ":") && !strings.HasPrefix(prog, "/") {
		// $env{REMOVE_CMD}, socket:..., %c: not a program known here.
		return false
	}
	if !systemDir(prog) {
		return false
	}
	base := path.Base(prog)
	if udevHelpers[base] {
		return true
	}
	rest := strings.Join(append([]string{base}, f[1:]...), " ")
	return udevQueries.MatchString(rest)
}

// ---- shell init scripts ----

// storageTool matches a shell command that activates, assembles, unlocks,
// formats, writes or mounts storage. Allowed hooks and scripts must not
// contain one.
var storageTool = regexp.MustCompile(`\b(mdadm|mdmon|lvm|pvscan|vgscan|vgchange|vgimport|lvchange|cryptsetup|systemd-cryptsetup|multipath|kpartx|dmraid|dmsetup|zpool|zfs|iscsiadm|iscsistart|nvme|wipefs|blockdev|mkfs[.a-z0-9]*|mke2fs|sfdisk|sgdisk|parted|fdisk|e2fsck|fsck[.a-z0-9]*|mount|swapon|dd|stratis|vdo|nbd-client|resume)\b`)

// StorageCommand returns the first storage tool a script names, or "".
func StorageCommand(body []byte) string {
	for _, line := range strings.Split(string(body), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		for _, m := range storageTool.FindAllString(t, -1) {
			if m == "mount" && virtualMount(t) {
				continue
			}
			return m
		}
	}
	return ""
}

// mountType finds the -t TYPE of a mount command line.
var mountType = regexp.MustCompile(`\bmount\s+(?:-[a-z]+\s+)*-t\s+([a-z0-9_]+)\b`)

// virtualMount reports whether a line's mount mounts a kernel interface
// (mount -t efivarfs ...), which touches no disk.
func virtualMount(line string) bool {
	m := mountType.FindStringSubmatch(line)
	return m != nil && VirtualFS(m[1]) && strings.Count(line, "mount") == 1
}

// dracutHooks are the dracut hooks that bring hardware up, by stage/name.
var dracutHooks = map[string]string{
	"cmdline/01-parse-kernel.sh": "kernel module options from rd.driver.* (dracut's kernel-modules)",
	"cmdline/20-parse-i18n.sh":   "console font and keymap from rd.vconsole.* (dracut's i18n)",
}

// DracutHook says why a dracut hook (stage/name, e.g.
// "cmdline/01-parse-kernel.sh") may run, or "" if it may not.
func DracutHook(rel string) string { return dracutHooks[rel] }

// itoolsScripts are the initramfs-tools scripts that bring hardware up, by
// stage/name: udev, IDE and blacklisted modules, keymap and console,
// framebuffer, braille, efivarfs.
var itoolsScripts = map[string]string{
	"init-top/udev":              "starts udev and coldplug",
	"init-top/all_generic_ide":   "loads ide-generic when asked (all_generic_ide)",
	"init-top/blacklist":         "module blacklist from the command line",
	"init-top/keymap":            "keymap",
	"init-top/console_setup":     "console font and keymap",
	"init-top/framebuffer":       "framebuffer console",
	"init-top/brltty":            "braille display",
	"init-top/00_mount_efivarfs": "mounts efivarfs (a kernel interface)",
	"init-premount/brltty":       "braille display",
}

// ItoolsScript says why an initramfs-tools script (stage/name) may run, or
// "" if it may not.
func ItoolsScript(rel string) string { return itoolsScripts[rel] }

// itoolsStages are the stages of initramfs-tools' /init that run before the
// rescue takes over (at the end of init-premount).
var itoolsStages = []string{"init-top", "init-premount"}

// ItoolsStages lists them.
func ItoolsStages() []string { return append([]string(nil), itoolsStages...) }

// plainAssignment matches a shell line that only assigns a constant:
// VAR=word, VAR="text" or VAR='text', optionally exported.
var plainAssignment = regexp.MustCompile(`^(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=(?:[^\s;&|<>$` + "`" + `()'"\\]*|"[^"$` + "`" + `\\]*"|'[^']*')\s*(?:#.*)?$`)

// PlainConfigLine reports whether a line of a sourced shell configuration
// file (initramfs-tools' conf/, dracut's etc/conf.d) runs nothing: empty,
// a comment or a constant assignment.
func PlainConfigLine(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || t[0] == '#' || plainAssignment.MatchString(t)
}

// SocketService returns the service a socket unit activates: its Service=,
// else the socket's own name with .service (foo@.service for Accept=yes).
func SocketService(name string, f *unitfile.File) string {
	if s := f.Last("Socket", "Service"); s != "" {
		return s
	}
	base := strings.TrimSuffix(name, ".socket")
	switch strings.ToLower(f.Last("Socket", "Accept")) {
	case "yes", "true", "on", "1":
		return base + "@.service"
	}
	return base + ".service"
}

// Check judges one unit as systemd would load it (the unit file merged
// with its drop-ins): allowed says whether it may run in the rescue boot,
// why says why (or why not). service reports whether a socket's service
// is allowed (nil: only the allow-list decides).
func Check(name string, f *unitfile.File) (allowed bool, why string) {
	switch Type(name) {
	case "socket":
		svc := SocketService(name, f)
		if _, ok := LookupUnit(svc); !ok {
			return false, "a socket that activates " + svc + ", which is not allowed"
		}
		if c := f.Commands(); len(c) > 0 {
			return false, "a socket that runs " + c[0].Key + "=" + c[0].Value
		}
		return true, "activates " + svc
	case "mount":
		t := f.Last("Mount", "Type")
		if !VirtualFS(t) {
			return false, "a mount of " + quoteOr(f.Last("Mount", "What"), "?") + " (type " + quoteOr(t, "unset") + "), not a kernel interface"
		}
		return true, "mounts a kernel interface (" + t + ")"
	}
	u, ok := LookupUnit(name)
	if !ok {
		return false, "not on the allow-list of units that bring hardware up"
	}
	for _, c := range f.Commands() {
		for _, p := range unitfile.Program(c.Value) {
			if !CommandAllowed(u, p, c.Value) {
				return false, "allow-listed name, but " + c.Key + " runs " + p + ", which it may not"
			}
		}
	}
	return true, u.Why
}

func quoteOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
