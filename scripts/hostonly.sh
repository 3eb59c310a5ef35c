#!/usr/bin/env bash
# hostonly.sh: builds host-only initrds of the lab's Debian 12 kernel, one per
# generator family, each holding the drivers of one kind of machine (a
# virtio VM) and none of the others, and prints their directory as the last
# line of stdout.
#
#   hostonly.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# Images (zstd), made by the root's own generators in a chroot of the lab's
# root (releases: the main lab, Debian 12):
#   itools-list.img        initramfs-tools, MODULES=list with
#                          /etc/initramfs-tools/modules naming the drivers
#   dracut-sd-list.img     dracut with systemd, --drivers naming the drivers
#   dracut-nosd-list.img   dracut without systemd, the same
# The drivers: virtio_pci, virtio_blk (the disk) and ext4 (the root), with
# their dependencies. This is the module set of a host-only image made on a
# virtio VM, made deterministic: MODULES=dep and dracut --hostonly read the
# building machine's /sys, /proc/modules and mounts, which in a chroot are
# the host's. So initramfs-tools takes MODULES=list, and dracut takes
# --no-hostonly --drivers LIST (which replaces 90kernel-modules' generic
# set) and omits the dracut modules that add drivers after looking at the
# building machine (qemu, qemu-net, virtfs, virtiofs: is_qemu_virtualized;
# nvmf); /proc/modules is hidden. Other modules' own drivers (dm, md, crypto)
# stay, as in any host-only image of a machine with that storage stack.
# Each image is then checked: it must hold virtio_blk, virtio_pci and ext4
# (unless built in), and none of the drivers of other hardware: nvme, ahci,
# megaraid_sas, mptsas, virtio_scsi, usb-storage, uas, xhci-pci, e1000e
# (the check fails the build; one built into the kernel cannot be left out
# and is listed in HOSTONLY_BUILTIN instead).
#
# The lab's root is never written: the chroot is an overlay mount (the lab
# root its lower layer) in a private mount namespace (unshare -m), with
# /proc, /sys and /dev bound in. SOURCE_DATE_EPOCH is the lab kernel's mtime
# (dracut --reproducible).
#
# Outputs: the images, <name>.modules (the kernel modules each holds, one
# name a line, sorted), hostonly.env (images, kernel, KVER, marker root
# UUID, drivers kept and left out), logs/.
#
# Cached as ~/.cache/initrd-remix/hostonly-<hash of this script and the lab>
# (scripts/lib/stage.sh: built in a temporary directory and renamed when
# complete; concurrent runs wait on a lock). Needs: root, unshare, chroot,
# mount (overlay), flock.
set -euo pipefail
# The whole script is one brace group: bash parses it completely before
# running it, so editing this file during a build cannot derail the build.
{
here=$(cd "$(dirname "$0")" && pwd)
lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "hostonly.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
# The real directory: its name carries the hash of the lab recipe.
lab=$(cd "$lab" && pwd -P)
# shellcheck disable=SC1091
source "$lab/lab.env"
log() { echo "hostonly.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$here/lib/stage.sh"
stage_begin hostonly hostonly.env "$lab"
dir=$stage_dir work=$stage_work t0=$stage_t0
[[ $(id -u) == 0 ]] || { echo "hostonly.sh: must run as root (chroot, mounts)" >&2; exit 1; }
for tool in unshare chroot mount; do
  command -v "$tool" >/dev/null || { echo "hostonly.sh: $tool not found" >&2; exit 1; }
done
[[ -d $LAB_ROOT/lib/modules/$LAB_KVER ]] || { echo "hostonly.sh: $LAB_ROOT has no modules for $LAB_KVER" >&2; exit 1; }
mkdir -p "$work/upper" "$work/ovl" "$work/root" "$work/out/logs"
epoch=$(stat -c %Y "$LAB_KERNEL")

# The machine's drivers, and those of the hardware it does not have.
keep="virtio_pci virtio_blk ext4"
others="nvme ahci megaraid_sas mptsas virtio_scsi usb_storage uas xhci_pci e1000e"

# Runs inside the private mount namespace: nothing it mounts outlives it.
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
lower=$1 w=$2 kver=$3 epoch=$4 keep=$5
r=$w/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$w/upper,workdir=$w/ovl" "$r"
mount --make-rprivate "$r"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --bind /dev "$r/dev"
# The building machine's loaded modules must not count (a kernel without
# modules has no /proc/modules).
[[ ! -e $r/proc/modules ]] || mount --bind /dev/null "$r/proc/modules"
mkdir -p "$r/out"
mount --bind "$w/out" "$r/out"
in_root() {
  chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root \
    SOURCE_DATE_EPOCH="$epoch" "$@"
}
# initramfs-tools: MODULES=list, the drivers in /etc/initramfs-tools/modules.
sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
grep -qx 'MODULES=list' "$r/etc/initramfs-tools/initramfs.conf"
printf '%s\n' $keep >"$r/etc/initramfs-tools/modules"
echo "== itools-list" >&2
in_root mkinitramfs -c zstd -o /out/itools-list.img "$kver" >"$w/out/logs/itools-list.log" 2>&1 ||
  { tail -n 30 "$w/out/logs/itools-list.log" >&2; exit 1; }
# dracut: no host detection, the drivers named.
dracut=(dracut --force --reproducible --no-hostonly --kver "$kver" --zstd --drivers "$keep"
        --omit "qemu qemu-net virtfs virtiofs nvmf")
nosd=(--omit "systemd systemd-initrd systemd-networkd dracut-systemd")
echo "== dracut-sd-list" >&2
in_root "${dracut[@]}" /out/dracut-sd-list.img >"$w/out/logs/dracut-sd-list.log" 2>&1 ||
  { tail -n 30 "$w/out/logs/dracut-sd-list.log" >&2; exit 1; }
echo "== dracut-nosd-list" >&2
in_root "${dracut[@]}" "${nosd[@]}" /out/dracut-nosd-list.img >"$w/out/logs/dracut-nosd-list.log" 2>&1 ||
  { tail -n 30 "$w/out/logs/dracut-nosd-list.log" >&2; exit 1; }
for name in itools-list dracut-sd-list dracut-nosd-list; do
  in_root lsinitramfs "/out/$name.img" >"$w/out/$name.list"
done
INNER
log "generating itools-list, dracut-sd-list and dracut-nosd-list in an overlay of $LAB_ROOT"
if ! unshare --mount --propagation private bash "$work/inner.sh" "$LAB_ROOT" "$work" "$LAB_KVER" "$epoch" "$keep" 2>"$work/out/logs/inner.log"; then
  cat "$work/out/logs/inner.log" >&2
  log "a generator failed"
  exit 1
fi

# The check: the machine's drivers are in, the others' are out.
builtin=()
for m in $keep $others; do
  sed 's,.*/,,; s/\.ko$//; s/-/_/g' "$LAB_ROOT/lib/modules/$LAB_KVER/modules.builtin" | grep -qx "$m" && builtin+=("$m")
done
for name in itools-list dracut-sd-list dracut-nosd-list; do
  grep -E '\.ko(\.(xz|zst|gz))?$' "$work/out/$name.list" | sed -E 's,.*/,,; s/\.ko(\.(xz|zst|gz))?$//; s/-/_/g' |
    sort -u >"$work/out/$name.modules"
  rm "$work/out/$name.list"
  n=$(wc -l <"$work/out/$name.modules")
  for m in $keep; do
    grep -qx "$m" "$work/out/$name.modules" || [[ " ${builtin[*]} " == *" $m "* ]] ||
      { log "$name: holds no $m ($n modules)"; exit 1; }
  done
  for m in $others; do
    if grep -qx "$m" "$work/out/$name.modules"; then
      log "$name: holds $m, a driver of other hardware"
      exit 1
    fi
  done
  log "$name: $n modules, $(du -k "$work/out/$name.img" | cut -f1) KiB; has $keep; none of $others"
done
chmod 0644 "$work"/out/*.img

cat >"$work/out/hostonly.env" <<ENV
# initrd-remix host-only images $stage_hash for ${lab##*/}, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
HOSTONLY_DIR=$dir
HOSTONLY_IMAGES="itools-list:initramfs-tools dracut-sd-list:dracut-systemd dracut-nosd-list:dracut-shell"
HOSTONLY_KERNEL=$LAB_KERNEL
HOSTONLY_KVER=$LAB_KVER
HOSTONLY_LAB=$lab
HOSTONLY_ROOT_UUID=$LAB_MARKER_UUID
HOSTONLY_DRIVERS="$keep"
HOSTONLY_ABSENT="$others"
HOSTONLY_BUILTIN="${builtin[*]}"
HOSTONLY_SOURCE_DATE_EPOCH=$epoch
ENV
stage_commit out
exit 0
}
