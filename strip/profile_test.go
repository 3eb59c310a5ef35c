package strip

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
)

// TestRegistry checks the registry's own rules: unique names, a detector for
// each, a reason for each refused generator, and Supported agreeing with the
// profiles that have edits.
func TestRegistry(t *testing.T) {
	seen := map[Generator]bool{}
	var withEdits []string
	for _, p := range profiles() {
		if p.Name == "" || p.Name == Unknown || seen[p.Name] {
			t.Errorf("profile name %q is empty, reserved or given twice", p.Name)
		}
		seen[p.Name] = true
		if p.Detect == nil {
			t.Errorf("%s: no Detect", p.Name)
		}
		if (p.Edit == nil) == (p.Refusal == "") {
			t.Errorf("%s: a profile has edits or a reason for its refusal, exactly one", p.Name)
		}
		if p.Edit != nil {
			withEdits = append(withEdits, string(p.Name))
		}
		if ev := p.Detect(remix.NewTree()); ev != nil {
			t.Errorf("%s recognises an empty tree: %v", p.Name, ev)
		}
	}
	if !slices.Equal(Supported(), withEdits) {
		t.Errorf("Supported() = %v, profiles with edits %v", Supported(), withEdits)
	}
}

func TestDetect(t *testing.T) {
	dracutFiles := []string{"usr/", "usr/lib/", "usr/lib/dracut/", "usr/lib/dracut/modules.txt=x\n"}
	tests := []struct {
		name     string
		lines    []string
		want     Generator
		evidence []string // each must be in the evidence
		refusal  string   // Apply's error must contain it
	}{
		{"initramfs-tools", []string{"init=#!/bin/sh\n", "conf/", "conf/initramfs.conf=x\n", "scripts/", "scripts/functions=x\n"},
			InitramfsTools, []string{"conf/initramfs.conf present", "scripts/functions present", "/init is a script (#!/bin/sh)"}, ""},
		{"one initramfs-tools file is not enough", []string{"init=#!/bin/sh\n", "conf/", "conf/initramfs.conf=x\n"},
			Unknown, []string{"/init is a script (#!/bin/sh)"}, `"unknown"`},
		{"dracut with systemd", append(append([]string{}, dracutFiles...), "init=-> usr/lib/systemd/systemd"),
			DracutSystemd, []string{"usr/lib/dracut/modules.txt present", "/init -> usr/lib/systemd/systemd"}, ""},
		{"dracut with systemd by default.target", append(append([]string{}, dracutFiles...), "init=#!/bin/sh\n", "etc/", "etc/systemd/", "etc/systemd/system/", "etc/systemd/system/default.target=-> /usr/lib/systemd/system/initrd.target"),
			DracutSystemd, []string{"etc/systemd/system/default.target -> /usr/lib/systemd/system/initrd.target"}, ""},
		{"dracut without systemd", append(append([]string{}, dracutFiles...), "init=#!/bin/bash\n"),
			DracutShell, []string{"usr/lib/dracut/modules.txt present", "/init is a script (#!/bin/bash)"}, ""},
		{"mkinitcpio", []string{"init=#!/usr/bin/ash\n", "init_functions=x\n", "hooks/", "config=HOOKS=\n"},
			Mkinitcpio, []string{"init_functions present", "config present"}, "nothing can vouch"},
		{"booster", []string{"init=\x7fELF\x02\x01\x01", "etc/", "etc/booster.yaml=x\n"},
			Booster, []string{"etc/booster.yaml present", "/init is an ELF program"}, "compiled program"},
		{"tiny-initramfs", []string{"init=\x7fELF\x02\x01\x01", "dev/", "proc/", "target/", "modules=/virtio_blk.ko\n", "virtio_blk.ko=x"},
			TinyInitramfs, []string{"target/ present", "/init is an ELF program"}, "/target"},
		{"a target directory alone is not tiny-initramfs", []string{"init=#!/bin/sh\n", "target/", "modules=x\n"}, Unknown, nil, `"unknown"`},
		{"alpine mkinitfs", []string{"init=#!/bin/sh\n", "sbin/", "sbin/nlplug-findfs=\x7fELF"},
			AlpineMkinitfs, []string{"sbin/nlplug-findfs present", "/init is a script (#!/bin/sh)"}, "nlplug-findfs"},
		{"nothing", []string{"etc/"}, Unknown, []string{"no /init"}, `"unknown"`},
		// Fail closed: an image two profiles claim gets neither's edits.
		{"two generators at once", append(append([]string{}, dracutFiles...), "init=#!/bin/sh\n", "conf/", "conf/initramfs.conf=x\n", "scripts/", "scripts/local=x\n"),
			Unknown, []string{"looks like initramfs-tools (conf/initramfs.conf present, scripts/local present)", "looks like dracut-shell (usr/lib/dracut/modules.txt present)"}, "looks like dracut-shell"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := layout(t, tc.lines...)
			expectDetect(t, tr, tc.want, tc.evidence)
			_, err := Apply(tr, Options{})
			if tc.refusal == "" {
				return
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.refusal) {
				t.Errorf("Apply: %v, want an UnsupportedError saying %q", err, tc.refusal)
			}
		})
	}
}

// expectDetect checks that Detect names want with every piece of evidence.
func expectDetect(t *testing.T, tr *remix.Tree, want Generator, evidence []string) {
	t.Helper()
	d := Detect(tr)
	if d.Generator != want {
		t.Fatalf("Detect = %s (%v), want %s", d.Generator, d.Evidence, want)
	}
	for _, ev := range evidence {
		if !slices.Contains(d.Evidence, ev) {
			t.Errorf("evidence %q missing from %q", ev, d.Evidence)
		}
	}
}
