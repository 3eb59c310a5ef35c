#!/usr/bin/env bash
# mkosi-initrd.sh: builds a generic systemd initrd with Debian's own
# mkosi-initrd for the lab's Debian 13 (trixie) kernel, and prints its
# directory as the last line of stdout.
#
#   mkosi-initrd.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# A copy of the lab's trixie root (releases/trixie/root) becomes a chroot;
# apt-get installs trixie's mkosi there from deb.debian.org, and
# mkosi-initrd --kernel-version $LAB_KVER builds the image from Debian's
# packages, as kernel-install's initrd_generator=mkosi-initrd would on that
# system: systemd, udev, lvm2 and the default module set of mkosi-initrd
# (virtio, ahci, dm, md, ...) from the root's /usr/lib/modules/$LAB_KVER, with
# its firmware. mkosi's sandbox needs / to be a mount point and mounts of its
# own, so the chroot runs in a private mount namespace (unshare -m) with its
# root bound on itself and /proc, /sys, /dev bound in. mkosi-initrd also adds
# the modules the building machine has loaded ("host"): /proc/modules is
# hidden so that the image does not depend on the machine that built it.
# Package versions are trixie's at build time; SOURCE_DATE_EPOCH is the lab
# kernel's mtime.
#
# Outputs: mkosi.img (zstd cpio, as mkosi writes it), mkosi.env (image,
# kernel, KVER, mkosi and systemd versions, build time), mkosi.log.
# The lab directory is only read.
#
# Cached as ~/.cache/initrd-remix/mkosi-<hash of this script and the lab>;
# built in a temporary directory and renamed when complete; concurrent runs
# wait on a lock. Needs: root, network access to deb.debian.org, cp, chroot,
# unshare, flock (coreutils, util-linux).
set -euo pipefail

lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "mkosi-initrd.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
lab=$(cd "$lab" && pwd -P)
rel=$lab/releases/trixie
[[ -f $rel/lab.env ]] || { echo "mkosi-initrd.sh: the lab $lab has no trixie release ($rel/lab.env)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$rel/lab.env"
[[ $(id -u) == 0 ]] || { echo "mkosi-initrd.sh: must run as root (chroot, mounts)" >&2; exit 1; }
for tool in unshare chroot flock; do
  command -v "$tool" >/dev/null || { echo "mkosi-initrd.sh: $tool not found" >&2; exit 1; }
done
[[ -d $LAB_ROOT/usr/lib/modules/$LAB_KVER ]] || { echo "mkosi-initrd.sh: $LAB_ROOT has no modules for $LAB_KVER" >&2; exit 1; }
log() { echo "mkosi-initrd.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$(dirname "$0")/lib/stage.sh"
stage_begin mkosi mkosi.env "$lab"
hash=$stage_hash dir=$stage_dir work=$stage_work t0=$stage_t0

log "copying the trixie root"
cp -a "$LAB_ROOT" "$work/root"
cp -L /etc/resolv.conf "$work/root/etc/resolv.conf"
mkdir -p "$work/root/out"
epoch=$(stat -c %Y "$LAB_KERNEL")

# Runs inside the private mount namespace: nothing it mounts outlives it.
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
r=$1 kver=$2 epoch=$3
mount --bind "$r" "$r"
mount --make-rprivate "$r"
for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
[[ -e $r/proc/modules ]] && mount --bind /dev/null "$r/proc/modules"
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$epoch" KVER="$kver" /bin/sh -euc '
apt-get update -qq
apt-get install -y -qq --no-install-recommends mkosi >/dev/null
mkosi --version >/out/mkosi-version
dpkg-query -W -f="\${Version}\n" systemd >/out/systemd-version
mkosi-initrd --kernel-version "$KVER" --output-dir /out --output mkosi.img
'
INNER
log "installing mkosi in the chroot and running mkosi-initrd (log: mkosi.log)"
if ! unshare --mount --propagation private bash "$work/inner.sh" "$work/root" "$LAB_KVER" "$epoch" >"$work/mkosi.log" 2>&1; then
  tail -n 40 "$work/mkosi.log" >&2
  log "mkosi-initrd failed"
  exit 1
fi
mkdir "$work/out"
mv "$work/root/out/mkosi.img" "$work/out/mkosi.img"
mv "$work/mkosi.log" "$work/out/mkosi.log"
mkosi_version=$(cat "$work/root/out/mkosi-version")
systemd_version=$(cat "$work/root/out/systemd-version")
cat >"$work/out/mkosi.env" <<ENV
# initrd-remix mkosi-initrd image $hash for ${lab##*/}, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
MKOSI_IMAGE=$dir/mkosi.img
MKOSI_KERNEL=$LAB_KERNEL
MKOSI_KVER=$LAB_KVER
MKOSI_LAB=$rel
MKOSI_VERSION="$mkosi_version"
MKOSI_SYSTEMD_VERSION=$systemd_version
MKOSI_SOURCE_DATE_EPOCH=$epoch
ENV
stage_commit out
