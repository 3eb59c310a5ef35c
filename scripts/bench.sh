#!/usr/bin/env bash
# Benchmarks initrd-remix side by side with the tools a user would use
# instead, on the lab's real images, in one run; prints times, ratios and
# peak memory (GNU time's maximum resident set size).
#
#   scripts/bench.sh [runs]      (default 3 runs each, best time kept)
#
# read     inspect and inspect --files on every lab image against 3cpio -tv
#          (3cpio and the decompressors it runs taken from the lab's Debian
#          unstable root, in a chroot), the codec's own CLI decompressing to
#          /dev/null (the host's, and the unstable root's), lsinitramfs,
#          unmkinitramfs, lsinitrd
# repack   vs  the CLI pipeline for the image's codec: keep the uncompressed segments,
#              then `zstd -dc | zstd -T2 -3`, `gzip -dc | gzip -6`,
#              `lz4 -dc | lz4 -l` (and xz with BENCH_XZ=1)
# build    vs  the decompression floor (the codec's CLI -dc on the same
#              stream), mkinitramfs, dracut (strip only, and with the
#              rescue preset; both --drivers none); and the rescue
#              preset's peak RSS on every image of the lab
# drivers  build of every release's images with the default driver classes
#              (a generic rescue) vs --drivers none (host-only): added
#              size per class, output sizes, time ratio
# lzmacore one core of LZMA decoding: `inspect` of the lab's lzma and xz
#              images against the unstable root's xz-utils built from its
#              Debian source twice, with liblzma's x86-64 assembly range
#              decoder (its default on x86-64 since 5.6) and with the
#              portable C one (LZMA_RANGE_DECODER_CONFIG=0), `xz -T1 -dc`
# goals    issue 17's goals, each figure as a ratio: met or missed
#
# BENCH_ONLY="read build" runs only the sections named (read, repack,
# build, drivers, closure, lzmacore); the goals are printed for what ran.
#
# It runs in a private mount namespace of its own (the lab's images are
# bound into the unstable root for 3cpio), as root.
set -euo pipefail
if [[ -z ${BENCH_NS:-} ]]; then
  exec unshare --mount --propagation private env BENCH_NS=1 "$0" "$@"
