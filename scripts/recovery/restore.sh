#!/bin/bash
# restore.sh: the recovery script of the worked example (README, "The whole
# recovery cycle"): run by an initrd-remix rescue image as its --run payload
# on a replacement machine, it rebuilds the system that scripts/recovery/backup.sh
# backed up, on blank disks, with the rescue image's own programs:
#
#   1. finds the backup: the file system labelled recovery-backup (kernel
#      argument recover.backup=LABEL for another), mounted read-only
#   2. picks the target disks: the whole disks that are blank (no partition
#      table, no signature), at least as large as the originals, in name
#      order (nvme0n1 before nvme1n1); it never writes to any other disk;
#      a disk whose SMART health (smartctl -H) is FAILED stops it
#   3. recreates each disk's partition table (sfdisk, the original's
#      partition UUIDs and types), each md array with its UUID, name,
#      metadata and member order, each LVM volume group with its PV and VG
#      UUIDs (pvcreate --uuid --restorefile, vgcfgrestore), and each file
#      system and swap with its UUID and label: fstab, mdadm.conf, the
#      initramfs and grub.cfg of the restored system stay valid as they are
#   4. restores the files (tar) into the file systems, mounted under
#      /mnt/target
#   5. regenerates the restored system's initramfs in a chroot (as ReaR
#      does): the drivers of the new disks' controllers are added to its
#      module list (initramfs-tools: /etc/initramfs-tools/modules; dracut:
#      /etc/dracut.conf.d/), since a host-only initramfs of the old machine
#      lacks them (virtio -> NVMe)
#   6. installs GRUB on the disks it was on (i386-pc, BIOS) with the rescue
#      image's own grub-install and modules (--boot-directory of the target)
#   7. unmounts, deactivates the volume groups, stops the arrays
# Each step prints "RECOVER: <step> ok"; the end "RECOVER-DONE"; a failure
# "RECOVER-FAILED: <step>: ..." and exit 1, with nothing more written.
# Then reboot from the new disks.
set -euo pipefail
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/run/initrd-remix/bin
step=start
fail() { echo "RECOVER-FAILED: $step: $*"; exit 1; }
trap 'rc=$?; ((rc == 0)) || echo "RECOVER-FAILED: $step: exit status $rc"' EXIT
ok() { echo "RECOVER: $step ok${1:+ ($*)}"; }
settle() { udevadm settle --timeout=30 2>/dev/null || sleep 2; }

label=recovery-backup
for a in $(cat /proc/cmdline); do
  case $a in recover.backup=*) label=${a#recover.backup=} ;; esac
done

step="find the backup"
settle
bdev=
for ((n = 0; n < 30; n++)); do
  bdev=$(blkid -L "$label" 2>/dev/null || true)
  [[ -n $bdev ]] && break
  sleep 1
done
[[ -n $bdev ]] || fail "no file system labelled $label"
B=/mnt/backup T=/mnt/target
mkdir -p "$B" "$T"
mount -o ro "$bdev" "$B"
L=$B/layout
[[ -f $L/disks && -f $L/fs && -f $B/root.tar ]] || fail "$bdev holds no backup (layout/, root.tar)"
ok "$bdev: $(wc -l <"$L/disks") disk(s), $(wc -l <"$L/fs") file system(s)"

step="pick the target disks"
bdisk=$(basename "$(dirname "$(readlink -f "/sys/class/block/$(basename "$(readlink -f "$bdev")")")")")
blank=()
for s in /sys/block/*; do
  d=${s##*/}
  case $d in loop*|ram*|md*|dm-*|sr*|zram*|nbd*) continue ;; esac
  [[ $d == "$bdisk" || $d == "$(basename "$(readlink -f "$bdev")")" ]] && continue
  [[ $(cat "$s/ro") == 0 && $(cat "$s/removable") == 0 ]] || continue
  ls "$s" | grep -q "^$d" && continue                   # has partitions
  [[ -z $(blkid -p -o value -s TYPE "/dev/$d" 2>/dev/null; blkid -p -o value -s PTTYPE "/dev/$d" 2>/dev/null) ]] || continue
  blank+=("$d")
