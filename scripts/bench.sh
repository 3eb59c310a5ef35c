#!/usr/bin/env bash
# Benchmarks initrd-remix side by side with the tools a user would use
# instead, on the lab's real images, in one run; prints times, ratios and
# peak memory (GNU time's maximum resident set size).
#
#   scripts/bench.sh [runs]      (default 3 runs each, best time kept)
#
# inspect  vs  the codec's own CLI decompressing to /dev/null, lsinitramfs,
#              unmkinitramfs, lsinitrd
# repack   vs  the CLI pipeline for the image's codec: keep the early archive,
#              then `zstd -dc | zstd -T2 -3`, `gzip -dc | gzip -6`,
#              `lz4 -dc | lz4 -l` (and xz with BENCH_XZ=1)
# build    vs  zstd -dc, mkinitramfs, dracut (strip only, and with the
#              rescue preset; both --drivers none)
# drivers  build of every release's images with the default driver classes
#              (a generic rescue) vs --drivers none (host-only): added
#              size per class, output sizes, time ratio
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
lab=${INITRD_REMIX_LAB:-$("$here/scripts/lab.sh" | tail -n 1)}
bin=$(mktemp -d)/initrd-remix
(cd "$here" && go build -o "$bin" ./cmd/initrd-remix)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$(dirname "$bin")"' EXIT

# measure NAME CMD...: best wall time over $runs runs and its peak RSS.
# Wall time is taken to the millisecond around GNU time (whose own %e has
# only hundredths: at 0.14 s that alone moves a ratio by 7%); GNU time
# gives the peak RSS.
declare -A T M
measure() {
  local name=$1 best="" mem=0 i out t0 t1 s m
  shift
  for ((i = 0; i < runs; i++)); do
    # time's own report goes to a file: the command's output is discarded.
    t0=$(date +%s%N)
    /usr/bin/time -o "$tmp/time" -f '%M' bash -c "$*" >/dev/null 2>&1 ||
      { echo "bench.sh: failed: $*" >&2; exit 1; }
    t1=$(date +%s%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b - a) / 1e9}')
    read -r m <"$tmp/time"
    if [[ -z $best ]] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$s mem=$m; fi
  done
  T[$name]=$best M[$name]=$mem
}
ratio() { awk -v a="${T[$1]}" -v b="${T[$2]}" 'BEGIN{ if (b == 0) b = 0.01; printf "%.2fx", a / b }'; }
row() { printf '%-34s %9ss %8s MiB\n' "$1" "${T[$1]}" "$((M[$1] / 1024))"; }

declare -A encp=([zstd]="zstd -q -T2 -3" [gzip]="gzip -6" [lz4]="lz4 -q -l" [xz]="xz -q --check=crc32 --lzma2=dict=1MiB")
declare -A dec=([gzip]="gzip -dc" [zstd]="zstd -dc" [xz]="xz -dc" [lz4]="lz4 -dc" [bzip2]="bzip2 -dc" [lzma]="lzma -dc")
echo "lab: $lab ($runs runs each, best time)"
for img in itools-zstd itools-gzip itools-xz itools-lz4 dracut-sd-zstd dracut-nosd-gzip; do
  f="$lab/images/$img.img"
  [[ -f $f ]] || continue
  json=$("$bin" inspect --json "$f")
  comp=$(jq -r '.segments[-1].compression' <<<"$json")
  early=$(jq -r '[.segments[] | select(.early) | .length + .padding] | add // 0' <<<"$json")
  tail_cmd="tail -c +$((early + 1)) '$f'"
  echo
  echo "== $img ($(du -h "$f" | cut -f1), $comp after $early early bytes)"
  measure "inspect" "'$bin' inspect '$f'"
  measure "${dec[$comp]%% *} -dc" "$tail_cmd | ${dec[$comp]}"
  measure "lsinitramfs" "lsinitramfs '$f'"
  measure "unmkinitramfs" "rm -rf '$tmp/u' && unmkinitramfs '$f' '$tmp/u'"
  measure "lsinitrd" "lsinitrd '$f'"
  for n in inspect "${dec[$comp]%% *} -dc" lsinitramfs unmkinitramfs lsinitrd; do row "$n"; done
  printf 'inspect / %s = %s   inspect / lsinitramfs = %s   inspect / lsinitrd = %s\n' \
    "${dec[$comp]%% *} -dc" "$(ratio inspect "${dec[$comp]%% *} -dc")" "$(ratio inspect lsinitramfs)" "$(ratio inspect lsinitrd)"
  # repack to the image's own codec against decompressing and compressing
  # with the codec's CLI at the same settings (zstd: 2 threads, as our
  # encoder uses every CPU); xz only with BENCH_XZ=1 (minutes per run).
  enc=${encp[$comp]:-}
  if [[ -n $enc ]] && [[ $comp != xz || ${BENCH_XZ:-} == 1 ]]; then
    r="repack --compress $comp"
    p="${dec[$comp]%% *} -dc | $enc"
    measure "$r" "'$bin' repack -q --compress $comp '$f' '$tmp/out.img'"
    measure "$p" "{ head -c $early '$f'; $tail_cmd | ${dec[$comp]} | $enc; } > '$tmp/pipe.img'"
    row "$r"
    row "$p"
    printf 'repack / pipeline = %s   sizes: repack %s, pipeline %s\n' "$(ratio "$r" "$p")" \
      "$(stat -c %s "$tmp/out.img")" "$(stat -c %s "$tmp/pipe.img")"
  fi
