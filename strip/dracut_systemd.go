package strip

import "github.com/initrd-remix/initrd-remix/remix"

// DracutSystemd is dracut with systemd as /init (Fedora, RHEL, SUSE, Debian's
// dracut): systemd runs initrd.target, dracut's hooks run from its
// dracut-*.service units.
const DracutSystemd Generator = "dracut-systemd"

func dracutSystemdProfile() Profile {
	return Profile{
		Name: DracutSystemd,
		Detect: func(t *remix.Tree) []string {
			if ev, systemd := dracutEvidence(t); systemd {
				return ev
			}
			return nil
		},
		Edit: func(e *editor) error { return e.dracut(true) },
	}
}
