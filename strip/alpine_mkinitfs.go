package strip

import "github.com/initrd-remix/initrd-remix/remix"

// AlpineMkinitfs is Alpine Linux's mkinitfs: /init is its initramfs-init
// shell script, which finds the boot media and root with nlplug-findfs.
const AlpineMkinitfs Generator = "alpine-mkinitfs"

func alpineMkinitfsProfile() Profile {
	return Profile{
		Name:    AlpineMkinitfs,
		Detect:  func(t *remix.Tree) []string { return present(t, "sbin/nlplug-findfs") },
		Refusal: "its one /init script unlocks, assembles and mounts storage inline (nlplug-findfs, cryptroot, raid), with no hook or unit strip could turn off",
	}
}
