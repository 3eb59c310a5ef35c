#!/usr/bin/env bash
# recovery-lab.sh: builds the source machine of the recovery cycle test
# (TestRecoveryCycleLab) and its backup, and prints its directory as the
# last line of stdout.
#
#   recovery-lab.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# The source machine is a minimal Debian 12 made from a copy of the lab's
# root, where apt-get installs what the machine and its rescue need and the
# lab root lacks (GRUB for BIOS, smartmontools, nvme-cli, hdparm, gddrescue,
# efibootmgr, pciutils). Its two disks (virtio, raw files):
#   source-a.img, source-b.img  MBR: one partition from 1 MiB on (GRUB's
#                 core image sits in the gap before it), a member of the md RAID1 "source:root" (UUID $RECOVERY_MD_UUID)
#                 holding the LVM volume group vgsys with vgsys/root, ext4
#                 (UUID $RECOVERY_FS_UUID): the root, with /boot; GRUB
#                 (i386-pc) in the MBR of both disks. Its initramfs is
#                 host-only (initramfs-tools, MODULES=dep): virtio, md, dm,
#                 ext4, none of the drivers of other hardware.
# Its kernel command line (GRUB) has init=/usr/local/sbin/recovery-lab-init,
# which prints
#   RECOVERY-LAB-SYSTEM-UP id=<RECOVERY_ID> root=<device> md=<member,...>
# and powers off: the end of its boot, quick under TCG.
#   backup.img    ext4 labelled recovery-backup, written by
#                 scripts/recovery/backup.sh on the source: layout/ (partition
#                 tables, md, LVM, file systems, boot) and root.tar
#   initrd.img    the source's host-only initramfs (a copy of its
#                 /boot/initrd.img-KVER), the input of the rescue image
#   root/         the source's root as installed (the rescue's --root)
#   build.log     the console of the build
#   recovery.env  the names above and the identifiers
# Built with no initrd-remix code: the root is booted with the lab kernel
# and an original lab initrd, with init=/recovery-build/build.sh, which
# partitions, creates the array, the volume group and the file system,
# copies itself there, runs update-initramfs, grub-install and update-grub
# in a chroot, and backs it up (md and dm cannot be made on the host).
#
# Cached as ~/.cache/initrd-remix/recovery-<hash of this script,
# scripts/recovery/backup.sh and the lab>; built in a temporary directory and
# renamed when complete; concurrent runs wait on a lock. About 10 minutes
# under TCG. Needs: root, network access to deb.debian.org (the packages are
# kept in ~/.cache/initrd-remix/debs/recovery), mke2fs and debugfs
# (e2fsprogs), qemu-system-x86_64, unshare, chroot, flock.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "recovery-lab.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
lab=$(cd "$lab" && pwd -P)
# shellcheck disable=SC1091
source "$lab/lab.env"
[[ $(id -u) == 0 ]] || { echo "recovery-lab.sh: must run as root (chroot, mounts)" >&2; exit 1; }
for tool in mke2fs debugfs qemu-system-x86_64 unshare chroot flock; do
  command -v "$tool" >/dev/null || { echo "recovery-lab.sh: $tool not found" >&2; exit 1; }
