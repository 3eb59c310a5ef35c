// Facts the image model reports beside the tree: the usr-merge layout of the
// top-level directories, the kernel versions with modules, early microcode.

package remix

import (
	"strings"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

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
	_, n, err := t.Resolve("lib/modules", true)
	if err != nil || n == nil || n.Inode.Type() != newc.TypeDir {
		return nil
	}
	out := []string{}
	for _, k := range n.children() {
		if k.child("modules.dep") != nil || hasModule(k) {
			out = append(out, k.Name())
		}
	}
	return out
}

// child returns the name in directory dir called name, or nil.
func (dir *Node) child(name string) *Node {
	for _, k := range dir.kids {
		if k.Name() == name {
			return k
		}
	}
	return nil
}

// hasModule reports whether a regular file below dir is a kernel module.
func hasModule(dir *Node) bool {
	for _, k := range dir.kids {
		if k.Inode.IsRegular() && isModuleFile(k.Name()) || hasModule(k) {
			return true
		}
	}
	return false
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
