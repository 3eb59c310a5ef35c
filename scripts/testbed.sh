#!/usr/bin/env bash
# testbed.sh: builds the storage testbed the rescue tests boot on, and prints
# its directory as the last line of stdout.
#
#   testbed.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# Disks (raw files, tens of MiB, written by the lab's own kernel and tools
# inside QEMU, since the host kernel here has no md or device-mapper):
#   md-a.img, md-b.img  members of an md RAID1 (metadata 1.2, UUID
#                       $LAB_MD_UUID, name lab:0) holding an LVM PV of the
#                       volume group vg0 with
#                         vg0/root   ext4: a copy of the lab's marker root
#                                    (its /sbin/init prints $LAB_MARKER)
#                         vg0/crypt  LUKS2, UUID $LAB_LUKS_UUID
#                                    (passphrase: testbed)
#   gpt.img             GPT: partition 1 ext4 (label gptdata), partition 2
#                       swap (UUID $LAB_SWAP_UUID)
# The UUIDs are the lab's (scripts/lab/ids.sh), so the storage configuration
# baked into the lab's images points at these disks. testbed.env lists the
# names. Built with no initrd-remix code: an ext4 copy of the lab root is
# booted with an original lab initrd and init=/testbed-create.sh.
#
# Cached as ~/.cache/initrd-remix/testbed-<hash of this script and the lab>;
# built in a temporary directory and renamed when complete; concurrent runs
# wait on a lock. Needs: mke2fs (e2fsprogs), qemu-system-x86_64, flock.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "testbed.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
# The real directory: its name carries the hash of the lab recipe, where
# a link such as lab-current would key every lab to one testbed.
lab=$(cd "$lab" && pwd -P)
# shellcheck disable=SC1091
source "$lab/lab.env"
log() { echo "testbed.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$here/lib/stage.sh"
stage_begin testbed testbed.env "$lab"
hash=$stage_hash dir=$stage_dir work=$stage_work t0=$stage_t0
for tool in mke2fs qemu-system-x86_64; do
  command -v "$tool" >/dev/null || { echo "testbed.sh: $tool not found" >&2; exit 1; }
done
# The builder root: the lab root (hard links, no copy) plus the creation
# script, as an ext4 image that is deleted afterwards.
log "making the builder root"
mkdir "$work/root"
cp -al "$LAB_ROOT/." "$work/root/" 2>/dev/null || cp -a "$LAB_ROOT/." "$work/root/"
rm -f "$work/root/testbed-create.sh"
cat >"$work/root/testbed-create.sh" <<EOF
#!/bin/sh
# Runs as init in QEMU: vdb, vdc md members; vdd GPT disk; vde marker root.
exec >/dev/console 2>&1
set -eux
mount -t proc proc /proc || true
mount -t sysfs sysfs /sys || true
mount -t devtmpfs devtmpfs /dev || true
mount -t tmpfs tmpfs /run
for m in raid1 dm-mod dm-crypt ext4; do modprobe \$m || true; done
# No udev here: LVM and device-mapper make their own device nodes.
export DM_DISABLE_UDEV=1
lvmconf='activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } devices { obtain_device_list_from_udev = 0 }'
mdadm --create /dev/md0 --run --metadata=1.2 --level=1 --raid-devices=2 --assume-clean \
  --uuid=$LAB_MD_UUID --homehost=lab --name=0 /dev/vdb /dev/vdc
lvm pvcreate --config "\$lvmconf" -ff -y /dev/md0
lvm vgcreate --config "\$lvmconf" vg0 /dev/md0
lvm lvcreate --config "\$lvmconf" -Zn -L 16M -n root vg0
lvm lvcreate --config "\$lvmconf" -Zn -L 20M -n crypt vg0
lvm vgmknodes --config "\$lvmconf" vg0
dd if=/dev/vde of=/dev/mapper/vg0-root bs=1M conv=fsync
printf testbed >/run/key
cryptsetup luksFormat --batch-mode --type luks2 --uuid $LAB_LUKS_UUID --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --luks2-metadata-size 16k --luks2-keyslots-size 256k \
  --key-file /run/key /dev/mapper/vg0-crypt
printf 'label: gpt\nsize=16MiB, type=linux\ntype=swap\n' | sfdisk --no-reread --no-tell-kernel /dev/vdd
blockdev --rereadpt /dev/vdd
mkfs.ext4 -q -F -L gptdata /dev/vdd1
mkswap -U $LAB_SWAP_UUID /dev/vdd2
lvm vgchange --config "\$lvmconf" -an vg0
mdadm --stop /dev/md0
sync
echo TESTBED-CREATED
poweroff -f
EOF
chmod 755 "$work/root/testbed-create.sh"
mke2fs -q -F -t ext4 -E root_owner=0:0 -d "$work/root" "$work/builder.ext4" 1600M
rm -rf "$work/root"

truncate -s 48M "$work/md-a.img" "$work/md-b.img"
truncate -s 32M "$work/gpt.img"
log "creating md, LVM, LUKS2 and GPT inside QEMU"
image=$LAB_IMAGES/itools-zstd.img
if ! "$here/boot.sh" --kernel "$LAB_KERNEL" --initrd "$image" --memory 1024 \
    --append "root=/dev/vda rw noresume init=/testbed-create.sh" \
    --disk "$work/builder.ext4" --disk-rw "$work/md-a.img" --disk-rw "$work/md-b.img" \
    --disk-rw "$work/gpt.img" --disk "$LAB_MARKER_DISK" \
    --expect TESTBED-CREATED --timeout 400 --log "$work/create.log" >&2; then
  tail -n 40 "$work/create.log" >&2
  exit 1
fi
# A failing command stops the script (set -e): init exits, the kernel
# panics, and boot.sh reports the failure before the marker.
rm -f "$work/builder.ext4"
cat >"$work/testbed.env" <<EOF
# initrd-remix storage testbed $hash for ${lab##*/}, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
TESTBED_DIR=$dir
TESTBED_DISKS=md-a.img md-b.img gpt.img
TESTBED_VG=vg0
TESTBED_ROOT_LV=/dev/mapper/vg0-root
TESTBED_LUKS_LV=/dev/mapper/vg0-crypt
TESTBED_LUKS_UUID=$LAB_LUKS_UUID
TESTBED_MD_UUID=$LAB_MD_UUID
TESTBED_SWAP_UUID=$LAB_SWAP_UUID
TESTBED_PASSPHRASE=testbed
EOF
stage_commit .
