package remix

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// FileInfo is one name of the merged tree in a form that can be compared
// between images and printed as JSON.
type FileInfo struct {
	Path      string `json:"path"`
	Type      string `json:"type"`
	Mode      uint32 `json:"mode"` // permission bits, suid/sgid/sticky included
	UID       uint32 `json:"uid"`
	GID       uint32 `json:"gid"`
	Size      int64  `json:"size"`
	Mtime     uint32 `json:"mtime"`
	RDevMajor uint32 `json:"rdev_major,omitempty"`
	RDevMinor uint32 `json:"rdev_minor,omitempty"`
	Target    string `json:"target,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	// HardlinkOf names the first path (in sorted order) of the hard-link
	// group this name belongs to; empty when it has a single name.
	HardlinkOf string `json:"hardlink_of,omitempty"`
}

// TypeName returns the short name of a cpio file type.
func TypeName(mode uint32) string {
	switch mode & newc.TypeMask {
	case newc.TypeReg:
		return "file"
	case newc.TypeDir:
		return "dir"
	case newc.TypeSymlink:
		return "symlink"
	case newc.TypeChar:
		return "char"
	case newc.TypeBlock:
		return "block"
	case newc.TypeFIFO:
		return "fifo"
	case newc.TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("unknown(%#o)", mode&newc.TypeMask)
}

// View lists the tree sorted by path. With withContent set, regular files
// carry the SHA-256 of their content (known lists digests already computed).
func (t *Tree) View(withContent bool, known map[*Inode][32]byte) ([]FileInfo, error) {
	groups := map[*Inode]string{}
	nodes := t.Nodes()
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].Path < nodes[b].Path })
	for _, n := range nodes {
		if n.Inode.links > 1 {
			if _, ok := groups[n.Inode]; !ok {
				groups[n.Inode] = n.Path
			}
		}
	}
	digests := map[*Inode]string{}
	out := make([]FileInfo, 0, len(nodes))
	for _, n := range nodes {
		in := n.Inode
		fi := FileInfo{Path: n.Path, Type: TypeName(in.Mode), Mode: in.Mode & 0o7777, UID: in.UID, GID: in.GID,
			Size: in.Size(), Mtime: in.Mtime, Target: in.Target, HardlinkOf: groups[in]}
		if t := in.Type(); t == newc.TypeChar || t == newc.TypeBlock {
			fi.RDevMajor, fi.RDevMinor = in.RDevMajor, in.RDevMinor
		}
		if withContent && in.Type() == newc.TypeReg && in.Size() > 0 {
			d, ok := digests[in]
			if !ok {
				if k, ok := known[in]; ok {
					d = hex.EncodeToString(k[:])
				} else {
					sum, err := digestContent(in.Content)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", n.Path, err)
					}
					d = sum
				}
				digests[in] = d
			}
			fi.SHA256 = d
		}
		out = append(out, fi)
	}
	return out, nil
}

func digestContent(c Content) (string, error) {
	r, err := c.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DiffViews lists every difference between two views (both sorted by path),
// one line each; nil means they are equal entry for entry.
func DiffViews(a, b []FileInfo) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && a[i].Path < b[j].Path):
			out = append(out, "only in first: "+a[i].Path)
			i++
		case i >= len(a) || b[j].Path < a[i].Path:
			out = append(out, "only in second: "+b[j].Path)
			j++
		default:
			if a[i] != b[j] {
				out = append(out, fmt.Sprintf("%s: %+v != %+v", a[i].Path, a[i], b[j]))
			}
			i++
			j++
		}
	}
	return out
}