fi
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
# Warm up: the images into the page cache and one pass of the binary over
# them, so that the first figures are not those of a machine still busy
# with the build above (the first image measured 1.6x its later figures).
for f in "$lab"/images/*.img; do "$bin" inspect "$f" >/dev/null; done

# "early" below is the offset of the last (compressed) segment: the
# uncompressed segments before it (early archives, and the plain archive
# some generators put before the compressed one) are not decompressed.
# The lab's Debian unstable root has 3cpio (dracut pulls it in); the lab
# directory is bound into it so that it reads the very same files.
sid=""
# shellcheck disable=SC1091
for r in $(. "$lab/lab.env"; echo "${LAB_RELEASES:-}"); do
  if [[ $(. "$r/lab.env"; echo "$LAB_RELEASE") == sid ]]; then sid=$(. "$r/lab.env"; echo "$LAB_ROOT"); fi
done
if [[ -n $sid && -x $sid/usr/bin/3cpio ]]; then
  mount --bind "$lab" "$sid/mnt"
  echo "3cpio: $(chroot "$sid" 3cpio --version 2>&1 | head -n 1), run in $sid"
else
  echo "bench.sh: no 3cpio in the lab's unstable root; its columns are left out" >&2
  sid=""
fi
# want SECTION: whether BENCH_ONLY selects the section.
want() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }
# goal NAME RATIO LIMIT: records one of issue 17's figures.
goals=()
goal() { goals+=("$(printf '%-58s %7s  (goal <= %s)  %s' "$1" "$2" "$3" "$(awk -v r="${2%x}" -v l="$3" 'BEGIN{print (r <= l) ? "met" : "MISSED"}')")"); }

# Every image of the lab's first release; lsinitramfs, unmkinitramfs and
# lsinitrd only on the six images the earlier figures used (they take
# minutes on the slow codecs and say nothing new there).
for f in "$lab"/images/*.img; do
  want read || want repack || break
  img=$(basename "$f" .img)
  json=$("$bin" inspect --json "$f")
  comp=$(jq -r '.segments[-1].compression' <<<"$json")
  early=$(jq -r '.segments[-1].offset' <<<"$json")
  [[ -n ${dec[$comp]:-} ]] || continue
  tail_cmd="tail -c +$((early + 1)) '$f'"
  cli="${dec[$comp]%% *} -dc"
  echo
  echo "== $img ($(du -h "$f" | cut -f1), $comp after $early uncompressed bytes)"
  if want read; then
  names=(inspect "inspect --files" "$cli")
  measure "inspect" "'$bin' inspect '$f'"
  measure "inspect --files" "'$bin' inspect --files '$f'"
  measure "$cli" "$tail_cmd | ${dec[$comp]}"
  if [[ -n $sid ]]; then
    measure "3cpio -tv" "chroot '$sid' 3cpio -tv '/mnt/${f#"$lab"/}'"
    measure "unstable $cli" "$tail_cmd | chroot '$sid' ${dec[$comp]}"
    names+=("3cpio -tv" "unstable $cli")
  fi
  case $img in
    itools-zstd | itools-gzip | itools-xz | itools-lz4 | dracut-sd-zstd | dracut-nosd-gzip)
      measure "lsinitramfs" "lsinitramfs '$f'"
      measure "unmkinitramfs" "rm -rf '$tmp/u' && unmkinitramfs '$f' '$tmp/u'"
      measure "lsinitrd" "lsinitrd '$f'"
      names+=(lsinitramfs unmkinitramfs lsinitrd)
      ;;
  esac
  for n in "${names[@]}"; do row "$n"; done
  printf 'inspect / %s = %s' "$cli" "$(ratio inspect "$cli")"
  goal "$img: inspect / $cli" "$(ratio inspect "$cli")" 1.00
  if [[ -n $sid ]]; then
    printf '   inspect --files / 3cpio -tv = %s   inspect / unstable %s = %s' \
      "$(ratio "inspect --files" "3cpio -tv")" "$cli" "$(ratio inspect "unstable $cli")"
    goal "$img: inspect --files / 3cpio -tv" "$(ratio "inspect --files" "3cpio -tv")" 1.00
  fi
  if [[ -n ${T[lsinitramfs]:-} ]]; then
    printf '   inspect / lsinitramfs = %s   inspect / lsinitrd = %s' "$(ratio inspect lsinitramfs)" "$(ratio inspect lsinitrd)"
    unset 'T[lsinitramfs]'
  fi
  echo
  fi
  # repack to the image's own codec against decompressing and compressing
  # with the codec's CLI at the same settings (zstd: 2 threads, as our
  # encoder uses every CPU); xz only with BENCH_XZ=1 (minutes per run).
  enc=${encp[$comp]:-}
  case $img in itools-zstd | itools-gzip | itools-lz4 | dracut-sd-zstd | dracut-nosd-gzip | itools-xz) ;; *) enc="" ;; esac
  if want repack && [[ -n $enc ]] && [[ $comp != xz || ${BENCH_XZ:-} == 1 ]]; then
    r="repack --compress $comp"
    p="$cli | $enc"
    measure "$r" "'$bin' repack -q --compress $comp '$f' '$tmp/out.img'"
    measure "$p" "{ head -c $early '$f'; $tail_cmd | ${dec[$comp]} | $enc; } > '$tmp/pipe.img'"
    row "$r"
    row "$p"
    printf 'repack / pipeline = %s   sizes: repack %s, pipeline %s\n' "$(ratio "$r" "$p")" \
      "$(stat -c %s "$tmp/out.img")" "$(stat -c %s "$tmp/pipe.img")"
  fi
done

# build (issues 3 and 17): the rescue image in append mode, with the rescue
# preset and strip only, against the decompression floor of its input (the
# codec's CLI decompressing the same stream), on the bookworm images of
# each generator and codec family the goals name; and, for itools-zstd,
# against regenerating an initrd with the generators themselves (in the lab
# root, as the lab does).
# shellcheck disable=SC1091
. "$lab/lab.env"
for img in itools-zstd dracut-sd-zstd itools-gzip dracut-sd-baked-xz; do
  want build || break
  f="$lab/images/$img.img"
  [[ -f $f ]] || continue
  json=$("$bin" inspect --json "$f")
  comp=$(jq -r '.segments[-1].compression' <<<"$json")
  early=$(jq -r '.segments[-1].offset' <<<"$json")
  cli="${dec[$comp]%% *} -dc"
  echo
  echo "== build --mode append ($img)"
  # --preset none: strip only; the default preset also adds the rescue
  # programs from the lab root with their libraries; --drivers none keeps
  # the image's own drivers (the drivers section measures the classes).
  common="'$bin' build -q --force --mode append --input '$f' --kver '$LAB_KVER' --output '$tmp/rescue.img'"
  measure "build --preset none" "$common --preset none --drivers none"
  measure "build (rescue preset)" "$common --drivers none --root '$LAB_ROOT'"
  measure "build (rescue preset, all drivers)" "$common --root '$LAB_ROOT'"
  measure "$cli" "tail -c +$((early + 1)) '$f' | ${dec[$comp]}"
  names=("build --preset none" "build (rescue preset)" "build (rescue preset, all drivers)" "$cli")
  if [[ $img == itools-zstd ]]; then
    # The generators need /proc, /sys and /dev in the root; one run each.
    root=$LAB_ROOT
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    saved=$runs runs=1
    measure "mkinitramfs -c zstd" "chroot '$root' mkinitramfs -c zstd -o /tmp/bench-itools.img '$LAB_KVER'"
    measure "dracut --zstd" "chroot '$root' dracut --force --no-hostonly --zstd /tmp/bench-dracut.img '$LAB_KVER'"
    runs=$saved
    umount "$root/proc" "$root/sys" "$root/dev"
    rm -f "$root/tmp/bench-itools.img" "$root/tmp/bench-dracut.img"
    names+=("mkinitramfs -c zstd" "dracut --zstd")
  fi
  for n in "${names[@]}"; do row "$n"; done
  printf 'build --preset none / %s = %s   build (rescue preset) / %s = %s   all drivers / %s = %s\n' \
    "$cli" "$(ratio "build --preset none" "$cli")" "$cli" "$(ratio "build (rescue preset)" "$cli")" \
    "$cli" "$(ratio "build (rescue preset, all drivers)" "$cli")"
  goal "$img: build --mode append --preset none / $cli" "$(ratio "build --preset none" "$cli")" 1.30
  goal "$img: build (rescue preset) / $cli" "$(ratio "build (rescue preset)" "$cli")" 2.00
  # The command's default: every driver class (the loop below covers the
  # preset with --drivers none on every image).
  goals+=("$(printf '%-58s %4s MiB  (goal <= 64 MiB)  %s' "$img: build (rescue preset, all drivers) peak RSS" "$((M["build (rescue preset, all drivers)"] / 1024))" \
    "$( ((M["build (rescue preset, all drivers)"] <= 64 * 1024)) && echo met || echo MISSED)")")
  if [[ $img == itools-zstd ]]; then
    printf 'mkinitramfs / build = %s   dracut / build = %s\n' \
      "$(ratio "mkinitramfs -c zstd" "build (rescue preset)")" "$(ratio "dracut --zstd" "build (rescue preset)")"
  fi
done

# build memory (issue 17): the rescue preset's peak RSS on every image of
# the lab, one run each, beside the peak RSS of the codec's CLI decoding
# the same stream (an lzma stream's 64 MiB dictionary is the floor's own).
if want build; then
  echo
  echo "== build (rescue preset) peak RSS on every image, against the decoder's CLI"
  saved=$runs runs=1
  for f in "$lab"/images/*.img; do
    img=$(basename "$f" .img)
    json=$("$bin" inspect --json "$f")
    comp=$(jq -r '.segments[-1].compression' <<<"$json")
    early=$(jq -r '.segments[-1].offset' <<<"$json")
    [[ -n ${dec[$comp]:-} ]] || continue
    measure "build $img" "'$bin' build -q --force --mode append --input '$f' --kver '$LAB_KVER' --output '$tmp/rescue.img' --drivers none --root '$LAB_ROOT'"
    measure "floor $img" "tail -c +$((early + 1)) '$f' | ${dec[$comp]}"
    printf '%-26s %-6s build %4s MiB (%ss)   %s %4s MiB\n' "$img" "$comp" "$((M["build $img"] / 1024))" "${T["build $img"]}" \
      "${dec[$comp]%% *} -dc" "$((M["floor $img"] / 1024))"
    goals+=("$(printf '%-58s %4s MiB  (goal <= 64 MiB)  %s' "$img: build (rescue preset) peak RSS" "$((M["build $img"] / 1024))" \
      "$( ((M["build $img"] <= 64 * 1024)) && echo met || echo "MISSED (${dec[$comp]%% *} -dc alone: $((M["floor $img"] / 1024)) MiB)")")")
  done
  runs=$saved
fi

# drivers (issue 11): for each release of the lab, the first image of each
# family, and the host-only images, built with the release's root:
# --drivers none (the image's own drivers: a rescue for this machine only)
# beside the default (every class: a generic rescue for replacement
# hardware). Prints what each class adds, the
# output sizes and the build times as ratios.
if want drivers; then
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
fi

# overlay (issue 4): the rescue preset's library closure against running ldd
# once per program in a chroot of the lab root; the test checks both give the
# same libraries and prints the ratio.
if want closure; then
echo
echo "== rescue preset closure vs ldd (lab root)"
(cd "$here" && INITRD_REMIX_LAB=$lab go test -count=1 -v -run 'TestPresetClosureVsLdd' ./overlay/ 2>&1 | grep -E 'closure|ldd|PASS|FAIL' | head -n 10)
fi

# lzmacore (issue 17): where the LZMA decoder stands against liblzma, one
# core each. xz-utils 5.6 and later decode with x86-64 inline assembly by
# default; the same source with LZMA_RANGE_DECODER_CONFIG=0 is its portable
# C decoder, the fair reference for a decoder in pure Go. The source is
# Debian unstable's, found through its signed InRelease and Sources index
# (each file checked against the one before), built once into
# ~/.cache/initrd-remix/xz-VERSION.
if want lzmacore; then
  echo
  mirror=http://deb.debian.org/debian
  xzc=""
  mkdir -p "$tmp/xz"
  if curl -fsS -o "$tmp/xz/InRelease" "$mirror/dists/sid/InRelease" &&
    gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg --output "$tmp/xz/Release" "$tmp/xz/InRelease" 2>/dev/null &&
    curl -fsS -o "$tmp/xz/Sources.xz" "$mirror/dists/sid/main/source/Sources.xz"; then
    sum=$(awk '/^SHA256:/ {on = 1; next} /^[^ ]/ {on = 0} on && $3 == "main/source/Sources.xz" {print $1}' "$tmp/xz/Release")
    [[ -n $sum && $(sha256sum <"$tmp/xz/Sources.xz" | cut -d' ' -f1) == "$sum" ]] ||
      { echo "bench.sh: Sources.xz does not match the signed Release" >&2; exit 1; }
    # The xz-utils stanza: its version and its upstream tarball's hash.
    read -r ver sum name < <(xz -dc "$tmp/xz/Sources.xz" | awk '
      /^Package: / {pkg = $2; ver = ""; on = 0}
      pkg == "xz-utils" && /^Version: / {ver = $2}
      pkg == "xz-utils" && /^Checksums-Sha256:/ {on = 1; next}
      /^[^ ]/ {on = 0}
      on && $3 ~ /\.orig\.tar\.xz$/ {print ver, $1, $3; exit}')
    up=${ver#*:} up=${up%-*}
    xzc=$HOME/.cache/initrd-remix/xz-$up
    [[ -n $name ]] || echo "bench.sh: no xz-utils source in Debian unstable's index; lzmacore left out" >&2
    if [[ -n $name && ! ( -x $xzc/c/xz && -x $xzc/asm/xz ) ]]; then
      { command -v gcc && command -v make; } >/dev/null || apt-get install -y -qq gcc make >/dev/null
      curl -fsS -o "$tmp/xz/src.tar.xz" "$mirror/pool/main/x/xz-utils/$name" &&
        [[ $(sha256sum <"$tmp/xz/src.tar.xz" | cut -d' ' -f1) == "$sum" ]] ||
        { echo "bench.sh: $name is missing or does not match Sources" >&2; exit 1; }
      rm -rf "$xzc.tmp" && mkdir -p "$xzc.tmp"
      for kind in asm c; do
        cflags="-O2"
        [[ $kind == c ]] && cflags="-O2 -DLZMA_RANGE_DECODER_CONFIG=0"
        mkdir -p "$tmp/xz/$kind" && tar -xf "$tmp/xz/src.tar.xz" -C "$tmp/xz/$kind" --strip-components=1
        (cd "$tmp/xz/$kind" && ./configure -q --disable-shared --enable-static --disable-nls --disable-doc \
          --disable-scripts --disable-xzdec --disable-lzmadec --disable-lzmainfo CFLAGS="$cflags" >/dev/null &&
          make -s -j"$(nproc)" >/dev/null 2>&1) || { echo "bench.sh: building xz-utils $up ($kind) failed" >&2; exit 1; }
        mkdir -p "$xzc.tmp/$kind" && cp "$tmp/xz/$kind/src/xz/xz" "$xzc.tmp/$kind/xz"
      done
      rm -rf "$xzc" && mv "$xzc.tmp" "$xzc"
    fi
  else
    echo "bench.sh: Debian unstable's signed source index is not reachable; lzmacore left out" >&2
  fi
  if [[ -x $xzc/c/xz && -x $xzc/asm/xz ]]; then
    echo "== LZMA, one core: inspect against xz-utils $up built with the portable C and the x86-64 assembly range decoder"
    for f in "$lab"/images/*.img; do
      json=$("$bin" inspect --json "$f")
      comp=$(jq -r '.segments[-1].compression' <<<"$json")
      [[ $comp == lzma || $comp == xz ]] || continue
      early=$(jq -r '.segments[-1].offset' <<<"$json")
      img=$(basename "$f" .img)
      tail -c +$((early + 1)) "$f" >"$tmp/stream"
      # inspect on one core (GOMAXPROCS=1: an xz stream's blocks are not
      # spread, and the listing shares the core) against decoding alone.
      measure "inspect (GOMAXPROCS=1)" "GOMAXPROCS=1 '$bin' inspect '$f'"
      measure "xz $up -T1 -dc (C)" "'$xzc/c/xz' -T1 -dc --format=$comp '$tmp/stream'"
      measure "xz $up -T1 -dc (asm)" "'$xzc/asm/xz' -T1 -dc --format=$comp '$tmp/stream'"
      echo "-- $img ($comp)"
      for n in "inspect (GOMAXPROCS=1)" "xz $up -T1 -dc (C)" "xz $up -T1 -dc (asm)"; do row "$n"; done
      printf 'inspect / C = %s   inspect / asm = %s   C / asm = %s\n' "$(ratio "inspect (GOMAXPROCS=1)" "xz $up -T1 -dc (C)")" \
        "$(ratio "inspect (GOMAXPROCS=1)" "xz $up -T1 -dc (asm)")" "$(ratio "xz $up -T1 -dc (C)" "xz $up -T1 -dc (asm)")"
    done
  fi
fi

echo
echo "== goals (issue 17)"
printf '%s\n' "${goals[@]}"
