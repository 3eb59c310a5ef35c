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
#   lab.env            LAB_RELEASE, LAB_KVER, LAB_KERNEL, LAB_ROOT, LAB_IMAGES,
#                      LAB_MARKER_DISK, LAB_MARKER, the fixed storage UUIDs,
#                      and LAB_RELEASES, the other releases' directories
#   releases/<suite>/  a lab of the same shape (root/, images/, vmlinuz,
#                      lab.env; the marker disk is the main lab's) for each
#                      other release: Debian 13 (trixie), 11 (bullseye,
#                      its root without usr-merge) and unstable (sid), one
#                      image per family (initramfs-tools zstd, dracut with
#                      systemd zstd, dracut without systemd gzip with baked
#                      arguments)
#
# The lab lives in ${INITRD_REMIX_CACHE:-${XDG_CACHE_HOME:-~/.cache}/initrd-remix}
# as lab-<hash>, the hash being the first 12 hex digits of a sha256 over this
# script, every file under scripts/lab/ and LAB_RELEASES: a changed recipe builds a new lab,
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
#   LAB_JOBS         debootstraps and generators run at once (default: CPUs,
#                    at most 4)
#   LAB_RELEASES     the other releases (default "trixie bullseye sid"; ""
#                    for none)
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
    echo "releases: ${LAB_RELEASES-trixie bullseye sid}"
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

# The releases: bookworm is the main lab (the directory itself); each other
# release is a lab of the same shape in releases/<suite>/, with its own root,
# kernel and images. LAB_RELEASES picks the others (default: trixie,
# bullseye and sid; bullseye's root is left unmerged, the last release that
# allows one).
read -r -a releases <<<"${LAB_RELEASES-trixie bullseye sid}"
suites=(bookworm "${releases[@]}")
declare -A rdir=()
for suite in "${suites[@]}"; do
  case $suite in
    bookworm) rdir[$suite]=$work ;;
    bullseye | trixie | sid) rdir[$suite]=$work/releases/$suite ;;
    *) die "LAB_RELEASES: no recipe for $suite (known: trixie bullseye sid)" ;;
  esac
  mkdir -p "${rdir[$suite]}/images" "${rdir[$suite]}/root"
done
root_of() { echo "${rdir[$1]}/root"; }
# in_root SUITE CMD...: runs CMD in that release's root.
in_root() {
  local r
  r=$(root_of "$1")
  shift
  chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root "$@"
}

