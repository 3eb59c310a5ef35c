package strip

import (
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
)

func sortStrings(s []string) { sort.Strings(s) }

// storageWords are words in script, hook and unit names that bring up,
// check or resume from storage, or log in to remote storage.
var storageWords = words("md mdadm mdraid mdmon raid dmraid imsm lvm lvm2 dm luks multipath multipathd kpartx " +
	"iscsi iscsid iscsiuio nvmf nbd fcoe zfs zpool btrfs bcache resume hibernate fsck root rootfs rootfallback " +
	"block genrules keydev lunmask usr virtiofs nfs nfsroot cifs dasd zfcp waitclean fstab overlay")

// storageName reports whether a script, hook or unit name is about storage.
func storageName(name string) bool {
	for _, w := range tokens(name) {
		if storageWords[w] || strings.HasPrefix(w, "crypt") || strings.HasPrefix(w, "lvm") {
			return true
		}
	}
	return false
}

// isNeutral reports whether n is already a neutral script or hook.
func isNeutral(n *remix.Node, neutral []byte) bool {
	if masked(n) {
		return true
	}
	b := readAll(n)
	return string(b) == string(neutral) || string(b) == string(embedded("neutral-hook.sh")) || string(b) == string(embedded("neutral-script.sh"))
}
