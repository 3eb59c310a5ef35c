package strip

import (
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/audit"
)

// mkosiTree is a generic systemd initrd as mkosi-initrd builds it from
// Debian's packages (trimmed): /init an absolute link to systemd,
// etc/initrd-release a link to os-release, no dracut, and the units a
// systemd initrd without dracut runs on its own to find, grow and mount the
// root, on top of extra entries.
func mkosiTree(t *testing.T, extra ...string) *remix.Tree {
	return layout(t, append(mkosiLines(), extra...)...)
}

// mkosiWithout is mkosiTree without the entries named.
func mkosiWithout(t *testing.T, names ...string) *remix.Tree {
	var lines []string
	for _, l := range mkosiLines() {
		name, _, _ := strings.Cut(l, "=")
		if !slices.Contains(names, name) {
			lines = append(lines, l)
		}
	}
	return layout(t, lines...)
}

func mkosiLines() []string {
	const unit = "usr/lib/systemd/system/"
	base := append(append([]string{}, usrMerged...),
		"init=-> /usr/lib/systemd/systemd", "usr/lib/systemd/", "usr/lib/systemd/systemd=elf",
		"usr/lib/os-release=ID=debian\n", "etc/os-release=-> ../usr/lib/os-release", "etc/initrd-release=-> /etc/os-release",
		"usr/lib/systemd/system-preset/", "usr/lib/systemd/system-preset/99-mkosi.preset=disable *\n",
		"usr/lib/udev/", "usr/lib/udev/rules.d/",
		"usr/lib/udev/rules.d/10-mkosi-initrd-md.rules=SUBSYSTEM!=\"block\", GOTO=\"md_end\"\nIMPORT{program}=\"/sbin/mdadm --detail --export $devnode\"\nLABEL=\"md_end\"\n",
		"usr/lib/udev/rules.d/80-drivers.rules=RUN{builtin}+=\"kmod load $env{MODALIAS}\"\n",
		unit,
		unit+"initrd.target=[Unit]\nRequires=basic.target\nOnFailure=emergency.target\n",
		unit+"basic.target=[Unit]\nRequires=sysinit.target\n",
		unit+"sysinit.target=[Unit]\nWants=local-fs.target swap.target\n",
		unit+"systemd-udevd.service=[Service]\nExecStart=/usr/lib/systemd/systemd-udevd\n",
		unit+"systemd-udev-trigger.service=[Service]\nExecStart=-udevadm trigger --type=all --action=add\n",
		unit+"initrd-parse-etc.service=[Service]\nExecStart=systemctl --no-block start initrd-cleanup.service\n",
		unit+"systemd-repart.service=[Service]\nExecStart=systemd-repart --dry-run=no\n",
		unit+"systemd-growfs-root.service=[Service]\nExecStart=/usr/lib/systemd/systemd-growfs /sysroot\n",
		unit+"systemd-pcrphase-initrd.service=[Service]\nExecStart=/usr/lib/systemd/systemd-pcrextend --graceful enter-initrd\n",
		unit+"initrd-switch-root.service=[Service]\nExecStart=systemctl --no-block switch-root\n",
		unit+"sysinit.target.wants/",
		unit+"sysinit.target.wants/systemd-udevd.service=-> ../systemd-udevd.service",
		unit+"sysinit.target.wants/systemd-udev-trigger.service=-> ../systemd-udev-trigger.service",
		unit+"sysinit.target.wants/systemd-repart.service=-> ../systemd-repart.service",
		unit+"sysinit.target.wants/systemd-pcrphase-initrd.service=-> ../systemd-pcrphase-initrd.service",
		unit+"initrd-root-fs.target.wants/",
		unit+"initrd-root-fs.target.wants/systemd-growfs-root.service=-> ../systemd-growfs-root.service",
		"usr/lib/systemd/system-generators/",
		"usr/lib/systemd/system-generators/systemd-fstab-generator=elf",
		"usr/lib/systemd/system-generators/systemd-gpt-auto-generator=elf",
		"usr/lib/systemd/system-generators/systemd-debug-generator=elf",
		"etc/systemd/", "etc/systemd/system/")
	return base
}

