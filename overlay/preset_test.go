package overlay

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRescuePresetContents: the programs a recovery needs first are in the
// preset, once each, and the image's own /bin/sh is never replaced.
func TestRescuePresetContents(t *testing.T) {
	progs := rescuePreset()
	seen := map[string]bool{}
	for _, p := range progs {
		if seen[p] {
			t.Errorf("%s twice in the rescue preset", p)
		}
		seen[p] = true
	}
	for _, c := range []struct {
		why   string
		progs []string
	}{
		{"enter and repair a restored root", []string{"chroot", "mount", "umount"}},
		{"boot loader", []string{"grub-install", "grub-probe", "efibootmgr"}},
		{"disk health and failing disks", []string{"smartctl", "nvme", "hdparm", "ddrescue"}},
		{"partitioning", []string{"sfdisk", "sgdisk", "gdisk", "parted", "partprobe", "wipefs"}},
		{"storage stacks", []string{"mdadm", "lvm", "cryptsetup", "dmsetup"}},
		{"file systems and swap", []string{"mkfs.ext4", "e2fsck", "tune2fs", "mkswap"}},
		{"restore", []string{"tar", "zstd", "gzip", "rsync"}},
	} {
		for _, p := range c.progs {
			if !seen[p] {
				t.Errorf("%s: %s missing from the rescue preset", c.why, p)
			}
		}
	}
	if seen["sh"] {
		t.Error("the rescue preset replaces the image's sh")
	}
	if trees, err := PresetTrees("rescue"); err != nil || !slices.Contains(trees, "/usr/lib/grub") {
		t.Errorf("rescue trees %q, %v: want /usr/lib/grub", trees, err)
	}
	if _, err := PresetTrees("huge"); err == nil {
		t.Error("PresetTrees of an unknown preset: no error")
	}
}

// elf32 is the header of a 32-bit i386 ELF object of type typ (GRUB's
// kernel.img is ET_EXEC, its modules ET_REL): no program for this root's
// loader, copied as data.
func elf32(typ uint16) []byte {
	b := make([]byte, 52)
	copy(b, "\x7fELF\x01\x01\x01")
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], 3) // EM_386
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[40:], 52)
	return b
}

// TestPresetTrees: the rescue preset copies GRUB's platform directories
// whole where the root has them (links kept, i386 objects as data) and
// reports them skipped where it does not; --preset none copies nothing.
func TestPresetTrees(t *testing.T) {
	write := func(t *testing.T, root, p string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	grubRoot := func(t *testing.T) string {
		root := t.TempDir()
		write(t, root, "usr/lib/grub/i386-pc/kernel.img", elf32(2))
		write(t, root, "usr/lib/grub/i386-pc/normal.mod", elf32(1))
		write(t, root, "usr/lib/grub/i386-pc/moddep.lst", []byte("normal: boot\n"))
		write(t, root, "usr/lib/grub/i386-pc/boot.img", make([]byte, 512))
		if err := os.Symlink("moddep.lst", filepath.Join(root, "usr/lib/grub/i386-pc/deps.lst")); err != nil {
			t.Fatal(err)
		}
		return root
	}
	fileRoot := func(t *testing.T) string {
		root := t.TempDir()
		write(t, root, "usr/lib/grub", []byte("not a directory"))
		return root
	}
	want := []string{"usr/lib/grub", "usr/lib/grub/i386-pc", "usr/lib/grub/i386-pc/boot.img", "usr/lib/grub/i386-pc/deps.lst",
		"usr/lib/grub/i386-pc/kernel.img", "usr/lib/grub/i386-pc/moddep.lst", "usr/lib/grub/i386-pc/normal.mod"}
	for _, c := range []struct {
		name    string
		root    func(*testing.T) string
		preset  string
		added   []string
		skipped bool
	}{
		{"grub present", grubRoot, "rescue", want, false},
		{"grub absent", func(t *testing.T) string { return t.TempDir() }, "rescue", nil, true},
		{"grub not a directory", fileRoot, "rescue", nil, true},
		{"preset none", grubRoot, "none", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := synthImage(t, true)
			rep, err := Apply(context.Background(), tr, Options{Root: c.root(t), Preset: c.preset})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range rep.Added {
				if a.Reason != "preset rescue: /usr/lib/grub" && !strings.HasPrefix(a.Reason, "target of /usr/lib/grub/") {
					t.Errorf("%s added for %q", a.Path, a.Reason)
				}
				got = append(got, a.Path)
			}
			if !slices.Equal(got, c.added) {
				t.Errorf("added %q, want %q", got, c.added)
			}
			if slices.Contains(rep.Skipped, "/usr/lib/grub") != c.skipped {
				t.Errorf("skipped %q: /usr/lib/grub listed is %v, want %v", rep.Skipped, !c.skipped, c.skipped)
			}
			for _, p := range c.added {
				if tr.Lookup(p) == nil {
					t.Errorf("%s reported added but not in the image", p)
				}
			}
		})
	}
}