done

# build (issue 3): the rescue image in append mode from the initramfs-tools
# zstd image, against decompressing that image and against regenerating an
# initrd with the generators themselves (in the lab root, as the lab does).
f="$lab/images/itools-zstd.img"
if [[ -f $f ]]; then
  # shellcheck disable=SC1091
  . "$lab/lab.env"
  json=$("$bin" inspect --json "$f")
  early=$(jq -r '[.segments[] | select(.early) | .length + .padding] | add // 0' <<<"$json")
  echo
  echo "== build --mode append (itools-zstd)"
  # --preset none: strip only (issue 3's figure); the default preset also
  # adds the rescue programs from the lab root with their libraries.
  measure "build --mode append" "'$bin' build -q --force --mode append --preset none --drivers none --input '$f' --kver '$LAB_KVER' --output '$tmp/rescue.img'"
  measure "build (rescue preset)" "'$bin' build -q --force --mode append --drivers none --root '$LAB_ROOT' --input '$f' --kver '$LAB_KVER' --output '$tmp/rescue.img'"
  measure "zstd -dc" "tail -c +$((early + 1)) '$f' | zstd -dc"
  # The generators need /proc, /sys and /dev in the root; one run each.
  root=$LAB_ROOT
  mounts=()
  for m in proc sys dev; do
    if ! mountpoint -q "$root/$m"; then
      case $m in
        proc) mount -t proc proc "$root/proc" ;;
        sys) mount -t sysfs sysfs "$root/sys" ;;
        dev) mount --bind /dev "$root/dev" ;;
      esac
      mounts+=("$root/$m")
    fi
  done
  trap 'for m in "${mounts[@]}"; do umount -l "$m"; done; rm -rf "$tmp" "$(dirname "$bin")"' EXIT
  saved=$runs runs=1
  measure "mkinitramfs -c zstd" "chroot '$root' mkinitramfs -c zstd -o /tmp/bench-itools.img '$LAB_KVER'"
  measure "dracut --zstd" "chroot '$root' dracut --force --no-hostonly --zstd /tmp/bench-dracut.img '$LAB_KVER'"
  runs=$saved
  rm -f "$root/tmp/bench-itools.img" "$root/tmp/bench-dracut.img"
  for n in "build --mode append" "build (rescue preset)" "zstd -dc" "mkinitramfs -c zstd" "dracut --zstd"; do row "$n"; done
  printf 'build / zstd -dc = %s   mkinitramfs / build = %s   dracut / build = %s\n' \
    "$(ratio "build --mode append" "zstd -dc")" "$(ratio "mkinitramfs -c zstd" "build --mode append")" "$(ratio "dracut --zstd" "build --mode append")"
fi

