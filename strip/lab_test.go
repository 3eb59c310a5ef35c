package strip

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// TestLabApply strips every lab image, checks the plan against what the
// image holds, writes it in append mode and reads it back: the merged tree
// of the output must pass Assert, and the original must not.
func TestLabApply(t *testing.T) {
	l := testtool.OpenLab(t)
	if len(l.Images) < 6 {
		t.Fatalf("lab manifest lists %d images", len(l.Images))
	}
	out := t.TempDir()
	for _, im := range l.Images {
		name, family := im.Name, im.Family
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if f := Assert(img.Tree); len(f) != 1 || f[0].Path != Marker {
				t.Fatalf("Assert on the original: %v, want only the missing marker", f)
			}
			// Baked images carry a crypttab; it must be emptied.
			hadCrypttab := img.Tree.Lookup("etc/crypttab") != nil
			img.Tree.SetGeneration(img.EditGeneration())
			plan, err := Apply(img.Tree, Options{Payload: remix.BytesContent("#!/bin/sh\necho hi\n")})
			if err != nil {
				t.Fatal(err)
			}
			if string(plan.Generator) != family {
				t.Fatalf("profile %s, lab built %s", plan.Generator, family)
			}
			kinds := map[Kind][]string{}
			for _, it := range plan.Items {
				kinds[it.Kind] = append(kinds[it.Kind], it.Path)
			}
			// What each family must have had neutralised, by name.
			want := map[string][]string{
				"initramfs-tools": {"scripts/local", "scripts/nfs", "scripts/local-top/cryptroot", "scripts/local-block/mdadm",
					"scripts/local-premount/resume", "conf/conf.d/resume", "cryptroot/crypttab", "etc/mdadm/mdadm.conf", "etc/lvm/lvm.conf",
					"etc/udev/rules.d/64-md-raid-assembly.rules", "etc/udev/rules.d/69-lvm.rules"},
				"dracut-systemd": {"etc/systemd/system/initrd-switch-root.target", "etc/systemd/system/initrd-switch-root.service",
					"etc/systemd/system/sysroot.mount", "etc/systemd/system/systemd-fsck@.service", "etc/systemd/system/mdadm-last-resort@.timer",
					"etc/systemd/system-generators/systemd-cryptsetup-generator", "etc/systemd/system-generators/systemd-fstab-generator",
					"etc/systemd/system-generators/systemd-gpt-auto-generator", "etc/systemd/system-generators/dracut-rootfs-generator",
					"etc/systemd/system-generators/systemd-hibernate-resume-generator", "etc/udev/rules.d/64-lvm.rules",
					"etc/udev/rules.d/64-md-raid-assembly.rules", "etc/udev/rules.d/65-md-incremental-imsm.rules",
					"usr/lib/dracut/hooks/cmdline/30-parse-lvm.sh", "usr/lib/dracut/hooks/cmdline/30-parse-crypt.sh",
					"usr/lib/dracut/hooks/pre-trigger/30-parse-md.sh", "etc/systemd/system/initrd.target"},
				"dracut-shell": {"usr/lib/dracut/hooks/mount/99-mount-root.sh", "usr/lib/dracut/hooks/cmdline/95-parse-block.sh",
					"usr/lib/dracut/hooks/cmdline/10-parse-resume.sh", "usr/lib/dracut/hooks/initqueue/timeout/99-rootfallback.sh",
					"usr/lib/dracut/hooks/pre-mount/00-initrd-remix-rescue.sh", "etc/udev/rules.d/64-lvm.rules"},
			}[family]
			got := map[string]bool{}
			for _, it := range plan.Items {
				got[it.Path] = true
			}
			if hadCrypttab {
				want = append(want, "etc/crypttab")
			}
			want = append(want, MountPoint)
			for _, p := range want {
				if !got[p] {
					t.Errorf("plan does not touch %s", p)
				}
			}
			for _, keep := range []string{"usr/lib/udev/rules.d/80-drivers.rules", "etc/udev/rules.d/80-drivers.rules", "etc/udev/rules.d/50-firmware.rules",
				"scripts/init-top/udev", "scripts/init-top/keymap", "etc/systemd/system/systemd-udevd.service",
				"etc/systemd/system/systemd-udev-trigger.service", "etc/systemd/system/systemd-modules-load.service",
				"usr/lib/dracut/hooks/cmdline/01-parse-kernel.sh",
				// Naming rules and the dm udev handshake: the banner's
				// vgchange and cryptsetup need them (TestHandsUpLab).
				"etc/udev/rules.d/55-dm.rules", "etc/udev/rules.d/56-lvm.rules", "etc/udev/rules.d/60-persistent-storage-dm.rules",
				"etc/udev/rules.d/63-md-raid-arrays.rules", "etc/udev/rules.d/95-dm-notify.rules", "etc/udev/rules.d/11-dm.rules",
				"etc/udev/rules.d/59-persistent-storage-dm.rules", "etc/udev/rules.d/59-persistent-storage-md.rules"} {
				if got[keep] {
					t.Errorf("plan touches %s, which the hardware bring-up needs", keep)
				}
			}
			if f := Assert(img.Tree); len(f) != 0 {
				t.Fatalf("Assert after Apply: %v", f)
			}
			res, back := writeBack(t, img, filepath.Join(out, name+".img"), codec.Gzip)
			if res.NewEntries > 200 {
				t.Errorf("append wrote %d entries; only the edits belong there", res.NewEntries)
			}
			if _, err := Apply(back.Tree, Options{}); err != ErrAlreadyRescue {
				t.Errorf("Apply on a rescue image: %v, want ErrAlreadyRescue", err)
			}
			// usr-merge must survive: bin, sbin, lib stay links.
			if u := remix.DetectUsrMerge(back.Tree); u.State != "merged" {
				t.Errorf("usr-merge after strip: %+v", u)
			}
			var b bytes.Buffer
			for _, it := range plan.Items {
				b.WriteString(string(it.Kind) + " " + it.Path + "\n")
			}
			t.Logf("%d edits, %d new entries:\n%s", len(plan.Items), res.NewEntries, b.String())
		})
	}
}

