package strip

import "github.com/initrd-remix/initrd-remix/remix"

// DracutShell is dracut without systemd: /init is dracut's shell script,
// which runs the hooks of each stage itself.
const DracutShell Generator = "dracut-shell"

func dracutShellProfile() Profile {
	return Profile{
		Name: DracutShell,
		Detect: func(t *remix.Tree) []string {
			if ev, systemd := dracutEvidence(t); ev != nil && !systemd {
				return ev
			}
			return nil
		},
		Edit: func(e *editor) error { return e.dracut(false) },
	}
}
