package audit

import (
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

var sd = []string{"usr/", "usr/lib/", "usr/lib/systemd/", "usr/lib/systemd/systemd=elf", "init=-> usr/lib/systemd/systemd",
	"usr/lib/systemd/system/", "usr/lib/systemd/system/initrd.target=[Unit]\nWants=hw.service\n",
	"etc/", "etc/systemd/", "etc/systemd/system/"}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string // "" for a clean tree
	}{
		{"unknown unit pulled by initrd.target", []string{"usr/lib/systemd/system/hw.service=[Service]\nExecStart=/sbin/vgchange -ay\n"}, "hw.service would start (pulled in by initrd.target Wants=)"},
		{"masked in etc", []string{"usr/lib/systemd/system/hw.service=[Service]\nExecStart=/sbin/vgchange -ay\n", "etc/systemd/system/hw.service=-> /dev/null"}, ""},
		{"chain through an allowed unit", []string{"usr/lib/systemd/system/hw.service=-> /dev/null",
			"usr/lib/systemd/system/systemd-udevd.service=[Unit]\nWants=deep.service\n[Service]\nExecStart=/lib/systemd/systemd-udevd\n",
			"usr/lib/systemd/system/initrd.target.wants/", "usr/lib/systemd/system/initrd.target.wants/systemd-udevd.service=-> ../systemd-udevd.service",
			"usr/lib/systemd/system/deep.service=[Service]\nExecStart=/bin/mount /dev/vda /mnt\n"}, "deep.service would start (pulled in by systemd-udevd.service Wants=)"},
		{"unreadable unit", []string{"usr/lib/systemd/system/hw.service=garbage\n"}, "cannot be read"},
		{"generator", []string{"usr/lib/systemd/system/hw.service=-> /dev/null", "usr/lib/systemd/system-generators/", "usr/lib/systemd/system-generators/x-generator=elf"}, "generator x-generator would run"},
		{"kept generator", []string{"usr/lib/systemd/system/hw.service=-> /dev/null", "usr/lib/systemd/system-generators/", "usr/lib/systemd/system-generators/systemd-debug-generator=elf"}, ""},
		{"udev rule runs a program", []string{"usr/lib/systemd/system/hw.service=-> /dev/null", "usr/lib/udev/", "usr/lib/udev/rules.d/", "usr/lib/udev/rules.d/70-x.rules=RUN+=\"/x $devnode\"\n"}, `line 1 runs "/x $devnode"`},
		{"udev rule masked by an empty etc file", []string{"usr/lib/systemd/system/hw.service=-> /dev/null", "usr/lib/udev/", "usr/lib/udev/rules.d/", "usr/lib/udev/rules.d/70-x.rules=RUN+=\"/x $devnode\"\n",
			"etc/udev/", "etc/udev/rules.d/", "etc/udev/rules.d/70-x.rules="}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Check(treetest.Tree(t, append(append([]string{}, sd...), tc.lines...)...))
			expect(t, f, tc.want)
		})
	}
}

func TestInitramfsTools(t *testing.T) {
	base := []string{"init=#!/bin/sh\n", "conf/", "conf/initramfs.conf=MODULES=most\n", "scripts/", "scripts/functions=x\n",
		"scripts/init-top/", "scripts/init-top/udev=#!/bin/sh\nudevd --daemon\n", "scripts/init-premount/"}
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"hands over", []string{"scripts/init-top/ORDER=/scripts/init-top/udev \"$@\"\n", "scripts/init-premount/ORDER=exec /usr/lib/initrd-remix/rescue\n"}, ""},
		{"no hand-over", []string{"scripts/init-premount/ORDER=\n"}, "/init would go on"},
		{"unknown script", []string{"scripts/init-premount/hw=#!/bin/sh\nvgchange -ay\n", "scripts/init-premount/ORDER=/scripts/init-premount/hw \"$@\"\nexec /usr/lib/initrd-remix/rescue\n"}, "hw would run"},
		{"neutral script", []string{"scripts/init-premount/hw=#!/bin/sh\n:\n", "scripts/init-premount/ORDER=/scripts/init-premount/hw \"$@\"\nexec /usr/lib/initrd-remix/rescue\n"}, ""},
		{"command in ORDER", []string{"scripts/init-premount/ORDER=vgchange -ay\nexec /usr/lib/initrd-remix/rescue\n"}, `runs "vgchange -ay"`},
		{"sourced configuration", []string{"conf/conf.d/", "conf/conf.d/x=X=$(lvm vgchange -ay)\n", "scripts/init-premount/ORDER=exec /usr/lib/initrd-remix/rescue\n"}, "more than an assignment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := treetest.Tree(t, append(append([]string{}, base...), tc.lines...)...)
			if k := Kind(tr); k != InitramfsTools {
				t.Fatalf("Kind = %s", k)
			}
			f := Check(tr)
			expect(t, f, tc.want)
		})
	}
}

// expect checks that f has a finding whose problem says want, or none at
// all for an empty want.
func expect(t *testing.T, f []Finding, want string) {
	t.Helper()
	if want == "" {
		if len(f) != 0 {
			t.Errorf("findings: %v", f)
		}
		return
	}
	for _, x := range f {
		if strings.Contains(x.Problem, want) {
			return
		}
	}
	t.Errorf("no finding %q in %v", want, f)
}
