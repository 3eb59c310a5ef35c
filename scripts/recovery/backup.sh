#!/bin/bash
# backup.sh: backs up a Linux system for scripts/recovery/restore.sh: the
# layout of the storage stack under its file systems (partition tables, md
# arrays, LVM volume groups, file systems with their UUIDs and labels, how
# it boots) and a tar of its files.
#
#   backup.sh ROOT BACKUP_DIR
#
# ROOT is the system's root directory as mounted (/ on the running system,
# or a mount point); every file system mounted at or below it that sits on
# a local block device is recorded and archived. BACKUP_DIR (on another
# disk) receives
#   layout/disks           "INDEX SIZE_BYTES NAME" of each disk under them
#   layout/disk<N>.sfdisk  its partition table (sfdisk --dump)
#   layout/md/<name>.conf  an md array: mdadm --detail --export, plus
#                          MD_MEMBERS="ROLE:DISK:PARTITION ..."
#   layout/lvm/<vg>.vg     vgcfgbackup of a volume group, <vg>.pvs its PVs
#                          ("PV_UUID REF", REF as below)
#   layout/fs              "MOUNTPOINT FSTYPE UUID LABEL REF" per file system
#                          (REF: part:DISK:N, md:NAME or lv:VG/LV; LABEL - for none)
#   layout/boot            BOOT_FIRMWARE=bios|efi, BOOT_DISKS="N ..." (disks
#                          whose first sector holds GRUB's boot code)
#   root.tar               the files (GNU tar, numeric owners, ACLs, xattrs)
# Supports partitions (GPT or MBR), md RAID, LVM, ext2/3/4, swap, vfat.
# Anything else under ROOT (LUKS, btrfs, multipath ...) is refused.
set -euo pipefail
export LC_ALL=C
die() { echo "backup.sh: $*" >&2; exit 1; }
(($# == 2)) || die "usage: backup.sh ROOT BACKUP_DIR"
root=$(cd "$1" && pwd -P) out=$2
[[ -d $out ]] || die "$out: not a directory"
mkdir -p "$out/layout/md" "$out/layout/lvm"
L=$out/layout

declare -A disk_idx=() seen=()
disks=()
# name of a block device (sysfs name: vdb, md127, dm-0, nvme0n1p2)
# kname DEV: sets KNAME, the sysfs name of a device node (by its number:
# without udev, /dev/mapper/* are nodes, not links)
kname() {
  local mm
  mm=$(stat -L -c '%t %T' "$1")
  KNAME=$(basename "$(readlink -f "/sys/dev/block/$((16#${mm% *})):$((16#${mm#* }))")")
}
# The functions below keep their state in these arrays, so they return
# their result in a variable, never through $(...) (a subshell).
# disk_of PART: sets DISK and PARTNO of a partition (sysfs name).
disk_of() {
  local p=$1 d
  d=$(basename "$(dirname "$(readlink -f "/sys/class/block/$p")")")
  if [[ -z ${disk_idx[$d]+x} ]]; then
    disk_idx[$d]=${#disks[@]}
    disks+=("$d")
  fi
  DISK=${disk_idx[$d]} PARTNO=$(cat "/sys/class/block/$p/partition")
}
# ref NAME: sets REF, what a block device (sysfs name) is as restore.sh
# names it, and records the layers below it on the way.
ref() {
  local n=$1
  if [[ -f /sys/class/block/$n/partition ]]; then
    disk_of "$n"
    REF=part:$DISK:$PARTNO
  elif [[ -d /sys/class/block/$n/md ]]; then
    local name members="" m role dev
    name=$(mdadm --detail --export "/dev/$n" | sed -n 's/^MD_DEVNAME=//p')
    [[ -n $name ]] || name=$n
    if [[ -z ${seen[md:$name]+x} ]]; then
      seen[md:$name]=1
      for m in /sys/class/block/"$n"/md/dev-*; do
        dev=${m##*/dev-}
        role=$(cat "$m/slot")
        [[ -f /sys/class/block/$dev/partition ]] || die "md $name: member $dev is not a partition"
        disk_of "$dev"
        members+="$role:$DISK:$PARTNO "
      done
      { mdadm --detail --export "/dev/$n" | grep -E '^MD_(LEVEL|DEVICES|METADATA|UUID|NAME|DEVNAME)='
        echo "MD_MEMBERS='${members% }'"; } >"$L/md/$name.conf"
    fi
    REF=md:$name
  elif [[ $n == dm-* && $(cat "/sys/class/block/$n/dm/uuid") == LVM-* ]]; then
    local vg lv pv uuid pvs=()
    IFS=: read -r vg lv < <(dmsetup splitname --noheadings -c -o vg_name,lv_name "$(cat "/sys/class/block/$n/dm/name")" LVM)
    if [[ -z ${seen[vg:$vg]+x} ]]; then
      seen[vg:$vg]=1
      vgcfgbackup -q -f "$L/lvm/$vg.vg" "$vg" >/dev/null
      mapfile -t pvs < <(pvs --noheadings -o pv_name,pv_uuid -S "vg_name=$vg")
      : >"$L/lvm/$vg.pvs"
      for pv in "${pvs[@]}"; do
        read -r pv uuid <<<"$pv"
        kname "$pv"
        ref "$KNAME"
        echo "$uuid $REF" >>"$L/lvm/$vg.pvs"
      done
    fi
    REF=lv:$vg/$lv
  else
    die "$n: neither a partition, an md array nor an LVM volume (not supported by this example)"
  fi
}

: >"$L/fs"
while read -r target source fstype; do
  [[ $source == /dev/* ]] || continue
  case $fstype in ext2|ext3|ext4|vfat) ;; *) die "$target: $fstype not supported by this example" ;; esac
  uuid=$(blkid -o value -s UUID "$source")
  label=$(blkid -o value -s LABEL "$source" || true)
  rel=${target#"$root"}
  kname "$source"
  ref "$KNAME"
  echo "${rel:-/} $fstype $uuid ${label:--} $REF" >>"$L/fs"
done < <(findmnt -R -n -r -o TARGET,SOURCE,FSTYPE "$root")
[[ -s $L/fs ]] || die "no file system on a block device under $root"
# Swap in use on the same disks (the running system's).
if [[ -r /proc/swaps ]]; then
  while read -r dev type _; do
    [[ $type == partition ]] || continue
    kname "$dev"
    ref "$KNAME"
    echo "- swap $(blkid -o value -s UUID "$dev") - $REF" >>"$L/fs"
  done < <(tail -n +2 /proc/swaps)
fi

: >"$L/disks"
bootdisks=""
for i in "${!disks[@]}"; do
  d=${disks[$i]}
  echo "$i $(($(cat "/sys/class/block/$d/size") * 512)) $d" >>"$L/disks"
  sfdisk --dump "/dev/$d" >"$L/disk$i.sfdisk"
  if head -c 512 "/dev/$d" | grep -aq GRUB; then bootdisks+="$i "; fi
done
{ if [[ -d /sys/firmware/efi ]]; then echo BOOT_FIRMWARE=efi; else echo BOOT_FIRMWARE=bios; fi
  echo "BOOT_DISKS='${bootdisks% }'"; } >"$L/boot"

# The files: each file system of the list, relative to ROOT.
tar --numeric-owner --acls --xattrs --xattrs-include='*' --one-file-system \
  -C "$root" -cpf "$out/root.tar.tmp" $(awk '$1 != "-" { print "." $1 }' "$L/fs" | sed 's|^\./$|.|')
mv "$out/root.tar.tmp" "$out/root.tar"
echo "backup.sh: $(wc -l <"$L/disks") disk(s), $(ls "$L/md" | wc -l) md array(s), $(ls "$L/lvm" | grep -c '\.vg$' || true) volume group(s), $(wc -l <"$L/fs") file system(s); root.tar $(du -m "$out/root.tar" | cut -f1) MiB"