# drivers (issue 11): for each release of the lab, the first image of each
# family, and the host-only images, built with the release's root:
# --drivers none (the image's own drivers: a rescue for this machine only)
# beside the default (every class: a generic rescue for replacement
# hardware). Prints what each class adds, the
# output sizes and the build times as ratios.
echo
echo "== build: generic (--drivers all, the default) vs host-only (--drivers none)"
releases=("$lab")
# shellcheck disable=SC1091
for r in $(. "$lab/lab.env"; echo "${LAB_RELEASES:-}"); do releases+=("$r"); done
# bench_drivers NAME ROOT KVER IMAGE
bench_drivers() {
  local name=$1 rroot=$2 kv=$3 f=$4 common n a
  common="'$bin' build -q --force --root '$rroot' --input '$f' --kver '$kv'"
  measure "drivers none" "$common --drivers none --output '$tmp/none.img'"
  measure "drivers all" "$common --output '$tmp/all.img'"
  echo "-- $name (input $(stat -c %s "$f") bytes)"
  "$bin" build --json --force --root "$rroot" --input "$f" --kver "$kv" --output "$tmp/all.img" |
    jq -r '.overlay.drivers[] | "   \(.class | . + "       " | .[:8]) \(.added | length) modules added, \(.bytes / 1048576 * 10 | round / 10) MiB before compression; \(.present // [] | length) already in the image, \(.builtin // [] | length) built in; firmware \(.firmware // [] | length) added, \(.missing_firmware // [] | length) missing"'
  row "drivers none"
  row "drivers all"
  n=$(stat -c %s "$tmp/none.img") a=$(stat -c %s "$tmp/all.img")
  printf 'sizes: --drivers none %s bytes, all %s bytes (+%s MiB, %s)   time all / none = %s\n' "$n" "$a" \
    "$(awk -v a="$a" -v n="$n" 'BEGIN{printf "%.1f", (a - n) / 1048576}')" \
    "$(awk -v a="$a" -v n="$n" 'BEGIN{printf "%.2fx", a / n}')" "$(ratio "drivers all" "drivers none")"
}
for rel in "${releases[@]}"; do
  # shellcheck disable=SC1091
  kv=$(. "$rel/lab.env"; echo "$LAB_KVER") rroot=$(. "$rel/lab.env"; echo "$LAB_ROOT") rname=$(. "$rel/lab.env"; echo "${LAB_RELEASE:-bookworm}")
  # The first image of each family.
  mapfile -t imgs < <(awk -F'\t' 'NR > 1 && !seen[$2]++ { print $1 }' "$rel/images/manifest.tsv")
  for img in "${imgs[@]}"; do
    if [[ -f $rel/images/$img.img ]]; then
      bench_drivers "$rname/$img" "$rroot" "$kv" "$rel/images/$img.img"
    fi
  done
done
# Host-only images (MODULES=list, dracut --hostonly), when a host-only
# stage of the lab exists (BENCH_HOSTONLY, or the newest
# ~/.cache/initrd-remix/hostonly-*): what a generic rescue adds to them.
ho=${BENCH_HOSTONLY:-$(ls -td "$HOME"/.cache/initrd-remix/hostonly-*/ 2>/dev/null | head -n 1)}
if [[ -n $ho && -f $ho/hostonly.env ]]; then
  # shellcheck disable=SC1091
  hk=$(. "$ho/hostonly.env"; echo "$HOSTONLY_KVER") hroot=$(. "$lab/lab.env"; echo "$LAB_ROOT")
  for f in "$ho"/*.img; do
    bench_drivers "host-only/$(basename "$f" .img)" "$hroot" "$hk" "$f"
  done
fi

# overlay (issue 4): the rescue preset's library closure against running ldd
# once per program in a chroot of the lab root; the test checks both give the
# same libraries and prints the ratio.
echo
echo "== rescue preset closure vs ldd (lab root)"
(cd "$here" && INITRD_REMIX_LAB=$lab go test -count=1 -v -run 'TestPresetClosureVsLdd' ./overlay/ 2>&1 | grep -E 'closure|ldd|PASS|FAIL' | head -n 10)
