package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// rescuePreset is what --preset rescue adds, of what the root has. A preset
// program the root does not have is skipped (and reported); --add of a
// missing program is an error.
func rescuePreset() []string {
	return []string{
		// shell and core tools; not "sh": the image's /bin/sh runs its
		// own /init and scripts (busybox or dash) and must stay theirs
		"bash", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "rmdir",
		"chmod", "chown", "touch", "df", "du", "find", "grep", "sed", "awk",
		"head", "tail", "sort", "wc", "dd", "sync", "stat", "dmesg", "ps",
		"kill", "less", "vi", "cut", "tr", "tee", "xargs", "readlink",
		"mktemp", "cmp", "sha256sum", "md5sum",
		// entering a restored root (regenerating its initramfs, its boot
		// loader configuration) and what the loader needs to find it
		"chroot", "mknod",
		// mounting and block devices
		"mount", "umount", "blkid", "lsblk", "findmnt", "losetup",
		"blockdev", "mkswap", "swapon", "swapoff",
		// disk health and rescue of failing disks: what an administrator
		// reaches for first on a broken machine
		"smartctl", "nvme", "hdparm", "ddrescue", "lspci",
		// partitioning
		"parted", "sfdisk", "sgdisk", "gdisk", "fdisk", "wipefs", "partprobe",
		// file systems
		"mkfs", "fsck", "mkfs.ext4", "fsck.ext4", "e2fsck", "mke2fs",
		"tune2fs", "resize2fs", "dumpe2fs", "e2label", "debugfs",
		"mkfs.xfs", "xfs_repair", "xfs_admin",
		"mkfs.btrfs", "btrfs", "btrfsck",
		"mkfs.vfat", "fsck.vfat", "mkfs.fat", "fsck.fat",
		// storage stacks (started by hand only: strip disables the automatic paths)
		"mdadm", "lvm", "cryptsetup", "dmsetup",
		// boot loaders: GRUB's installer with its platform files (see
		// presetTrees) and the UEFI boot manager's variables
		"grub-install", "grub-probe", "grub-bios-setup", "grub-editenv",
		"efibootmgr",
		// network
		"ip", "ping", "ssh", "scp", "rsync",
		// archives and compressors
		"tar", "gzip", "gunzip", "zcat", "xz", "unxz", "zstd", "unzstd",
		"bzip2", "bunzip2", "lz4", "cpio",
	}
}

// rescueTrees are the directories --preset rescue copies whole, where the
// root has them: /usr/lib/grub holds one directory per platform the root's
// GRUB packages support (i386-pc, x86_64-efi, ...), the modules and images
// grub-install writes to the disk and the boot directory; without them
// grub-install fails ("... doesn't exist. Please specify --target or
// --directory").
func rescueTrees() []string {
	return []string{"/usr/lib/grub"}
}

// PresetNames lists the presets, for --help.
func PresetNames() []string { return []string{"rescue", "none"} }

// presetSet is what a preset adds: programs by name and trees copied whole.
type presetSet struct{ programs, trees []string }

func lookupPreset(name string) (presetSet, error) {
	switch name {
	case "rescue":
		return presetSet{rescuePreset(), rescueTrees()}, nil
	case "none":
		return presetSet{}, nil
	}
	return presetSet{}, fmt.Errorf("unknown preset %q (known: rescue, none)", name)
}

// PresetPrograms returns the programs of a preset.
func PresetPrograms(name string) ([]string, error) {
	p, err := lookupPreset(name)
	return p.programs, err
}

// PresetTrees returns the directories a preset copies whole where the root
// has them.
func PresetTrees(name string) ([]string, error) {
	p, err := lookupPreset(name)
	return p.trees, err
}

// presetTrees queues the trees of preset the root has, each copied as
// --include copies it (links with their targets, programs with their
// closure); a tree the root lacks is skipped and reported, as a missing
// preset program is.
func (a *applier) presetTrees(preset string) error {
	trees, err := PresetTrees(preset)
	if err != nil {
		return err
	}
	for _, t := range trees {
		_, phys, mode, err := a.res.Walk(t)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && !mode.IsDir()) {
			a.report.Skipped = append(a.report.Skipped, t)
			continue
		}
		if err != nil {
			return fmt.Errorf("preset %s: %s: %w", preset, t, err)
		}
		if _, err := os.Lstat(a.host(phys)); err != nil {
			return fmt.Errorf("preset %s: %s: %w", preset, t, err)
		}
		if err := a.includeTree(phys, phys, "preset "+preset+": "+t); err != nil {
			return fmt.Errorf("preset %s: %w", preset, err)
		}
	}
	return nil
}