// TestLabReleasesApply strips every image of the lab's other releases
// (Debian 13, and Debian 11 with a root without usr-merge): the profile is
// the family the lab built, the merged tree passes Assert before and after
// it is written and read back, and the image's usr-merge layout, merged or
// not, is what it was.
func TestLabReleasesApply(t *testing.T) {
	labs := testtool.LabReleases(t)
	if len(labs) < 2 {
		testtool.Missing(t, "the lab has no other release (LAB_RELEASES)")
	}
	out := t.TempDir()
	for _, l := range labs[1:] {
		for _, im := range l.Images {
			t.Run(l.Release+"/"+im.Name, func(t *testing.T) {
				t.Parallel()
				img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				layout := remix.DetectUsrMerge(img.Tree)
				img.Tree.SetGeneration(img.EditGeneration())
				plan, err := Apply(img.Tree, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if string(plan.Generator) != im.Family {
					t.Fatalf("profile %s, lab built %s", plan.Generator, im.Family)
				}
				if f := Assert(img.Tree); len(f) != 0 {
					t.Fatalf("Assert after Apply: %v", f)
				}
				_, back := writeBack(t, img, filepath.Join(out, l.Release+"-"+im.Name+".img"), codec.Zstd)
				if u := remix.DetectUsrMerge(back.Tree); u.State != layout.State {
					t.Errorf("usr-merge %s after strip, %s before", u.State, layout.State)
				}
				t.Logf("%d edits, usr-merge %s", len(plan.Items), layout.State)
			})
		}
	}
}

// writeBack writes img's edits in append mode to o, reads the result back
// and checks that its merged tree passes Assert.
func writeBack(t *testing.T, img *remix.Image, o string, c codec.Codec) (*remix.WriteResult, *remix.Image) {
	t.Helper()
	fo, err := os.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := img.WriteTo(context.Background(), fo, remix.WriteOptions{Mode: remix.Append, Compression: c, Verify: true})
	fo.Close()
	if err != nil {
		t.Fatal(err)
	}
	back, err := remix.Open(context.Background(), o, remix.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	if f := Assert(back.Tree); len(f) != 0 {
		t.Fatalf("Assert on the written image: %v", f)
	}
	return res, back
}