done
declare -A tgt=()
while read -r i size name; do
  for j in "${!blank[@]}"; do
    d=${blank[$j]}
    if (($(cat "/sys/block/$d/size") * 512 >= size)); then
      tgt[$i]=$d
      unset 'blank[j]'
      break
    fi
  done
  [[ -n ${tgt[$i]:-} ]] || fail "no blank disk of at least $size bytes for disk $i ($name)"
done <"$L/disks"
part() { local d=${tgt[$1]}; [[ $d == *[0-9] ]] && echo "/dev/${d}p$2" || echo "/dev/$d$2"; }
# dev REF: the device of part:DISK:N, md:NAME, lv:VG/LV
dev() {
  case $1 in
    part:*) IFS=: read -r _ i n <<<"$1"; part "$i" "$n" ;;
    md:*) if [[ -e /dev/md/${1#md:} ]]; then echo "/dev/md/${1#md:}"; else echo "/dev/${1#md:}"; fi ;;
    lv:*) local vg=${1#lv:} lv
      lv=${vg#*/} vg=${vg%%/*}
      if [[ -e /dev/$vg/$lv ]]; then echo "/dev/$vg/$lv"; else echo "/dev/mapper/${vg//-/--}-${lv//-/--}"; fi ;;
  esac
}
# A new disk that already reports failing health is no place to restore to.
health=
for i in $(printf '%s\n' "${!tgt[@]}" | sort -n); do
  h=$(smartctl -H "/dev/${tgt[$i]}" 2>&1 | sed -n 's/.*self-assessment test result: *//p') || true
  [[ $h != FAILED* ]] || fail "/dev/${tgt[$i]}: SMART health $h"
  health+="disk $i -> /dev/${tgt[$i]} (SMART ${h:-unavailable}); "
done
ok "${health%; }"

step="partition"
while read -r i _ name; do
  d=/dev/${tgt[$i]}
  # The original's table with the device names of the new disk.
  sed -e '/^device:/d' -e "s|^/dev/$name\\(p\\{0,1\\}\\)\\([0-9]*\\) *:|$(part "$i" '')\\2 :|" "$L/disk$i.sfdisk" |
    sfdisk --quiet --wipe always "$d"
  blockdev --rereadpt "$d" 2>/dev/null || partprobe "$d" || true
done <"$L/disks"
settle
ok

step="md arrays"
for conf in "$L"/md/*.conf; do
  [[ -e $conf ]] || continue
  ( set -euo pipefail
    # shellcheck disable=SC1090
    . "$conf"
    name=$(basename "$conf" .conf)
    members=()
    for m in $MD_MEMBERS; do
      IFS=: read -r role i n <<<"$m"
      members[role]=$(part "$i" "$n")
    done
    host=; [[ $MD_NAME == *:* ]] && host=${MD_NAME%%:*}
    # The targets were picked blank: no initial resync (every block the
    # restore writes goes to all members; a "check" may later count
    # mismatches in never-written space). Leave out --assume-clean on
    # disks that held data before, to have md resync them.
    mdadm --create "/dev/md/$name" --run --assume-clean --metadata="$MD_METADATA" --level="$MD_LEVEL" \
      --raid-devices="$MD_DEVICES" --uuid="$MD_UUID" ${host:+--homehost="$host"} --name="${MD_NAME#*:}" "${members[@]}"
  ) || fail "mdadm --create from $conf"
done
settle
ok "$(grep -c '^md' /proc/mdstat) array(s)"

step="LVM volume groups"
for vgf in "$L"/lvm/*.vg; do
  [[ -e $vgf ]] || continue
  vg=$(basename "$vgf" .vg)
  while read -r uuid ref; do
    lvm pvcreate -ff -y --uuid "$uuid" --restorefile "$vgf" "$(dev "$ref")"
  done <"$L/lvm/$vg.pvs"
  lvm vgcfgrestore -f "$vgf" "$vg"
  lvm vgchange -ay "$vg"
done
settle
ok

step="file systems"
while read -r mnt type uuid lab ref; do
  d=$(dev "$ref")
  [[ -b $d ]] || fail "$d ($ref) is not a block device"
  l=(); [[ $lab == - ]] || l=(-L "$lab")
  case $type in
    ext2|ext3|ext4) mke2fs -q -F -t "$type" -U "$uuid" "${l[@]}" "$d" ;;
    swap) mkswap -U "$uuid" "${l[@]}" "$d" >/dev/null ;;
    vfat) mkfs.vfat -i "${uuid//-/}" ${l:+-n "$lab"} "$d" >/dev/null ;;
    *) fail "$type: not supported" ;;
  esac
done <"$L/fs"
ok

step="restore the files"
# Mount points shallow first, then unpack.
awk '$1 != "-" { print length($1), $0 }' "$L/fs" | sort -n | cut -d' ' -f2- |
while read -r mnt type uuid _ ref; do
  mkdir -p "$T$mnt"
  mount -t "$type" "$(dev "$ref")" "$T$mnt"
done
tar --numeric-owner --acls --xattrs --xattrs-include='*' -C "$T" -xpf "$B/root.tar"
sync
ok "$(du -sm "$T" | cut -f1) MiB"

step="regenerate the initramfs"
for m in proc sys dev run; do mount --bind "/$m" "$T/$m"; done
# The drivers of the new disks' controllers, from sysfs.
drivers=()
for i in "${!tgt[@]}"; do
  p=$(readlink -f "/sys/block/${tgt[$i]}/device")
  while [[ $p == /sys/devices/* ]]; do
    [[ -e $p/driver/module ]] && drivers+=("$(basename "$(readlink -f "$p/driver/module")")")
    p=${p%/*}
  done
done
mapfile -t drivers < <(printf '%s\n' "${drivers[@]}" | sort -u)
kvers=$(ls "$T/lib/modules")
if [[ -x $T/usr/sbin/update-initramfs ]]; then
  for m in "${drivers[@]}"; do
    grep -qx "$m" "$T/etc/initramfs-tools/modules" 2>/dev/null || echo "$m" >>"$T/etc/initramfs-tools/modules"
  done
  chroot "$T" update-initramfs -u -k all
elif [[ -x $T/usr/bin/dracut || -x $T/usr/sbin/dracut ]]; then
  echo "add_drivers+=\" ${drivers[*]} \"" >"$T/etc/dracut.conf.d/90-recover.conf"
  chroot "$T" dracut --regenerate-all --force
else
  fail "no initramfs generator in the restored system"
fi
ok "drivers ${drivers[*]}; kernels $kvers"

step="install the boot loader"
# shellcheck disable=SC1091
. "$L/boot"
[[ $BOOT_FIRMWARE == bios ]] || fail "$BOOT_FIRMWARE: only BIOS (i386-pc) is done by this example"
for i in $BOOT_DISKS; do
  grub-install --target=i386-pc --boot-directory="$T/boot" "/dev/${tgt[$i]}"
done
ok "GRUB on$(for i in $BOOT_DISKS; do printf ' /dev/%s' "${tgt[$i]}"; done)"

step="finish"
for m in run dev sys proc; do umount "$T/$m"; done
awk '$1 != "-" { print length($1), $1 }' "$L/fs" | sort -rn | cut -d' ' -f2- | while read -r mnt; do umount "$T$mnt"; done
for vgf in "$L"/lvm/*.vg; do [[ -e $vgf ]] && lvm vgchange -an "$(basename "$vgf" .vg)"; done
for conf in "$L"/md/*.conf; do [[ -e $conf ]] && mdadm --stop "$(dev "md:$(basename "$conf" .conf)")"; done
umount "$B"
sync
ok
echo "RECOVER-DONE: reboot from the new disks"
