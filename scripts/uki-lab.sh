#!/usr/bin/env bash
# uki-lab.sh: builds unified kernel images (UKIs) from the lab's Debian 13
# (trixie) kernel and initrds with Debian's own ukify, and prints its
# directory as the last line of stdout.
#
#   uki-lab.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# A copy of the lab's trixie root (releases/trixie/root) becomes a chroot;
# apt-get installs trixie's systemd-ukify, systemd-boot-efi (systemd-stub
# and systemd-boot), sbsigntool, openssl and tpm2-tools (the TPM libraries
# systemd-measure needs) there from deb.debian.org. In
# it, `ukify build` joins the lab's trixie kernel with each of two initrds
# (initramfs-tools, and dracut with systemd) into a UKI whose command line
# boots the lab's marker root (console on ttyS0), with the root's
# os-release and the kernel's uname. The initramfs-tools one is made the
# way a distribution ships one: with a signed PCR 11 policy (.pcrsig and
# .pcrpkey, by systemd-measure, key made with openssl) and a Secure Boot
# signature (sbsign, with a db key and certificate made with openssl); the
# dracut one as a machine's kernel-install makes one, unsigned.
#
# Outputs: itools.efi, dracut-sd.efi, db.key, db.crt, pcr.pub, uki.env (paths,
# versions, the command line), uki.log, and root/ (the chroot, kept: the
# tests run its ukify, sbverify, bootctl and kernel-install in it, and copy
# its systemd-bootx64.efi onto an ESP). The lab directory is only read.
#
# Cached as ~/.cache/initrd-remix/uki-<hash of this script and the lab>;
# built in a temporary directory and renamed when complete; concurrent runs
# wait on a lock. Needs: root, network access to deb.debian.org, cp, chroot,
# unshare, flock (coreutils, util-linux).
set -euo pipefail

lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "uki-lab.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
lab=$(cd "$lab" && pwd -P)
rel=$lab/releases/trixie
[[ -f $rel/lab.env ]] || { echo "uki-lab.sh: the lab $lab has no trixie release ($rel/lab.env)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$rel/lab.env"
[[ $(id -u) == 0 ]] || { echo "uki-lab.sh: must run as root (chroot, mounts)" >&2; exit 1; }
for tool in unshare chroot flock; do
  command -v "$tool" >/dev/null || { echo "uki-lab.sh: $tool not found" >&2; exit 1; }
done
for img in itools-zstd dracut-sd-zstd; do
  [[ -f $LAB_IMAGES/$img.img ]] || { echo "uki-lab.sh: $LAB_IMAGES has no $img.img" >&2; exit 1; }
done
log() { echo "uki-lab.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$(dirname "$0")/lib/stage.sh"
stage_begin uki uki.env "$lab"
hash=$stage_hash dir=$stage_dir work=$stage_work t0=$stage_t0

# The marker root, as the lab's boot tests find it (the disk is virtio-blk).
cmdline="console=ttyS0 root=/dev/vda rw"

log "copying the trixie root"
mkdir "$work/out"
cp -a "$LAB_ROOT" "$work/out/root"
r=$work/out/root
cp -L /etc/resolv.conf "$r/etc/resolv.conf"
mkdir -p "$r/in" "$r/out"
cp "$LAB_KERNEL" "$r/in/vmlinuz"
cp "$LAB_IMAGES/itools-zstd.img" "$r/in/itools.img"
cp "$LAB_IMAGES/dracut-sd-zstd.img" "$r/in/dracut-sd.img"
epoch=$(stat -c %Y "$LAB_KERNEL")

# Runs inside the private mount namespace: nothing it mounts outlives it.
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
r=$1 kver=$2 epoch=$3 cmdline=$4
for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$epoch" KVER="$kver" CMDLINE="$cmdline" /bin/sh -euc '
apt-get update -qq
apt-get install -y -qq --no-install-recommends systemd-ukify systemd-boot-efi sbsigntool openssl tpm2-tools >/dev/null
apt-get clean
dpkg-query -W -f="\${Version}\n" systemd-ukify >/out/ukify-version
openssl req -new -x509 -newkey rsa:2048 -nodes -subj "/CN=initrd-remix lab db/" -days 3650 \
  -keyout /out/db.key -out /out/db.crt 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out /out/pcr.key 2>/dev/null
openssl pkey -in /out/pcr.key -pubout -out /out/pcr.pub
# As a distribution ships it: a TPM PCR 11 policy signature (.pcrsig,
# .pcrpkey, by systemd-measure) and a Secure Boot signature.
ukify build --linux /in/vmlinuz --initrd /in/itools.img --cmdline "$CMDLINE" \
  --os-release @/etc/os-release --uname "$KVER" \
  --pcr-private-key /out/pcr.key --pcr-public-key /out/pcr.pub \
  --signtool sbsign --secureboot-private-key /out/db.key --secureboot-certificate /out/db.crt \
  --output /out/itools.efi
# As kernel-install with layout=uki makes it on a machine: unsigned.
ukify build --linux /in/vmlinuz --initrd /in/dracut-sd.img --cmdline "$CMDLINE" \
  --os-release @/etc/os-release --uname "$KVER" --output /out/dracut-sd.efi
rm -rf /in
'
INNER
log "installing ukify and systemd-boot in the chroot and building the UKIs (log: uki.log)"
if ! unshare --mount --propagation private bash "$work/inner.sh" "$r" "$LAB_KVER" "$epoch" "$cmdline" >"$work/uki.log" 2>&1; then
  tail -n 40 "$work/uki.log" >&2
  log "building the UKIs failed"
  exit 1
fi
for f in itools.efi dracut-sd.efi db.key db.crt pcr.pub; do
  mv "$r/out/$f" "$work/out/$f"
done
ukify_version=$(cat "$r/out/ukify-version")
rm -rf "$r/out"
mv "$work/uki.log" "$work/out/uki.log"
cat >"$work/out/uki.env" <<ENV
# initrd-remix UKI lab $hash for ${lab##*/}, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
UKI_DIR=$dir
UKI_ROOT=$dir/root
UKI_ITOOLS=$dir/itools.efi
UKI_DRACUT_SD=$dir/dracut-sd.efi
UKI_KEY=$dir/db.key
UKI_CERT=$dir/db.crt
UKI_KVER=$LAB_KVER
UKI_CMDLINE="$cmdline"
UKI_UKIFY_VERSION=$ukify_version
UKI_LAB=$rel
ENV
stage_commit out
