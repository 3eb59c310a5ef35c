#!/usr/bin/env bash
# boot-all.sh: the lab's self-test. Boots the lab kernel with each lab image
# (or the named ones) and the marker root disk through scripts/boot.sh, with
# the arguments from images/boot-args.tsv, expecting the marker line.
#
#   scripts/lab/boot-all.sh [--lab DIR] [--logs DIR] [--timeout SEC]
#                           [--append ARGS] [--plain] [NAME...]
#
# --lab defaults to $INITRD_REMIX_LAB, else the cache's lab-current.
# --append adds arguments after the image's own; --plain uses only
# "root=/dev/vda rw" (to see what the baked configuration does without the
# overrides). Logs go to --logs (default: a new directory under /tmp).
# Prints "name<TAB>result<TAB>seconds<TAB>append" per image; exits 1 when any
# image did not reach the marker.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${INITRD_REMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix}
lab=${INITRD_REMIX_LAB:-$cache/lab-current}
logs= timeout=300 extra= plain=
names=()
while (($#)); do
  case $1 in
    --lab) lab=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --append) extra=$2; shift 2 ;;
    --plain) plain=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "boot-all.sh: unknown option $1" >&2; exit 64 ;;
    *) names+=("$1"); shift ;;
  esac
done
[[ -f $lab/lab.env ]] || { echo "boot-all.sh: no lab at $lab (run scripts/lab.sh)" >&2; exit 64; }
# shellcheck disable=SC1091
. "$lab/lab.env"
[[ -n $logs ]] || logs=$(mktemp -d "${TMPDIR:-/tmp}/lab-boots-XXXXXX")
mkdir -p "$logs"
if ((${#names[@]} == 0)); then
  mapfile -t names < <(tail -n +2 "$LAB_IMAGES/boot-args.tsv" | cut -f1)
fi

bad=0
for name in "${names[@]}"; do
  args=$(awk -F '\t' -v n="$name" '$1 == n {print $2}' "$LAB_IMAGES/boot-args.tsv")
  [[ -n $args ]] || { echo "boot-all.sh: no image $name in the lab" >&2; exit 64; }
  [[ -z $plain ]] || args="root=/dev/vda rw"
  [[ -z $extra ]] || args+=" $extra"
  rc=0
  out=$("$here/boot.sh" --kernel "$LAB_KERNEL" --initrd "$LAB_IMAGES/$name.img" \
    --disk "$LAB_MARKER_DISK" --append "$args" --expect "$LAB_MARKER" \
    --timeout "$timeout" --log "$logs/$name.log") || rc=$?
  result=${out#boot: } result=${result%% *}
  secs=${out#* after } secs=${secs%% s*}
  printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$secs" "$args"
  ((rc == 0)) || bad=1
done
echo "boot-all.sh: logs in $logs" >&2
exit "$bad"
