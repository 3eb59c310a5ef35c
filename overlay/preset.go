package overlay

import "fmt"

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
		"kill", "less", "vi",
		// mounting and block devices
		"mount", "umount", "blkid", "lsblk", "findmnt", "losetup",
		// partitioning
		"parted", "sfdisk", "sgdisk", "fdisk", "wipefs", "partprobe",
		// file systems
		"mkfs", "fsck", "mkfs.ext4", "fsck.ext4", "e2fsck", "mke2fs",
		"tune2fs", "resize2fs", "dumpe2fs",
		"mkfs.xfs", "xfs_repair", "xfs_admin",
		"mkfs.btrfs", "btrfs", "btrfsck",
		"mkfs.vfat", "fsck.vfat", "mkfs.fat", "fsck.fat",
		// storage stacks (started by hand only: strip disables the automatic paths)
		"mdadm", "lvm", "cryptsetup", "dmsetup",
		// network
		"ip", "ping", "ssh", "scp", "rsync",
		// archives and compressors
		"tar", "gzip", "gunzip", "zcat", "xz", "unxz", "zstd", "unzstd",
		"bzip2", "bunzip2", "lz4", "cpio",
	}
}

// PresetNames lists the presets, for --help.
func PresetNames() []string { return []string{"rescue", "none"} }

// PresetPrograms returns the programs of a preset.
func PresetPrograms(name string) ([]string, error) {
	switch name {
	case "rescue":
		return rescuePreset(), nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown preset %q (known: rescue, none)", name)
}