# Background jobs (debootstraps, generators), jobs_max at a time, each in its
# own session so that an interrupted build can stop the whole job.
jobs_max=${LAB_JOBS:-$(nproc)}
((jobs_max >= 1)) || jobs_max=1
((jobs_max <= 4)) || jobs_max=4
job_failed=()
# reap: waits for one job, logs its outcome.
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
    job_failed+=("$name")
  fi
  unset "job_name[$pid]" "job_start[$pid]"
}
# start_job NAME CMD...: starts CMD once fewer than jobs_max jobs run.
start_job() {
  local name=$1
  shift
  while ((${#job_name[@]} >= jobs_max)); do reap; done
  setsid "$@" </dev/null >"$work/logs/$name.log" 2>&1 &
  job_name[$!]=$name job_start[$!]=$SECONDS
  log "started $name: $*"
}
# wait_jobs WHAT: waits for every job; dies if any failed.
wait_jobs() {
  while ((${#job_name[@]})); do reap; done
  ((${#job_failed[@]} == 0)) || die "$1 failed: ${job_failed[*]}"
}

step "debootstrap ${suites[*]}"
pkgs=(linux-image-amd64 systemd systemd-sysv udev kmod initramfs-tools dracut-core
      lvm2 mdadm cryptsetup cryptsetup-initramfs busybox e2fsprogs
      intel-microcode iucode-tool amd64-microcode zstd xz-utils lz4 bzip2 cpio
      parted gdisk fdisk dosfstools xfsprogs btrfs-progs rsync openssh-client
      less vim-tiny iproute2 iputils-ping tar gzip grub2-common)
mkdir -p "$debs/debootstrap"
for suite in "${suites[@]}"; do
  r=$(root_of "$suite")
  # Speed, not content: dpkg skips its fsync calls while the root is made,
  # and the kernel's postinst skips update-initramfs (INITRD=No); the
  # initramfs-tools images are built below, once the storage configuration
  # is in place.
  mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
  echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/lab-unsafe-io"
  # A download cache per release: two debootstraps never write one file.
  cache_dir=$debs/debootstrap
  [[ $suite == bookworm ]] || cache_dir+=-$suite
  mkdir -p "$cache_dir"
  opts=(--variant=minbase --arch=amd64 --cache-dir="$cache_dir")
  case $suite in
    # Before bookworm, microcode was in non-free (iucode-tool in contrib);
    # bullseye is the last release whose root may stay without usr-merge.
    bullseye) opts+=(--components=main,contrib,non-free --no-merged-usr) ;;
    *) opts+=(--components=main,non-free-firmware) ;;
  esac
  if [[ $suite == sid ]]; then
    # In sid the kernel pulls dracut, which conflicts with initramfs-tools:
    # the root is made without initramfs-tools, which replaces dracut
    # afterwards (scripts/lab/sid-initramfs-tools.sh; dracut-core stays).
    # switch_root moved to util-linux-extra, which dracut without systemd
    # needs and nothing pulls in.
    incl=(util-linux-extra)
    for p in "${pkgs[@]}"; do
      [[ $p == initramfs-tools || $p == cryptsetup-initramfs ]] || incl+=("$p")
    done
    start_job "debootstrap-$suite" sh -c 'r=$1 fix=$2; shift 2; env INITRD=No debootstrap "$@" && "$fix" "$r"' sh \
      "$r" "$here/lab/sid-initramfs-tools.sh" "${opts[@]}" --include="$(IFS=,; echo "${incl[*]}")" "$suite" "$r" "$mirror"
    continue
  fi
  start_job "debootstrap-$suite" env INITRD=No debootstrap "${opts[@]}" \
    --include="$(IFS=,; echo "${pkgs[*]}")" "$suite" "$r" "$mirror"
done
wait_jobs "debootstrap"

step "chroot mounts and storage configuration"
declare -A kver=()
for suite in "${suites[@]}"; do
  r=$(root_of "$suite")
  rm -f "$r/etc/dpkg/dpkg.cfg.d/lab-unsafe-io"
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  mount --bind /dev "$r/dev"
  k=$(find "$r/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  [[ -n $k && -f $r/boot/vmlinuz-$k ]] || die "$suite: no kernel in the root"
  kver[$suite]=$k
  log "$suite: kernel $k; $(in_root "$suite" dpkg-query -W -f '${Package} ${Version}; ' initramfs-tools dracut-core systemd libc6)"

  # What an installed system with LUKS, md RAID, swap and an ext4 root carries.
  cat >"$r/etc/crypttab" <<EOF
# <target name> <source device> <key file> <options>
cryptdata UUID=$LUKS_UUID none luks,initramfs
EOF
  mkdir -p "$r/etc/mdadm"
  cat >"$r/etc/mdadm/mdadm.conf" <<EOF
HOMEHOST <system>
MAILADDR root
ARRAY /dev/md/0 metadata=1.2 UUID=$MD_UUID name=lab:0
EOF
  echo "RESUME=UUID=$SWAP_UUID" >"$r/etc/initramfs-tools/conf.d/resume"
  cat >"$r/etc/fstab" <<EOF
UUID=$MARKER_UUID / ext4 errors=remount-ro 0 1
EOF
  sed -i 's/^MODULES=.*/MODULES=most/' "$r/etc/initramfs-tools/initramfs.conf"
  grep -qx 'MODULES=most' "$r/etc/initramfs-tools/initramfs.conf" || die "$suite: MODULES=most not set"
  # In a chroot the microcode hooks cannot tell the CPU: include all of it.
  echo 'IUCODE_TOOL_INITRAMFS=yes' >>"$r/etc/default/intel-microcode"
  echo 'AMD64UCODE_INITRAMFS=yes' >>"$r/etc/default/amd64-microcode"
  echo lab >"$r/etc/hostname"
  mkdir -p "$r/lab-images"
  printf 'name\tfamily\tcompression\tmicrocode\tbaked\n' >"${rdir[$suite]}/images/manifest.tsv"
done

# image_done SUITE NAME FAMILY COMPRESSION BAKED: measures an image, and
# records its manifest line in images/.manifest-NAME.
image_done() {
  local suite=$1 name=$2 family=$3 comp=$4 baked=$5 img info mc seg out=${rdir[$1]}/images
  img=$(root_of "$suite")/lab-images/$name.img
  [[ -s $img ]] || die "$suite/$name: the generator wrote no image"
  info=$(first_segment_info "$img")
  mc=${info% *} seg=${info#* }
  [[ $seg == "$comp" ]] || die "$suite/$name: main segment is $seg, expected $comp"
  in_root "$suite" lsinitramfs "/lab-images/$name.img" >"$out/$name.list" 2>"$work/logs/$suite-$name.lsinitramfs.log" ||
    die "$suite/$name: lsinitramfs failed"
  grep -qx 'init' "$out/$name.list" || die "$suite/$name: no /init in lsinitramfs"
  if [[ $family == dracut-* ]]; then
    in_root "$suite" lsinitrd "/lab-images/$name.img" >"$out/$name.lsinitrd" 2>&1 || die "$suite/$name: lsinitrd failed"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$family" "$seg" "$([[ $mc == - ]] && echo no || echo yes)" "$baked" \
    >"$out/.manifest-$name"
  log "$suite/$name: $(du -m "$img" | cut -f1) MiB, main segment $seg, early microcode: ${mc/#-/none}"
}

# The images: release, name, family, compression, baked storage
# configuration. The generators run in their release's root, jobs_max at a
# time; each image is then measured (early microcode, compression). The
# main lab has every family with every compression; each other release one
# image per family, baked configuration included.
images=(
  "bookworm itools-gzip initramfs-tools gzip yes"
  "bookworm itools-zstd initramfs-tools zstd yes"
  "bookworm itools-xz initramfs-tools xz yes"
  "bookworm itools-lz4 initramfs-tools lz4 yes"
  "bookworm dracut-sd-zstd dracut-systemd zstd no"
  "bookworm dracut-sd-gzip dracut-systemd gzip no"
  "bookworm dracut-sd-baked-xz dracut-systemd xz yes"
  "bookworm dracut-nosd-gzip dracut-shell gzip no"
  "bookworm dracut-nosd-baked-lz4 dracut-shell lz4 yes"
  "bookworm dracut-nosd-bzip2 dracut-shell bzip2 no"
  "bookworm dracut-nosd-lzma dracut-shell lzma no"
)
for suite in "${releases[@]}"; do
  images+=(
    "$suite itools-zstd initramfs-tools zstd yes"
    "$suite dracut-sd-zstd dracut-systemd zstd no"
    "$suite dracut-nosd-baked-gzip dracut-shell gzip yes"
  )
done
baked_args="rd.lvm.lv=vg0/root rd.luks.uuid=$LUKS_UUID rd.md.uuid=$MD_UUID resume=UUID=$SWAP_UUID"
# generator_cmd SUITE NAME: sets cmd to the generator command line of image
# NAME in that release.
generator_cmd() {
  local k=${kver[$1]} name=$2 out="/lab-images/$2.img"
  local dracut=(dracut --force --no-hostonly --early-microcode --kver "$k"
                --add-drivers "virtio_blk virtio_pci virtio_scsi ext4")
  local nosd=(--omit "systemd systemd-initrd systemd-networkd dracut-systemd")
  local baked=(--kernel-cmdline "$baked_args" --install /etc/crypttab)
  case $name in
    itools-*) cmd=(mkinitramfs -c "${name#itools-}" -o "$out" "$k") ;;
    dracut-sd-zstd) cmd=("${dracut[@]}" --zstd "$out") ;;
    dracut-sd-gzip) cmd=("${dracut[@]}" --gzip "$out") ;;
    dracut-sd-baked-xz) cmd=("${dracut[@]}" --xz "${baked[@]}" "$out") ;;
    dracut-nosd-gzip) cmd=("${dracut[@]}" --gzip "${nosd[@]}" "$out") ;;
    dracut-nosd-baked-gzip) cmd=("${dracut[@]}" --gzip "${baked[@]}" "${nosd[@]}" "$out") ;;
    dracut-nosd-baked-lz4) cmd=("${dracut[@]}" --lz4 "${baked[@]}" "${nosd[@]}" "$out") ;;
    dracut-nosd-bzip2) cmd=("${dracut[@]}" --compress bzip2 "${nosd[@]}" "$out") ;;
    dracut-nosd-lzma) cmd=("${dracut[@]}" --compress lzma "${nosd[@]}" "$out") ;;
    *) die "no generator command for $name" ;;
  esac
}
step "generate ${#images[@]} images ($jobs_max at a time)"
for spec in "${images[@]}"; do
  read -r suite name _ <<<"$spec"
  generator_cmd "$suite" "$name"
  start_job "$suite-$name" chroot "$(root_of "$suite")" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root "${cmd[@]}"
