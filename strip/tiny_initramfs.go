package strip

import (
	"github.com/initrd-remix/initrd-remix/remix"
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
			if init == nil || !init.IsRegular() || !remix.IsELF(remix.Head(init.Inode.Content, 4)) ||
				target == nil || !target.IsDir() || mods == nil || !mods.IsRegular() {
				return nil
			}
			return []string{"target/ present", "modules list present"}
		},
		Refusal: "its /init is one compiled program that mounts the root= device on /target and switches to it; there is no unit, hook or script to turn off",
	}
}