// TestSystemdInitrdDetect is issue 15 point 4: a generic systemd initrd is
// recognised as one, is never taken for dracut's, and an image that also
// looks like another generator's is refused as unknown.
func TestSystemdInitrdDetect(t *testing.T) {
	mkosiEv := []string{"etc/initrd-release present", "usr/lib/systemd/system-preset/99-mkosi.preset present",
		"usr/lib/udev/rules.d/10-mkosi-initrd-md.rules present", "/init -> /usr/lib/systemd/systemd"}
	tests := []struct {
		name     string
		tree     func(*testing.T) *remix.Tree
		want     Generator
		evidence []string
	}{
		{"mkosi-initrd", func(t *testing.T) *remix.Tree { return mkosiTree(t) }, SystemdInitrd, mkosiEv},
		{"initrd-release in usr/lib, relative /init, no mkosi files", func(t *testing.T) *remix.Tree {
			return layout(t, append(append([]string{}, usrMerged...), "init=-> usr/lib/systemd/systemd", "usr/lib/systemd/", "usr/lib/systemd/systemd=elf",
				"usr/lib/initrd-release=ID=arch\n")...)
		}, SystemdInitrd, []string{"usr/lib/initrd-release present", "/init -> usr/lib/systemd/systemd"}},
		{"dracut's systemd image is dracut-systemd", func(t *testing.T) *remix.Tree { return sdTree(t, "etc/initrd-release=ID=debian\n") },
			DracutSystemd, []string{"usr/lib/dracut/modules.txt present"}},
		{"a mkosi image with dracut's library is dracut-systemd", func(t *testing.T) *remix.Tree {
			return mkosiTree(t, "usr/lib/dracut-lib.sh=x\n")
		}, DracutSystemd, []string{"usr/lib/dracut-lib.sh present"}},
		{"no initrd-release: systemd would not run as an initrd", func(t *testing.T) *remix.Tree { return mkosiWithout(t, "etc/initrd-release") }, Unknown, []string{"/init -> /usr/lib/systemd/systemd"}},
		{"initrd-release dangling", func(t *testing.T) *remix.Tree { return mkosiWithout(t, "usr/lib/os-release") }, Unknown, nil},
		{"initrd-release a directory", func(t *testing.T) *remix.Tree {
			return layout(t, append(append([]string{}, usrMerged...), "init=-> usr/lib/systemd/systemd", "etc/initrd-release/")...)
		}, Unknown, nil},
		{"/init a program with another name", func(t *testing.T) *remix.Tree {
			return layout(t, append(append([]string{}, usrMerged...), "init=-> usr/lib/systemd/systemd-shutdown", "etc/initrd-release=x\n")...)
		}, Unknown, nil},
		{"/init a script", func(t *testing.T) *remix.Tree {
			return layout(t, append(append([]string{}, usrMerged...), "init=#!/bin/sh\nexec /usr/lib/systemd/systemd\n", "etc/initrd-release=x\n")...)
		}, Unknown, nil},
		{"also initramfs-tools: refused", func(t *testing.T) *remix.Tree {
			return mkosiTree(t, "conf/", "conf/initramfs.conf=x\n", "scripts/", "scripts/functions=x\n")
		}, Unknown, []string{"looks like initramfs-tools (conf/initramfs.conf present, scripts/functions present)",
			"looks like systemd-initrd (etc/initrd-release present, usr/lib/systemd/system-preset/99-mkosi.preset present, usr/lib/udev/rules.d/10-mkosi-initrd-md.rules present)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.tree(t)
			expectDetect(t, tr, tc.want, tc.evidence)
			_, err := Apply(tr, Options{})
			if (err == nil) != (tc.want != Unknown) {
				t.Errorf("Apply: %v", err)
			}
		})
	}
}

// TestSystemdInitrdApply: the units a systemd initrd without dracut runs to
// find, grow, measure and mount the root, and its gpt-auto and fstab
// generators, are masked; udev stays; the audit and Assert find nothing.
func TestSystemdInitrdApply(t *testing.T) {
	tr := mkosiTree(t)
	plan, err := Apply(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Generator != SystemdInitrd {
		t.Fatalf("generator %s", plan.Generator)
	}
	masked := map[string]Kind{}
	for _, it := range plan.Items {
		masked[it.Path] = it.Kind
	}
	for _, p := range []string{"initrd-parse-etc.service", "systemd-repart.service", "systemd-growfs-root.service",
		"systemd-pcrphase-initrd.service", "initrd-switch-root.service"} {
		if k := masked["etc/systemd/system/"+p]; k != MaskUnit {
			t.Errorf("%s: %q, want masked", p, k)
		}
	}
	for _, g := range []string{"systemd-fstab-generator", "systemd-gpt-auto-generator"} {
		if k := masked["etc/systemd/system-generators/"+g]; k != MaskGenerator {
			t.Errorf("%s: %q, want masked", g, k)
		}
	}
	for _, k := range []string{"systemd-udevd.service", "systemd-udev-trigger.service"} {
		if _, ok := masked["etc/systemd/system/"+k]; ok {
			t.Errorf("%s masked: udev brings the hardware up", k)
		}
	}
	if n := tr.Lookup(Marker); n == nil || !strings.Contains(string(readAll(n)), "generator=systemd-initrd") {
		t.Error("the marker does not name systemd-initrd")
	}
	if f := audit.Check(tr); len(f) != 0 {
		t.Errorf("the audit of the stripped image finds: %v", f)
	}
	if f := Assert(tr); len(f) != 0 {
		t.Errorf("Assert: %v", f)
	}
}