done
wait_jobs "generators"

# measure_image SUITE NAME FAMILY COMPRESSION BAKED: image_done, then checks
# the flavour: what /init is, systemd or dracut's shell script.
measure_image() {
  local suite=$1 name=$2 family=$3 init
  image_done "$@"
  case $family in
    dracut-shell)
      init=$(in_root "$suite" lsinitrd -f init "/lab-images/$name.img" 2>/dev/null | head -c 100 | tr -d '\0' || true)
      [[ $init == '#!/bin/'* ]] || die "$suite/$name: /init is not dracut's shell script" ;;
    dracut-systemd)
      # usr-merged roots have it in usr/lib, bullseye's unmerged one in lib.
      grep -qxE '(usr/)?lib/systemd/systemd' "${rdir[$suite]}/images/$name.list" || die "$suite/$name: no systemd inside" ;;
  esac
}
# start_fn NAME FUNCTION ARGS...: start_job for a function of this script
# (in a subshell; its output in logs/NAME.log).
start_fn() {
  local name=$1
  shift
  while ((${#job_name[@]} >= jobs_max)); do reap; done
  ("$@") </dev/null >"$work/logs/$name.log" 2>&1 &
  job_name[$!]=$name job_start[$!]=$SECONDS
}
step "measure and list the images ($jobs_max at a time)"
for spec in "${images[@]}"; do
  read -r suite name family comp baked <<<"$spec"
  start_fn "measure-$suite-$name" measure_image "$suite" "$name" "$family" "$comp" "$baked"
done
wait_jobs "measuring"
# The manifests in the order of the images, and what was measured.
for spec in "${images[@]}"; do
  read -r suite name _ <<<"$spec"
  cat "${rdir[$suite]}/images/.manifest-$name" >>"${rdir[$suite]}/images/manifest.tsv"
  rm "${rdir[$suite]}/images/.manifest-$name"
  grep -h '^\[lab' "$work/logs/measure-$suite-$name.log" >&2 || true
done

step "kernels and boot arguments"
for suite in "${suites[@]}"; do
  r=$(root_of "$suite") d=${rdir[$suite]}
  # The distribution's own initrd, as update-initramfs writes it (Debian
  # defaults to zstd), for the kernel hooks to start from.
  cp "$r/lab-images/itools-zstd.img" "$r/boot/initrd.img-${kver[$suite]}"
  chmod 0644 "$r"/lab-images/*.img # dracut writes 0600
  mv "$r"/lab-images/*.img "$d/images/"
  rmdir "$r/lab-images"
  cp "$r/boot/vmlinuz-${kver[$suite]}" "$d/vmlinuz"

  # Kernel arguments (after console=ttyS0 panic=-1) that boot each image
  # to the marker root (scripts/lab/boot-all.sh checks them). The images
  # carry storage configuration for devices the VM does not have:
  # initramfs-tools' baked RESUME= costs a long wait ("Gave up waiting for
  # suspend/resume device"), hence noresume; dracut's baked rd.lvm.lv=,
  # rd.luks.uuid=, rd.md.uuid=, resume= and /etc/crypttab make it wait for
  # good (systemd times out on the LUKS device, then the initqueue waits
  # for the LV and the array) unless switched off.
  {
    printf 'name\tappend\n'
    tail -n +2 "$d/images/manifest.tsv" | while IFS=$'\t' read -r name family _ _ baked; do
      args="root=/dev/vda rw"
      if [[ $family == initramfs-tools ]]; then
        args+=" noresume"
      elif [[ $baked == yes ]]; then
        args+=" rd.luks=0 rd.lvm=0 rd.md=0 rd.dm=0 noresume"
      fi
      printf '%s\t%s\n' "$name" "$args"
    done
  } >"$d/images/boot-args.tsv"
done

step "marker root disk"
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
# lab_env SUITE DIR: the lab.env of one release, DIR being where it will be.
lab_env() {
  cat <<EOF
# initrd-remix lab $hash ($1), built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0)) s
LAB_DIR=$2
LAB_RELEASE=$1
LAB_KVER=${kver[$1]}
LAB_KERNEL=$2/vmlinuz
LAB_ROOT=$2/root
LAB_IMAGES=$2/images
LAB_MARKER_DISK=$lab/disks/marker-root.ext4
LAB_MARKER=$LAB_MARKER
LAB_MARKER_UUID=$MARKER_UUID
LAB_LUKS_UUID=$LUKS_UUID
LAB_MD_UUID=$MD_UUID
LAB_SWAP_UUID=$SWAP_UUID
EOF
}
for suite in "${releases[@]}"; do
  lab_env "$suite" "$lab/releases/$suite" >"${rdir[$suite]}/lab.env"
done
{
  lab_env bookworm "$lab"
  # The other releases' labs, of the same shape, one directory each.
  printf 'LAB_RELEASES="%s"\n' "$(for suite in "${releases[@]}"; do printf '%s ' "$lab/releases/$suite"; done | sed 's/ $//')"
} >"$work/lab.env"
mv -T "$work" "$lab"
publish
step ""
log "lab ready at $lab ($((SECONDS - t0)) s)"
for suite in "${suites[@]}"; do
  m=$lab/images/manifest.tsv
  [[ $suite == bookworm ]] || m=$lab/releases/$suite/images/manifest.tsv
  log "$suite:"
  column -t -s $'\t' "$m" >&2 2>/dev/null || cat "$m" >&2
done
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
