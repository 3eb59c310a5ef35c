package remix

import (
	"bytes"
	"io"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// Generator names the tool that built an initrd.
type Generator string

const (
	InitramfsTools Generator = "initramfs-tools"
	DracutSystemd  Generator = "dracut-systemd"
	DracutShell    Generator = "dracut-shell" // dracut without systemd
	Mkinitcpio     Generator = "mkinitcpio"
	Booster        Generator = "booster"
	UnknownGen     Generator = "unknown"
)

// Detection is the generator found and what showed it.
type Detection struct {
	Generator Generator `json:"generator"`
	Evidence  []string  `json:"evidence"`
}

// DetectGenerator looks for each generator's own files. Paths are looked up
// through the image's symlinks, so a usr-merged image is read as the kernel
// would see it.
func DetectGenerator(t *Tree) Detection {
	has := func(p string) bool { return t.Lookup(p) != nil }
	var ev []string
	found := func(paths ...string) int {
		n := 0
		for _, p := range paths {
			if has(p) {
				ev = append(ev, p+" present")
				n++
			}
		}
		return n
	}
	initKind := describeInit(t)
	if found("conf/initramfs.conf", "scripts/functions", "scripts/local") >= 2 {
		return Detection{InitramfsTools, append(ev, initKind)}
	}
	ev = nil
	if found("usr/lib/dracut/modules.txt", "usr/lib/dracut/build-parameter.txt", "usr/lib/dracut-lib.sh", "lib/dracut-lib.sh") > 0 {
		systemd := false
		if n := t.Lookup("init"); n != nil && n.Inode.Type() == newc.TypeSymlink && strings.HasSuffix(n.Inode.Target, "systemd") {
			systemd = true
		}
		if d := t.Lookup("etc/systemd/system/default.target"); d != nil && d.Inode.Type() == newc.TypeSymlink && strings.HasSuffix(d.Inode.Target, "initrd.target") {
			ev = append(ev, "etc/systemd/system/default.target -> "+d.Inode.Target)
			systemd = true
		}
		ev = append(ev, initKind)
		if systemd {
			return Detection{DracutSystemd, ev}
		}
		return Detection{DracutShell, ev}
	}
	ev = nil
	if found("init_functions", "hooks") > 0 && has("config") {
		return Detection{Mkinitcpio, append(ev, "config present", initKind)}
	}
	ev = nil
	if found("etc/booster.yaml") > 0 {
		return Detection{Booster, append(ev, initKind)}
	}
	return Detection{UnknownGen, []string{initKind}}
}

// describeInit says what /init is, which every generator decides.
func describeInit(t *Tree) string {
	n := t.Lookup("init")
	if n == nil {
		return "no /init"
	}
	switch n.Inode.Type() {
	case newc.TypeSymlink:
		return "/init -> " + n.Inode.Target
	case newc.TypeReg:
		head := readHead(n.Inode.Content, 128)
		switch {
		case bytes.HasPrefix(head, []byte("#!")):
			line, _, _ := bytes.Cut(head, []byte("\n"))
			return "/init is a script (" + string(line) + ")"
		case bytes.HasPrefix(head, []byte("\x7fELF")):
			return "/init is an ELF program"
		}
		return "/init is a regular file"
	}
	return "/init is a " + TypeName(n.Inode.Mode)
}

func readHead(c Content, n int) []byte {
	if c == nil {
		return nil
	}
	r, err := c.Open()
	if err != nil {
		return nil
	}
	defer r.Close()
	buf := make([]byte, n)
	k, _ := io.ReadFull(r, buf)
	return buf[:k]
}

// TopLink describes one top-level directory that usr-merge concerns.
type TopLink struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // dir, symlink, or absent
	Target string `json:"target,omitempty"`
}

// UsrMerge describes how /bin, /sbin and the lib directories are laid out.
type UsrMerge struct {
	// State is "merged" (bin, sbin, lib are links into usr), "unmerged"
	// (they are directories), "partial", or "none" (none of them exist).
	State string    `json:"state"`
	Dirs  []TopLink `json:"dirs"`
}

// DetectUsrMerge reports the state of the image's top-level directories.
func DetectUsrMerge(t *Tree) UsrMerge {
	var u UsrMerge
	links, dirs := 0, 0
	for _, name := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		n := t.Get(name)
		tl := TopLink{Name: name, Type: "absent"}
		if n != nil {
			tl.Type = TypeName(n.Inode.Mode)
			tl.Target = n.Inode.Target
			if n.Inode.Type() == newc.TypeSymlink {
				if name == "bin" || name == "sbin" || name == "lib" {
					links++
				}
			} else if n.Inode.Type() == newc.TypeDir && (name == "bin" || name == "sbin" || name == "lib") {
				dirs++
			}
		}
		u.Dirs = append(u.Dirs, tl)
	}
	switch {
	case links == 3:
		u.State = "merged"
	case dirs == 3:
		u.State = "unmerged"
	case links == 0 && dirs == 0:
		u.State = "none"
	default:
		u.State = "partial"
	}
	return u
}

// KernelVersions lists the module directories under lib/modules (read
// through the image's links) that hold modules or a modules.dep.
func KernelVersions(t *Tree) []string {
	dir, n, err := t.Resolve("lib/modules", true)
	if err != nil || n == nil || n.Inode.Type() != newc.TypeDir {
		return nil
	}
	prefix := dir + "/"
	seen := map[string]bool{}
	for p, node := range t.nodes {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		kver, file, ok := strings.Cut(rest, "/")
		if !ok || seen[kver] {
			continue
		}
		if file == "modules.dep" || (node.Inode.Type() == newc.TypeReg && isModuleFile(file)) {
			seen[kver] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isModuleFile(p string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// MicrocodeVendors lists the CPU vendors whose early microcode the image's
// early archives carry.
func MicrocodeVendors(img *Image) []string {
	var out []string
	for _, v := range []string{"GenuineIntel", "AuthenticAMD"} {
		if n := img.Tree.Get("kernel/x86/microcode/" + v + ".bin"); n != nil && n.Gen() < img.FirstLate() {
			out = append(out, v)
		}
	}
	return out
}
