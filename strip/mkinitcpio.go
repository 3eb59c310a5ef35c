package strip

import "github.com/initrd-remix/initrd-remix/remix"

// Mkinitcpio is Arch Linux's generator: /init is a shell script that runs
// the run_hook functions of the hooks/ its config lists.
const Mkinitcpio Generator = "mkinitcpio"

func mkinitcpioProfile() Profile {
	return Profile{
		Name: Mkinitcpio,
		Detect: func(t *remix.Tree) []string {
			if ev := present(t, "init_functions", "hooks"); ev != nil && t.Lookup("config") != nil {
				return append(ev, "config present")
			}
			return nil
		},
		Refusal: "its hooks (encrypt, lvm2, mdadm_udev, resume, fsck ...) run from functions strip has no profile for, so nothing can vouch that they are all off",
	}
}
