package strip

import (
	"bytes"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// TinyInitramfs is Debian's tiny-initramfs (mktirfs): /init is one static
// program, the modules it loads lie at the top level, listed in /modules,
// and the root is mounted on /target.
const TinyInitramfs Generator = "tiny-initramfs"

func tinyInitramfsProfile() Profile {
	return Profile{
		Name: TinyInitramfs,
		Detect: func(t *remix.Tree) []string {
			init, target, mods := t.Lookup("init"), t.Lookup("target"), t.Lookup("modules")
			if init == nil || init.Inode.Type() != newc.TypeReg || !bytes.HasPrefix(remix.Head(init.Inode.Content, 4), []byte("\x7fELF")) ||
				target == nil || target.Inode.Type() != newc.TypeDir || mods == nil || mods.Inode.Type() != newc.TypeReg {
				return nil
			}
			return []string{"target/ present", "modules list present"}
		},
		Refusal: "its /init is one compiled program that mounts the root= device on /target and switches to it; there is no unit, hook or script to turn off",
	}
}
