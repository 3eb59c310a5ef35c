package remix

import (
	"bytes"
	"io/fs"

	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// Header is a cpio entry's header as read, what OpenOptions.OnEntry sees;
// callers name it through remix and need not import the cpio package.
type Header = newc.Header

// The typed constructors below are how stages spell entries, so that no
// stage needs the cpio type bits: remix.File("etc/x", 0o644, c) rather
// than a Mode of newc.TypeReg|0o644. perm keeps the permission bits with
// setuid, setgid and sticky (0o7777); anything above is dropped.

// File returns the entry of a regular file; c nil means empty.
func File(name string, perm uint32, c Content) Entry {
	return Entry{Name: name, Mode: newc.TypeReg | perm&0o7777, Content: c}
}

// Dir returns the entry of a directory.
func Dir(name string, perm uint32) Entry {
	return Entry{Name: name, Mode: newc.TypeDir | perm&0o7777}
}

// Symlink returns the entry of a symbolic link to target (mode 0777, as
// every link has).
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: newc.TypeSymlink | 0o777, Target: target}
}

// CharDev returns the entry of a character device.
func CharDev(name string, perm, major, minor uint32) Entry {
	return Entry{Name: name, Mode: newc.TypeChar | perm&0o7777, RDevMajor: major, RDevMinor: minor}
}

// BlockDev returns the entry of a block device.
func BlockDev(name string, perm, major, minor uint32) Entry {
	return Entry{Name: name, Mode: newc.TypeBlock | perm&0o7777, RDevMajor: major, RDevMinor: minor}
}

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Type() == newc.TypeDir }

// IsRegular reports whether the inode is a regular file.
func (i *Inode) IsRegular() bool { return i.Type() == newc.TypeReg }

// IsSymlink reports whether the inode is a symbolic link.
func (i *Inode) IsSymlink() bool { return i.Type() == newc.TypeSymlink }

// IsCharDev reports whether the inode is a character device.
func (i *Inode) IsCharDev() bool { return i.Type() == newc.TypeChar }

// IsBlockDev reports whether the inode is a block device.
func (i *Inode) IsBlockDev() bool { return i.Type() == newc.TypeBlock }

// IsDevice reports whether the inode is a character or block device.
func (i *Inode) IsDevice() bool { return i.IsCharDev() || i.IsBlockDev() }

// Perm returns the permission bits with setuid, setgid and sticky.
func (i *Inode) Perm() uint32 { return i.Mode & 0o7777 }

// FileMode returns the inode's type and permissions as an fs.FileMode.
func (i *Inode) FileMode() fs.FileMode { return FileMode(i.Mode) }

// IsDir reports whether the node is a directory.
func (n *Node) IsDir() bool { return n.Inode.IsDir() }

// IsRegular reports whether the node is a regular file.
func (n *Node) IsRegular() bool { return n.Inode.IsRegular() }

// IsSymlink reports whether the node is a symbolic link.
func (n *Node) IsSymlink() bool { return n.Inode.IsSymlink() }

// IsDevice reports whether the node is a character or block device.
func (n *Node) IsDevice() bool { return n.Inode.IsDevice() }

// IsCharDev reports whether the node is a character device.
func (n *Node) IsCharDev() bool { return n.Inode.IsCharDev() }

// IsBlockDev reports whether the node is a block device.
func (n *Node) IsBlockDev() bool { return n.Inode.IsBlockDev() }

// Perm returns the permission bits with setuid, setgid and sticky.
func (n *Node) Perm() uint32 { return n.Inode.Perm() }

// Name returns the last component of the node's path ("." for the root).
func (n *Node) Name() string { return baseOf(n.Path) }

// FileMode converts cpio mode bits (type and permissions) to an
// fs.FileMode.
func FileMode(m uint32) fs.FileMode {
	perm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	switch m & newc.TypeMask {
	case newc.TypeDir:
		perm |= fs.ModeDir
	case newc.TypeSymlink:
		perm |= fs.ModeSymlink
	case newc.TypeChar:
		perm |= fs.ModeDevice | fs.ModeCharDevice
	case newc.TypeBlock:
		perm |= fs.ModeDevice
	case newc.TypeFIFO:
		perm |= fs.ModeNamedPipe
	case newc.TypeSocket:
		perm |= fs.ModeSocket
	}
	return perm
}

// CpioMode converts an fs.FileMode to cpio mode bits, the inverse of
// FileMode; a mode of no cpio type (fs.ModeIrregular) is a regular file.
func CpioMode(m fs.FileMode) uint32 {
	return cpioType(m) | Perm(m)
}

// Perm returns the cpio permission bits of m: rwx with setuid, setgid and
// sticky.
func Perm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

func cpioType(m fs.FileMode) uint32 {
	switch {
	case m&fs.ModeDir != 0:
		return newc.TypeDir
	case m&fs.ModeSymlink != 0:
		return newc.TypeSymlink
	case m&fs.ModeCharDevice != 0:
		return newc.TypeChar
	case m&fs.ModeDevice != 0:
		return newc.TypeBlock
	case m&fs.ModeNamedPipe != 0:
		return newc.TypeFIFO
	case m&fs.ModeSocket != 0:
		return newc.TypeSocket
	}
	return newc.TypeReg
}

// IsProgram reports whether head (a file's first bytes, see Head) starts
// an ELF object or a "#!" script: what the kernel can execute.
func IsProgram(head []byte) bool { return IsELF(head) || IsScript(head) }

// IsELF reports whether head starts with the ELF magic.
func IsELF(head []byte) bool { return bytes.HasPrefix(head, []byte("\x7fELF")) }

// IsScript reports whether head starts with "#!".
func IsScript(head []byte) bool { return bytes.HasPrefix(head, []byte("#!")) }
