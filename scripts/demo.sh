#!/usr/bin/env bash
# demo.sh: the "show me" command. It builds (or reuses) the lab, a Debian 12
# root with a real kernel and the initrd initramfs-tools made for it, remixes
# that initrd into a rescue initrd with `initrd-remix build`, and boots the
# result in QEMU with a disk whose root file system prints a marker when it
# is reached. The rescue image must stop at its own shell and leave the disk
# alone; the console transcript is printed.
#
#   sudo scripts/demo.sh          first run: ~15-30 minutes for the lab
#                                 (cached), then about a minute per run
#
# Needs root (the lab uses debootstrap and chroot), Go, QEMU
# (qemu-system-x86_64, TCG: no KVM needed). INITRD_REMIX_LAB=DIR reuses a
# lab directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [[ -t 1 ]]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

lab=${INITRD_REMIX_LAB:-}
if [[ -z $lab ]]; then
  step "building or reusing the lab (scripts/lab.sh)"
  lab=$(scripts/lab.sh | tail -n 1)
fi
# shellcheck disable=SC1091
. "$lab/lab.env"

work=$(mktemp -d "${TMPDIR:-/tmp}/initrd-remix-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
ir=$work/initrd-remix
make -s BIN="$ir" >/dev/null

if ! "$ir" build --help >/dev/null 2>&1; then
  echo "demo.sh: this checkout has no 'initrd-remix build' yet (issue 3)" >&2
  exit 1
fi

input=$LAB_ROOT/boot/initrd.img-$LAB_KVER
step "the distribution's initrd: $input"
"$ir" inspect "$input"

step "initrd-remix build: the rescue image"
"$ir" build --root "$LAB_ROOT" --kver "$LAB_KVER" --input "$input" --output "$work/rescue.img"
"$ir" inspect "$work/rescue.img"

step "booting it in QEMU with root=/dev/vda on a disk that prints '$LAB_MARKER' if the root is ever reached"
rc=0
scripts/boot.sh --kernel "$LAB_KERNEL" --initrd "$work/rescue.img" --disk "$LAB_MARKER_DISK" \
  --append "root=/dev/vda ro" --expect 'initrd-remix rescue system' --fail "$LAB_MARKER" \
  --timeout 300 --log "$work/console.log" || rc=$?

step "console transcript"
cat "$work/console.log"
echo
if ((rc == 0)); then
  step "the rescue image booted to its shell; the root on the disk was not touched"
else
  step "the boot did not reach the rescue shell (boot.sh exit $rc); see the transcript above"
fi
exit "$rc"
