#!/usr/bin/env bash
# Builds the real-initrd lab: a debootstrapped Debian 12 root with a kernel
# and storage tools, real initrds made by initramfs-tools and dracut (with
# and without systemd, several compressions, with early microcode, generic
# and with baked storage configuration), the kernel, and a marker root disk.
#
# Cached in ${INITRD_REMIX_CACHE:-~/.cache/initrd-remix}/lab-<hash>, where the
# hash covers this script and scripts/lab/: a changed recipe rebuilds, CI on
# the same machine reuses it. A lab is built in a temporary directory and
# renamed when complete, so a half-built lab is never used. Progress goes to
# stderr; the last line of stdout is the lab directory.
#
# The Debian mirror is read from the host's apt configuration (or LAB_MIRROR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${INITRD_REMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix}
hash=$( (cat "$here/lab.sh"; find "$here/lab" -type f -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)
lab="$cache/lab-$hash"
if [[ -f "$lab/lab.env" ]]; then
  ln -sfn "$lab" "$cache/lab-current"
  echo "$lab"
  exit 0
fi

t0=$SECONDS
log() { printf '[lab %4ds] %s\n' $((SECONDS - t0)) "$*" >&2; }

need=()
for tool in debootstrap mke2fs cpio go; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  log "installing host tools: debootstrap e2fsprogs cpio"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap e2fsprogs cpio >/dev/null
fi

mirror=${LAB_MIRROR:-}
if [[ -z "$mirror" ]]; then
  mirror=$(awk '/^URIs:/{u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [[ -z "$mirror" ]]; then
  mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[[ -n "$mirror" ]] || { echo "lab.sh: no bookworm mirror in the apt configuration; set LAB_MIRROR" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/.lab-build-XXXXXX")
root="$work/root"
mounted=()
cleanup() {
  local m
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  if [[ ! -f "$work/lab.env" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

pkgs=(linux-image-amd64 systemd systemd-sysv udev kmod initramfs-tools dracut-core
      lvm2 mdadm cryptsetup cryptsetup-initramfs busybox e2fsprogs
      intel-microcode amd64-microcode iucode-tool zstd xz-utils lz4 bzip2
      parted gdisk fdisk dosfstools xfsprogs btrfs-progs rsync openssh-client
      less vim-tiny iproute2 iputils-ping tar gzip)
log "debootstrap bookworm into $root"
debootstrap --variant=minbase --components=main,non-free-firmware \
  --include="$(IFS=,; echo "${pkgs[*]}")" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
log "debootstrap done"

for m in proc sys dev; do
  mkdir -p "$root/$m"
  case $m in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
  esac
  mounted+=("$root/$m")
done

kver=$(ls "$root/lib/modules" | sort -V | tail -n 1)
[[ -n "$kver" ]] || { echo "lab.sh: no kernel in the root" >&2; exit 1; }
log "kernel $kver"

# Storage configuration an installed system carries; the images bake it in.
source "$here/lab/ids.sh"
cat >"$root/etc/crypttab" <<EOT
cryptdata UUID=$LUKS_UUID none luks,initramfs
EOT
mkdir -p "$root/etc/mdadm"
cat >"$root/etc/mdadm/mdadm.conf" <<EOT
HOMEHOST <system>
ARRAY /dev/md/0 metadata=1.2 UUID=$MD_UUID name=lab:0
EOT
echo "RESUME=UUID=$SWAP_UUID" >"$root/etc/initramfs-tools/conf.d/resume"
sed -i 's/^MODULES=.*/MODULES=most/' "$root/etc/initramfs-tools/initramfs.conf"
echo 'IUCODE_TOOL_INITRAMFS=yes' >>"$root/etc/default/intel-microcode"
echo 'AMD64UCODE_INITRAMFS=yes' >>"$root/etc/default/amd64-microcode"
echo "lab" >"$root/etc/hostname"

mkdir -p "$work/images"
printf 'name\tfamily\tcompression\tmicrocode\tbaked\n' >"$work/images/manifest.tsv"
add_image() { # name family compression baked
  local img="$work/images/$1.img" mc=no
  if [[ $(head -c 6 "$img") == 070701 ]] && cpio -it --quiet <"$img" 2>/dev/null | grep -q '^kernel/x86/microcode/'; then mc=yes; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$mc" "$4" >>"$work/images/manifest.tsv"
  log "built $1 ($(du -h "$img" | cut -f1), microcode=$mc)"
}

for comp in gzip zstd xz lz4; do
  chroot "$root" mkinitramfs -c "$comp" -o "/tmp/itools-$comp.img" "$kver" >"$work/mkinitramfs-$comp.log" 2>&1 \
    || { tail -20 "$work/mkinitramfs-$comp.log" >&2; exit 1; }
  mv "$root/tmp/itools-$comp.img" "$work/images/"
  add_image "itools-$comp" initramfs-tools "$comp" yes
done

baked_args="rd.lvm.lv=vg0/root rd.luks.uuid=$LUKS_UUID rd.md.uuid=$MD_UUID resume=UUID=$SWAP_UUID"
dracut_img() { # name family compression baked dracut-args...
  local name=$1 family=$2 comp=$3 baked=$4
  shift 4
  chroot "$root" dracut --force --quiet --no-hostonly --early-microcode --kver "$kver" \
    --add-drivers "virtio_blk virtio_pci virtio_scsi ext4" --omit "plymouth" "$@" "/tmp/$name.img" \
    >"$work/dracut-$name.log" 2>&1 || { tail -20 "$work/dracut-$name.log" >&2; exit 1; }
  mv "$root/tmp/$name.img" "$work/images/"
  add_image "$name" "$family" "$comp" "$baked"
}
nosd=(--omit "systemd systemd-initrd systemd-networkd dracut-systemd plymouth")
dracut_img dracut-sd-zstd dracut-systemd zstd no --compress zstd
dracut_img dracut-sd-baked-xz dracut-systemd xz yes --compress xz --kernel-cmdline "$baked_args" --install /etc/crypttab
dracut_img dracut-nosd-gzip dracut-shell gzip no --compress gzip "${nosd[@]}"
dracut_img dracut-nosd-baked-lz4 dracut-shell lz4 yes --compress lz4 --kernel-cmdline "$baked_args" --install /etc/crypttab "${nosd[@]}"
dracut_img dracut-nosd-bzip2 dracut-shell bzip2 no --compress bzip2 "${nosd[@]}"
dracut_img dracut-nosd-lzma dracut-shell lzma no --compress lzma "${nosd[@]}"

cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"

log "marker root disk"
mkdir -p "$work/disks" "$work/markerroot"/{sbin,dev,proc,sys,run,tmp,etc,root}
(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -o "$work/markerroot/sbin/init" ./scripts/lab/markerinit)
cat >"$work/markerroot/etc/os-release" <<'EOT'
NAME="initrd-remix marker root"
ID=initrd-remix-marker
EOT
touch "$work/markerroot/etc/fstab"
mke2fs -q -t ext4 -L markerroot -U "$MARKER_UUID" -d "$work/markerroot" "$work/disks/marker-root.ext4" 64M
rm -rf "$work/markerroot"

for m in "${mounted[@]}"; do umount -l "$m"; done
mounted=()
cat >"$work/lab.env" <<EOT
LAB_KVER=$kver
LAB_KERNEL=$lab/vmlinuz
LAB_ROOT=$lab/root
LAB_IMAGES=$lab/images
LAB_MARKER_DISK=$lab/disks/marker-root.ext4
LAB_MARKER=INITRD-REMIX-ROOT-REACHED
LAB_MARKER_UUID=$MARKER_UUID
EOT
rm -rf "$lab"
mv "$work" "$lab"
ln -sfn "$lab" "$cache/lab-current"
log "lab ready at $lab"
echo "$lab"
