#!/usr/bin/env bash
# lab.sh: builds the real-initrd lab, a directory holding
#   root/              Debian 12 (bookworm, amd64) made by debootstrap: kernel,
#                      systemd, initramfs-tools, dracut-core, storage and
#                      recovery tools, microcode, and baked storage config
#                      (/etc/crypttab, /etc/mdadm/mdadm.conf, conf.d/resume)
#   images/*.img       initrds of that kernel made by the real generators in
#                      the root: initramfs-tools (gzip, zstd, xz, lz4), dracut
#                      with systemd and dracut without systemd (generic and
#                      with baked kernel arguments; gzip, zstd, xz, lz4,
#                      bzip2, lzma), with early microcode
#   images/manifest.tsv  name, family, compression, microcode, baked (the
#                      compression and microcode columns are measured)
#   images/boot-args.tsv name and the kernel arguments that boot the image to
#                      the marker root (after console=ttyS0 panic=-1);
#                      scripts/lab/boot-all.sh boots every image with them
#   images/<name>.list   lsinitramfs of each image; <name>.lsinitrd for dracut
#   vmlinuz            the root's kernel
#   disks/marker-root.ext4  an ext4 root whose /sbin/init (static busybox)
#                      prints $LAB_MARKER and powers off
#   logs/              the generators' output
#   lab.env            LAB_KVER, LAB_KERNEL, LAB_ROOT, LAB_IMAGES,
#                      LAB_MARKER_DISK, LAB_MARKER, the fixed storage UUIDs
#
# The lab lives in ${INITRD_REMIX_CACHE:-${XDG_CACHE_HOME:-~/.cache}/initrd-remix}
# as lab-<hash>, the hash being the first 12 hex digits of a sha256 over this
# script and every file under scripts/lab/: a changed recipe builds a new lab,
# an unchanged one is reused at once. It is built in a temporary directory
# beside it and renamed when complete, so a half-built lab is never used;
# lab-current is a symlink to the newest one. Progress goes to stderr; the last
# line of stdout is the lab directory. Needs root (debootstrap, chroot, mounts),
# the network to a Debian mirror and ~3 GB of disk; debootstrap, mkinitramfs
# and dracut are CPU-bound: 10-20 minutes on an otherwise idle 2-CPU machine,
# far longer when the CPUs are shared. Each step is logged with its time.
#
# Environment:
#   LAB_MIRROR       Debian mirror URI; default: the host's apt source for
#                    bookworm (/etc/apt/sources.list.d/*.sources, sources.list)
#   LAB_JOBS         generators run at once (default: CPUs, at most 4)
#   LAB_KEEP_FAILED  keep a failed build's directory (removed by the next run)
#   LAB_PRUNE=1      remove older lab-* directories after a successful build
# Downloaded packages are kept in <cache>/debs for the next build.
set -euo pipefail
# The whole script is one brace group: bash parses it completely before
# running it, so editing this file during a build cannot derail the build.
{
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lab/lib.sh"
# shellcheck source=lab/ids.sh
. "$here/lab/ids.sh"

cache=${INITRD_REMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix}
recipe_hash() {
  local f
  (
    cd "$here"
    { echo lab.sh; find lab -type f | sort; } | while IFS= read -r f; do
      printf '%s\n' "$f"
      sha256sum <"$f"
    done
  ) | sha256sum | cut -c1-12
}
hash=$(recipe_hash)
lab=$cache/lab-$hash

publish() { # point lab-current at this lab, atomically
  ln -sfn "lab-$hash" "$cache/.lab-current.$$"
  mv -T "$cache/.lab-current.$$" "$cache/lab-current"
}
if [[ -f $lab/lab.env ]]; then
  publish
  echo "$lab"
  exit 0
fi

t0=$SECONDS
log() { printf '[lab %4ds] %s\n' $((SECONDS - t0)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
step_name= step_t=0
step() { # step NAME: ends the previous step (with its time), starts NAME
  if [[ -n $step_name ]]; then log "done: $step_name ($((SECONDS - step_t)) s)"; fi
  step_name=$1 step_t=$SECONDS
  [[ -z $step_name ]] || log "step: $step_name"
}

((EUID == 0)) || die "must run as root (debootstrap, chroot and mounts need it)"
mkdir -p "$cache"

# One builder per recipe: a second caller waits, then reuses the result.
exec 9>"$cache/.lock-$hash"
if ! flock -n 9; then
  log "another build of lab-$hash is running; waiting for it"
  flock 9
fi
if [[ -f $lab/lab.env ]]; then
  publish
  echo "$lab"
  exit 0
fi

# unmount_under DIR: unmounts everything mounted below DIR, deepest first.
unmount_under() {
  local m
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
# remove_tree DIR: removes a build directory, never crossing into a mount.
remove_tree() {
  [[ -e $1 ]] || return 0
  unmount_under "$1"
  rm -rf --one-file-system "$1"
}

# Leftovers of interrupted builds: a .build-<hash>-* directory whose lock is
# free has no builder any more.
for d in "$cache"/.build-*; do
  [[ -d $d ]] || continue
  h=${d#"$cache"/.build-}
  h=${h%%-*}
  if [[ $h == "$hash" ]]; then
    remove_tree "$d"
  elif (exec 8>"$cache/.lock-$h" && flock -n 8); then
    log "removing the leftover $d"
    remove_tree "$d"
  fi
done
[[ ! -e $lab ]] || remove_tree "$lab" # incomplete: no lab.env

work=$(mktemp -d "$cache/.build-$hash-XXXXXX")
chmod 755 "$work"
root=$work/root
declare -A job_name=() job_start=()
cleanup() {
  local rc=$? pid
  for pid in ${fg_pid:-} "${!job_name[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in ${fg_pid:-} "${!job_name[@]}"; do wait "$pid" 2>/dev/null || true; done
  unmount_under "$work"
  if [[ -d $work ]]; then
    if ((rc != 0)) && [[ -n ${LAB_KEEP_FAILED:-} ]]; then
      log "kept the failed build in $work (LAB_KEEP_FAILED)"
    else
      rm -rf --one-file-system "$work"
    fi
  fi
  ((rc == 0)) || log "FAILED after $((SECONDS - t0)) s (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
mkdir -p "$work/logs" "$work/images" "$work/disks"

# run_logged LOGNAME CMD...: runs CMD with its output in logs/LOGNAME.log,
# showing the end of it when it fails.
# The command runs in its own session in the background, so that a signal
# reaches the script at once and the cleanup can stop the command's group.
fg_pid=
run_logged() {
  local name=$1 rc=0
  shift
  setsid "$@" </dev/null >"$work/logs/$name.log" 2>&1 &
  fg_pid=$!
  wait "$fg_pid" || rc=$?
  fg_pid=
  if ((rc != 0)); then
    tail -n 40 "$work/logs/$name.log" >&2
    die "$name failed with exit $rc (end of log above, full log in $work/logs/$name.log)"
  fi
}

step "host tools"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v findmnt >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  log "installing on the host: ${need[*]}"
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
mirror=${LAB_MIRROR:-$(apt_mirror)}
[[ -n $mirror ]] || die "no bookworm source in the host's apt configuration; set LAB_MIRROR"
log "mirror: $mirror"

# The marker root runs a static busybox. busybox-static conflicts with the
# host's busybox package, so it is downloaded and unpacked, not installed.
debs=$cache/debs
mkdir -p "$debs/host"
bbdeb=$(find "$debs/host" -name 'busybox-static_*.deb' | sort -V | tail -n 1)
if [[ -z $bbdeb ]]; then
  (cd "$debs/host" && apt-get download -q -o APT::Sandbox::User=root busybox-static >&2) ||
    { apt-get update -q >&2 && (cd "$debs/host" && apt-get download -q -o APT::Sandbox::User=root busybox-static >&2); } ||
    die "cannot download busybox-static"
  bbdeb=$(find "$debs/host" -name 'busybox-static_*.deb' | sort -V | tail -n 1)
fi
mkdir -p "$work/bb"
dpkg-deb -x "$bbdeb" "$work/bb"
busybox=$(find "$work/bb" -type f -path '*/bin/busybox' | head -n 1)
[[ -n $busybox ]] && "$busybox" true || die "no usable busybox in $bbdeb"

step "debootstrap bookworm (root/)"
pkgs=(linux-image-amd64 systemd systemd-sysv udev kmod initramfs-tools dracut-core
      lvm2 mdadm cryptsetup cryptsetup-initramfs busybox e2fsprogs
      intel-microcode iucode-tool amd64-microcode zstd xz-utils lz4 bzip2 cpio
      parted gdisk fdisk dosfstools xfsprogs btrfs-progs rsync openssh-client
      less vim-tiny iproute2 iputils-ping tar gzip grub2-common)
mkdir -p "$debs/debootstrap"
# Speed, not content: dpkg skips its fsync calls while the root is made, and
# the kernel's postinst skips update-initramfs (INITRD=No); the initramfs-tools
# images are built below, once the storage configuration is in place.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/lab-unsafe-io"
INITRD=No run_logged debootstrap debootstrap --variant=minbase --arch=amd64 \
  --components=main,non-free-firmware --cache-dir="$debs/debootstrap" \
  --include="$(IFS=,; echo "${pkgs[*]}")" bookworm "$root" "$mirror"
rm -f "$root/etc/dpkg/dpkg.cfg.d/lab-unsafe-io"

step "chroot mounts and storage configuration"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root "$@"; }

kver=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[[ -n $kver && -f $root/boot/vmlinuz-$kver ]] || die "no kernel in the root"
log "kernel $kver"

# What an installed system with LUKS, md RAID, swap and an ext4 root carries.
cat >"$root/etc/crypttab" <<EOF
# <target name> <source device> <key file> <options>
cryptdata UUID=$LUKS_UUID none luks,initramfs
EOF
mkdir -p "$root/etc/mdadm"
cat >"$root/etc/mdadm/mdadm.conf" <<EOF
HOMEHOST <system>
MAILADDR root
ARRAY /dev/md/0 metadata=1.2 UUID=$MD_UUID name=lab:0
EOF
echo "RESUME=UUID=$SWAP_UUID" >"$root/etc/initramfs-tools/conf.d/resume"
cat >"$root/etc/fstab" <<EOF
UUID=$MARKER_UUID / ext4 errors=remount-ro 0 1
EOF
sed -i 's/^MODULES=.*/MODULES=most/' "$root/etc/initramfs-tools/initramfs.conf"
grep -qx 'MODULES=most' "$root/etc/initramfs-tools/initramfs.conf" || die "MODULES=most not set"
# In a chroot the microcode hooks cannot tell the CPU: include all of it.
echo 'IUCODE_TOOL_INITRAMFS=yes' >>"$root/etc/default/intel-microcode"
echo 'AMD64UCODE_INITRAMFS=yes' >>"$root/etc/default/amd64-microcode"
echo lab >"$root/etc/hostname"

mkdir -p "$root/lab-images"
printf 'name\tfamily\tcompression\tmicrocode\tbaked\n' >"$work/images/manifest.tsv"
# image_done NAME FAMILY COMPRESSION BAKED: measures and records an image.
image_done() {
  local name=$1 family=$2 comp=$3 baked=$4 img="$root/lab-images/$1.img" info mc seg
  [[ -s $img ]] || die "$name: the generator wrote no image"
  info=$(first_segment_info "$img")
  mc=${info% *} seg=${info#* }
  [[ $seg == "$comp" ]] || die "$name: main segment is $seg, expected $comp"
  in_root lsinitramfs "/lab-images/$name.img" >"$work/images/$name.list" 2>"$work/logs/$name.lsinitramfs.log" ||
    die "$name: lsinitramfs failed"
  grep -qx 'init' "$work/images/$name.list" || die "$name: no /init in lsinitramfs"
  if [[ $family == dracut-* ]]; then
    in_root lsinitrd "/lab-images/$name.img" >"$work/images/$name.lsinitrd" 2>&1 || die "$name: lsinitrd failed"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$family" "$seg" "$([[ $mc == - ]] && echo no || echo yes)" "$baked" \
    >>"$work/images/manifest.tsv"
  log "$name: $(du -m "$img" | cut -f1) MiB, main segment $seg, early microcode: ${mc/#-/none}"
}

# The images: name, family, compression, baked storage configuration. The
# generators run in the root, LAB_JOBS (default: the number of CPUs, at most
# 4) at a time; each image is then measured (early microcode, compression).
images=(
  "itools-gzip initramfs-tools gzip yes"
  "itools-zstd initramfs-tools zstd yes"
  "itools-xz initramfs-tools xz yes"
  "itools-lz4 initramfs-tools lz4 yes"
  "dracut-sd-zstd dracut-systemd zstd no"
  "dracut-sd-gzip dracut-systemd gzip no"
  "dracut-sd-baked-xz dracut-systemd xz yes"
  "dracut-nosd-gzip dracut-shell gzip no"
  "dracut-nosd-baked-lz4 dracut-shell lz4 yes"
  "dracut-nosd-bzip2 dracut-shell bzip2 no"
  "dracut-nosd-lzma dracut-shell lzma no"
)
baked_args="rd.lvm.lv=vg0/root rd.luks.uuid=$LUKS_UUID rd.md.uuid=$MD_UUID resume=UUID=$SWAP_UUID"
# generator_cmd NAME: sets cmd to the generator command line of image NAME.
generator_cmd() {
  local name=$1 out="/lab-images/$1.img"
  local dracut=(dracut --force --no-hostonly --early-microcode --kver "$kver"
                --add-drivers "virtio_blk virtio_pci virtio_scsi ext4")
  local nosd=(--omit "systemd systemd-initrd systemd-networkd dracut-systemd")
  local baked=(--kernel-cmdline "$baked_args" --install /etc/crypttab)
  case $name in
    itools-*) cmd=(mkinitramfs -c "${name#itools-}" -o "$out" "$kver") ;;
    dracut-sd-zstd) cmd=("${dracut[@]}" --zstd "$out") ;;
    dracut-sd-gzip) cmd=("${dracut[@]}" --gzip "$out") ;;
    dracut-sd-baked-xz) cmd=("${dracut[@]}" --xz "${baked[@]}" "$out") ;;
    dracut-nosd-gzip) cmd=("${dracut[@]}" --gzip "${nosd[@]}" "$out") ;;
    dracut-nosd-baked-lz4) cmd=("${dracut[@]}" --lz4 "${baked[@]}" "${nosd[@]}" "$out") ;;
    dracut-nosd-bzip2) cmd=("${dracut[@]}" --compress bzip2 "${nosd[@]}" "$out") ;;
    dracut-nosd-lzma) cmd=("${dracut[@]}" --compress lzma "${nosd[@]}" "$out") ;;
    *) die "no generator command for $name" ;;
  esac
}
jobs_max=${LAB_JOBS:-$(nproc)}
((jobs_max >= 1)) || jobs_max=1
((jobs_max <= 4)) || jobs_max=4
gen_failed=()
# reap: waits for one generator job, logs its outcome.
reap() {
  local pid= rc=0 name
  wait -n -p pid || rc=$?
  [[ -n $pid && -n ${job_name[$pid]:-} ]] || { job_name=(); return 0; }
  name=${job_name[$pid]}
  if ((rc == 0)); then
    log "built $name in $((SECONDS - job_start[$pid])) s"
  else
    log "FAILED: $name (exit $rc) after $((SECONDS - job_start[$pid])) s; end of logs/$name.log:"
    tail -n 30 "$work/logs/$name.log" >&2
    gen_failed+=("$name")
  fi
  unset "job_name[$pid]" "job_start[$pid]"
}
step "generate ${#images[@]} images ($jobs_max at a time)"
for spec in "${images[@]}"; do
  read -r name _ <<<"$spec"
  while ((${#job_name[@]} >= jobs_max)); do reap; done
  generator_cmd "$name"
  # Own session per job, so an interrupted build can stop the whole job.
  setsid chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root \
    "${cmd[@]}" </dev/null >"$work/logs/$name.log" 2>&1 &
  job_name[$!]=$name job_start[$!]=$SECONDS
  log "started $name: ${cmd[*]}"
done
while ((${#job_name[@]})); do reap; done
((${#gen_failed[@]} == 0)) || die "generators failed: ${gen_failed[*]}"

step "measure and list the images"
for spec in "${images[@]}"; do
  read -r name family comp baked <<<"$spec"
  image_done "$name" "$family" "$comp" "$baked"
  # The flavour is what /init is: systemd, or dracut's shell script.
  case $family in
    dracut-shell)
      init=$(in_root lsinitrd -f init "/lab-images/$name.img" 2>/dev/null | head -c 100 | tr -d '\0' || true)
      [[ $init == '#!/bin/'* ]] || die "$name: /init is not dracut's shell script" ;;
    dracut-systemd)
      grep -qx 'usr/lib/systemd/systemd' "$work/images/$name.list" || die "$name: no systemd inside" ;;
  esac
done
# The distribution's own initrd, as update-initramfs writes it (Debian 12
# defaults to zstd), for the kernel hooks to start from.
cp "$root/lab-images/itools-zstd.img" "$root/boot/initrd.img-$kver"

step "kernel, boot arguments and marker root disk"
chmod 0644 "$root"/lab-images/*.img # dracut writes 0600
mv "$root"/lab-images/*.img "$work/images/"
rmdir "$root/lab-images"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"

# Kernel arguments (after console=ttyS0 panic=-1) that boot each image to
# the marker root (scripts/lab/boot-all.sh checks them). The images carry
# storage configuration for devices the VM does not have: initramfs-tools'
# baked RESUME= costs a long wait ("Gave up waiting for suspend/resume
# device"), hence noresume; dracut's baked rd.lvm.lv=, rd.luks.uuid=,
# rd.md.uuid=, resume= and /etc/crypttab make it wait for good (systemd
# times out on the LUKS device, then the initqueue waits for the LV and the
# array) unless switched off.
{
  printf 'name\tappend\n'
  tail -n +2 "$work/images/manifest.tsv" | while IFS=$'\t' read -r name family _ _ baked; do
    args="root=/dev/vda rw"
    if [[ $family == initramfs-tools ]]; then
      args+=" noresume"
    elif [[ $baked == yes ]]; then
      args+=" rd.luks=0 rd.lvm=0 rd.md=0 rd.dm=0 noresume"
    fi
    printf '%s\t%s\n' "$name" "$args"
  done
} >"$work/images/boot-args.tsv"

mkdir -p "$work/marker"/{bin,sbin,dev,proc,sys,run,tmp,etc,root,mnt}
chmod 1777 "$work/marker/tmp"
install -m 0755 "$busybox" "$work/marker/bin/busybox"
cat >"$work/marker/sbin/init" <<EOF
#!/bin/busybox sh
# Init of the initrd-remix lab's marker root: reaching it means the initrd
# found, mounted and switched to the root file system.
bb=/bin/busybox
[ -e /proc/self ] || \$bb mount -t proc proc /proc
[ -e /dev/console ] || \$bb mount -t devtmpfs devtmpfs /dev
line="$LAB_MARKER pid=\$\$ cmdline=\$(\$bb cat /proc/cmdline 2>/dev/null)"
echo "\$line" >/dev/console
echo "\$line" >/dev/kmsg 2>/dev/null
\$bb sync
\$bb poweroff -f
\$bb sleep 5
EOF
chmod 0755 "$work/marker/sbin/init"
cat >"$work/marker/etc/os-release" <<EOF
PRETTY_NAME="initrd-remix lab marker root"
NAME="initrd-remix marker"
ID=initrd-remix-marker
EOF
cp "$work/marker/etc/os-release" "$work/marker/etc/initrd-remix-marker"
: >"$work/marker/etc/fstab"
mke2fs -q -F -t ext4 -L markerroot -U "$MARKER_UUID" -E root_owner=0:0 \
  -d "$work/marker" "$work/disks/marker-root.ext4" 16M
rm -rf "$work/marker" "$work/bb"

step "finish"
unmount_under "$work"
cat >"$work/lab.env" <<EOF
# initrd-remix lab $hash, built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
LAB_DIR=$lab
LAB_KVER=$kver
LAB_KERNEL=$lab/vmlinuz
LAB_ROOT=$lab/root
LAB_IMAGES=$lab/images
LAB_MARKER_DISK=$lab/disks/marker-root.ext4
LAB_MARKER=$LAB_MARKER
LAB_MARKER_UUID=$MARKER_UUID
LAB_LUKS_UUID=$LUKS_UUID
LAB_MD_UUID=$MD_UUID
LAB_SWAP_UUID=$SWAP_UUID
EOF
mv -T "$work" "$lab"
publish
step ""
log "lab ready at $lab ($((SECONDS - t0)) s)"
column -t -s $'\t' "$lab/images/manifest.tsv" >&2 2>/dev/null || cat "$lab/images/manifest.tsv" >&2
# Older labs stay (a test run may still use one) unless LAB_PRUNE=1.
for d in "$cache"/lab-*; do
  [[ -d $d && ! -L $d && $d != "$lab" ]] || continue
  if [[ ${LAB_PRUNE:-} == 1 ]]; then
    log "removing the older lab $d"
    remove_tree "$d"
  else
    log "older lab $d ($(du -sh "$d" 2>/dev/null | cut -f1)) can go: LAB_PRUNE=1 or rm -rf"
  fi
done
echo "$lab"
exit 0
}
