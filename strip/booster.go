package strip

import "github.com/initrd-remix/initrd-remix/remix"

// Booster is a generator whose /init is one Go program configured by
// etc/booster.yaml.
const Booster Generator = "booster"

func boosterProfile() Profile {
	return Profile{
		Name:    Booster,
		Detect:  func(t *remix.Tree) []string { return present(t, "etc/booster.yaml") },
		Refusal: "its /init is one compiled program that unlocks, assembles and mounts storage itself; there is no unit, hook or script to turn off",
	}
}
