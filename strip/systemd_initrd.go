package strip

import (
	"path"

	"github.com/initrd-remix/initrd-remix/remix"
)

// SystemdInitrd is a generic systemd initrd: systemd as /init running
// initrd.target, built from the distribution's packages by a tool other than
// dracut (mkosi-initrd, kernel-install's initrd_generator=mkosi-initrd). It
// is the same systemd initrd a dracut-systemd image is, without dracut's
// hooks, so it gets the same fail-closed unit edits.
const SystemdInitrd Generator = "systemd-initrd"

// initrdReleases are the files systemd looks for to run as an initrd.
var initrdReleases = []string{"etc/initrd-release", "usr/lib/initrd-release"}

// mkosiMarks are files only mkosi-initrd puts in an image: evidence of who
// built it, not a condition for the profile.
var mkosiMarks = []string{
	"usr/lib/systemd/system-preset/99-mkosi.preset",
	"usr/lib/udev/rules.d/10-mkosi-initrd-dm.rules",
	"usr/lib/udev/rules.d/10-mkosi-initrd-md.rules",
}

func systemdInitrdProfile() Profile {
	return Profile{
		Name:   SystemdInitrd,
		Detect: systemdInitrdEvidence,
		Edit:   func(e *editor) error { return e.systemd() },
	}
}

// systemdInitrdEvidence recognises an image whose /init is a link to a
// program named systemd and that has an initrd-release systemd can open (it
// decides from that file whether it runs as an initrd), and that dracut did
// not build: dracut's systemd images are the dracut-systemd profile's.
func systemdInitrdEvidence(t *remix.Tree) []string {
	n := t.Lookup("init")
	if n == nil || !n.IsSymlink() || path.Base(n.Inode.Target) != "systemd" {
		return nil
	}
	var ev []string
	for _, r := range initrdReleases {
		if _, rn, err := t.Resolve(r, true); err == nil && rn != nil && rn.IsRegular() {
			ev = append(ev, r+" present")
		}
	}
	if ev == nil {
		return nil
	}
	if dev, _ := dracutEvidence(t); dev != nil {
		return nil
	}
	return append(ev, present(t, mkosiMarks...)...)
}