done
log() { echo "recovery-lab.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$here/lib/stage.sh"
# The backup script runs in the build: its changes make a new stage.
stage_begin recovery recovery.env "$lab" "$(sha256sum <"$here/recovery/backup.sh")"
work=$stage_work dir=$stage_dir hash=$stage_hash
cache=${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix

# The source machine's identifiers.
md_uuid=5ec0a1d1:0badcafe:12345678:9abcdef0
fs_uuid=3e1f0a2b-5c6d-4e7f-8091-a2b3c4d5e6f7
vg=vgsys
disk_size=1280M

log "copying the lab root"
r=$work/root
cp -ax "$LAB_ROOT" "$r"
mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/run"
cp -L /etc/resolv.conf "$r/etc/resolv.conf"
debs=$cache/debs/recovery
mkdir -p "$debs/partial"

cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
r=$1 debs=$2
for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
mount --bind "$debs" "$r/var/cache/apt/archives"
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive /bin/sh -euc '
apt-get update -qq
apt-get install -y -qq --no-install-recommends grub-pc-bin smartmontools nvme-cli hdparm gddrescue efibootmgr pciutils >/dev/null
kver=$(ls /lib/modules)
# A small machine: the kernel modules of hardware it will never see go.
for d in gpu media net/wireless net/ethernet infiniband staging iio bluetooth isdn comedi sound; do
  rm -rf "/lib/modules/$kver/kernel/drivers/$d"
done
rm -rf "/lib/modules/$kver/kernel/sound" "/lib/modules/$kver/kernel/net/wireless" "/lib/modules/$kver/kernel/net/mac80211" "/lib/modules/$kver/kernel/net/bluetooth"
depmod "$kver"
'
rm -f "$r/usr/sbin/policy-rc.d"
INNER
log "installing GRUB (i386-pc) and the disk tools in the copy (log: apt.log)"
if ! unshare --mount --propagation private bash "$work/inner.sh" "$r" "$debs" >"$work/apt.log" 2>&1; then
  tail -n 40 "$work/apt.log" >&2
  log "apt-get failed"
  exit 1
fi
rm -rf "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/lib/apt/lists/* \
  "$r"/var/cache/apt/* "$r"/var/tmp/* "$r"/lab-images "$r"/boot/initrd.img-*
for g in grub-install grub-probe smartctl nvme hdparm ddrescue efibootmgr; do
  chroot "$r" sh -c "command -v $g" >/dev/null || { log "$g missing after apt-get"; exit 1; }
done

log "configuring the source machine"
kver=$LAB_KVER
[[ -d $r/lib/modules/$kver ]] || { log "the root has no modules for $kver"; exit 1; }
rm -f "$r/etc/crypttab"
echo RESUME=none >"$r/etc/initramfs-tools/conf.d/resume"
sed -i 's/^MODULES=.*/MODULES=dep/' "$r/etc/initramfs-tools/initramfs.conf"
# A virtual machine loads no microcode: none in its initramfs (the lab
# root puts all of it there).
sed -i 's/^IUCODE_TOOL_INITRAMFS=.*/IUCODE_TOOL_INITRAMFS=no/' "$r/etc/default/intel-microcode"
sed -i 's/^AMD64UCODE_INITRAMFS=.*/AMD64UCODE_INITRAMFS=no/' "$r/etc/default/amd64-microcode"
grep -qx MODULES=dep "$r/etc/initramfs-tools/initramfs.conf"
cat >"$r/etc/mdadm/mdadm.conf" <<EOF
HOMEHOST <system>
MAILADDR root
ARRAY /dev/md/root metadata=1.2 UUID=$md_uuid name=source:root
EOF
echo "UUID=$fs_uuid / ext4 errors=remount-ro 0 1" >"$r/etc/fstab"
echo source >"$r/etc/hostname"
mkdir -p "$r/etc/recovery-lab"
echo "$hash" >"$r/etc/recovery-lab/id"
cat >"$r/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 panic=-1 init=/usr/local/sbin/recovery-lab-init"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
EOF
cat >"$r/usr/local/sbin/recovery-lab-init" <<'EOF'
#!/bin/sh
# The end of the recovery lab machine's boot (init= on its command line):
# says what it runs on and powers off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
root=$(awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)
md=
for m in /sys/block/md*/md/dev-*; do
  [ -e "$m" ] && md="$md${md:+,}${m##*/dev-}"
done
echo "RECOVERY-LAB-SYSTEM-UP id=$(cat /etc/recovery-lab/id) root=$root md=$md"
sync
echo o >/proc/sysrq-trigger
sleep 30
EOF
chmod 755 "$r/usr/local/sbin/recovery-lab-init"

# The builder: the source root itself, plus the build and backup scripts.
mkdir -p "$r/recovery-build/lvm"
cp "$here/recovery/backup.sh" "$r/recovery-build/backup.sh"
cat >"$r/recovery-build/lvm/lvm.conf" <<'EOF'
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
devices { obtain_device_list_from_udev = 0 }
EOF
cat >"$r/recovery-build/build.sh" <<EOF
#!/bin/bash
# Runs as init in QEMU: vdb, vdc the source disks; vdd the backup disk.
exec >/dev/console 2>&1
set -euxo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
mount -t proc proc /proc || true
mount -t sysfs sysfs /sys || true
mount -t devtmpfs devtmpfs /dev || true
mount -t tmpfs tmpfs /run
for m in raid1 dm-mod ext4; do modprobe \$m || true; done
# No udev here: LVM and device-mapper make their own device nodes.
export DM_DISABLE_UDEV=1
export LVM_SYSTEM_DIR=/recovery-build/lvm
for d in vdb vdc; do
  printf 'label: dos\nstart=1MiB, type=fd\n' | sfdisk --no-reread --no-tell-kernel /dev/\$d
  blockdev --rereadpt /dev/\$d
done
mdadm --create /dev/md/root --run --assume-clean --metadata=1.2 --level=1 --raid-devices=2 \
  --uuid=$md_uuid --homehost=source --name=root /dev/vdb1 /dev/vdc1
lvm pvcreate -ff -y /dev/md/root
lvm vgcreate $vg /dev/md/root
lvm lvcreate -Zn -l 100%FREE -n root $vg
lvm vgmknodes $vg
mkfs.ext4 -q -F -U $fs_uuid -L root /dev/mapper/$vg-root
mkdir -p /target /backup
mount /dev/mapper/$vg-root /target
tar -C / --one-file-system --exclude=./recovery-build --exclude=./target --exclude=./backup -cf - . | tar -C /target -xpf -
for m in proc sys dev run; do mount --bind /\$m /target/\$m; done
in_target() { chroot /target /usr/bin/env -u LVM_SYSTEM_DIR "\$@"; }
in_target update-initramfs -c -k $kver
in_target grub-install --target=i386-pc /dev/vdb
in_target grub-install --target=i386-pc /dev/vdc
in_target update-grub
for m in run dev sys proc; do umount /target/\$m; done
mkfs.ext4 -q -F -L recovery-backup /dev/vdd
mount /dev/vdd /backup
/recovery-build/backup.sh /target /backup
cp /target/boot/initrd.img-$kver /backup/initrd.img
umount /backup /target
lvm vgchange -an $vg
mdadm --stop /dev/md/root
sync
echo RECOVERY-SOURCE-BUILT
poweroff -f
EOF
chmod 755 "$r/recovery-build/build.sh"
size=$(( $(du -sm "$r" | cut -f1) * 13 / 10 + 300 ))
mke2fs -q -F -t ext4 -E root_owner=0:0 -d "$r" "$work/builder.ext4" "${size}M" >&2
rm -rf "$r/recovery-build"

truncate -s "$disk_size" "$work/source-a.img" "$work/source-b.img"
truncate -s 1024M "$work/backup.img"
log "building the source machine and its backup inside QEMU (log: build.log)"
if ! "$here/boot.sh" --kernel "$LAB_KERNEL" --initrd "$LAB_IMAGES/itools-zstd.img" --memory 1024 \
    --append "root=/dev/vda rw noresume init=/recovery-build/build.sh" \
    --disk "$work/builder.ext4" --disk-rw "$work/source-a.img" --disk-rw "$work/source-b.img" \
    --disk-rw "$work/backup.img" --expect RECOVERY-SOURCE-BUILT --timeout 1500 --log "$work/build.log" >&2; then
  tail -n 60 "$work/build.log" >&2
  exit 1
fi
rm -f "$work/builder.ext4"
debugfs -R "dump /initrd.img $work/initrd.img" "$work/backup.img" 2>/dev/null
[[ -s $work/initrd.img ]] || { log "no initrd.img on the backup disk"; exit 1; }
cat >"$work/recovery.env" <<EOF
# initrd-remix recovery lab $hash for ${lab##*/}, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - stage_t0)) s
RECOVERY_DIR=$dir
RECOVERY_ROOT=$dir/root
RECOVERY_KVER=$kver
RECOVERY_KERNEL=$LAB_KERNEL
RECOVERY_INITRD=$dir/initrd.img
RECOVERY_DISKS="source-a.img source-b.img"
RECOVERY_DISK_SIZE=$disk_size
RECOVERY_BACKUP=$dir/backup.img
RECOVERY_BACKUP_LABEL=recovery-backup
RECOVERY_MARKER=RECOVERY-LAB-SYSTEM-UP
RECOVERY_ID=$hash
RECOVERY_MD_UUID=$md_uuid
RECOVERY_VG=$vg
RECOVERY_FS_UUID=$fs_uuid
EOF
# The root's copy inside the temporary directory is the rescue's --root.
stage_commit .
