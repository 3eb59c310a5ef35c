# Helpers of scripts/lab.sh (sourced; bash).

# apt_mirror prints the URI of the host's apt source for Debian 12
# (suite "bookworm"), from deb822 /etc/apt/sources.list.d/*.sources stanzas
# or one-line /etc/apt/sources.list{,.d/*.list} entries. Prints nothing when
# none is configured.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && enabled !~ /^(no|false|0)$/ && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^[ \t]+/, "")
        if (key == "types") types = $0
        else if (key == "suites") suites = $0
        else if (key == "uris") uris = $0
        else if (key == "enabled") enabled = tolower($0) }
      END { if (!found) flush() }
    ' "$f" | head -n 1
  done | head -n 1 | grep . && return 0
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
      if ($(i + 1) == "bookworm") { print $i; exit }
    }' | head -n 1
  return 0
}

# first_segment_info IMAGE prints two words about an initrd: the names of
# the early microcode files found in its leading uncompressed cpio archives
# ("-" for none, else a comma list such as GenuineIntel,AuthenticAMD), and
# the format of the first segment after them, by magic number (gzip, zstd,
# xz, lz4, bzip2, lzma, lzo, cpio, none, or unknown:<hex>). It walks the
# newc headers itself, so it needs nothing but coreutils.
first_segment_info() {
  local img=$1 off=0 size mc=() hdr magic namesize filesize name pad
  size=$(stat -c %s "$img") || return 1
  while ((off < size)); do
    # Skip zero padding between segments.
    local z
    z=$(tail -c +$((off + 1)) "$img" | head -c 4096 | od -An -tx1 -v | awk '
      BEGIN { n = 0 }
      { for (i = 1; i <= NF; i++) { if ($i != "00") { print n; exit } n++ } }
      END { print "zero", n }' | head -n 1)
    case $z in
      "zero 0") off=$size; break ;;               # end of file
      zero*) off=$((off + ${z#zero })); continue ;; # 4 KiB of zeros
    esac
    off=$((off + z))
    magic=$(tail -c +$((off + 1)) "$img" | head -c 6 | od -An -tx1 -v | tr -d ' \n')
    [[ $magic == 30373037303[12] ]] || break
    # One uncompressed newc archive: walk to its trailer. Early microcode
    # archives are small, but initramfs-tools 0.148 and dracut 106 also
    # keep the kernel modules in a long uncompressed archive before the
    # compressed one.
    while ((off < size)); do
      hdr=$(tail -c +$((off + 1)) "$img" | head -c 110)
      [[ ${hdr:0:6} == 07070[12] ]] || { echo "- corrupt-cpio@$off"; return 0; }
      filesize=$((16#${hdr:54:8}))
      namesize=$((16#${hdr:94:8}))
      name=$(tail -c +$((off + 111)) "$img" | head -c $((namesize - 1)))
      off=$((off + 110 + namesize))
      off=$(((off + 3) & ~3))
      off=$((off + filesize))
      off=$(((off + 3) & ~3))
      [[ $name == TRAILER!!! ]] && break
      case $name in
        kernel/x86/microcode/*.bin) name=${name##*/}; mc+=("${name%.bin}") ;;
      esac
    done
  done
  if ((off >= size)); then
    magic=none
  else
    local hex
    hex=$(tail -c +$((off + 1)) "$img" | head -c 6 | od -An -tx1 -v | tr -d ' \n')
    case $hex in
      1f8b*|1f9e*) magic=gzip ;;
      28b52ffd*) magic=zstd ;;
      fd377a585a00*) magic=xz ;;
      02214c18*) magic=lz4 ;;
      425a68*) magic=bzip2 ;;
      5d0000*) magic=lzma ;;
      894c5a4f*) magic=lzo ;;
      303730373031*|303730373032*) magic=cpio ;;
      *) magic=unknown:$hex ;;
    esac
  fi
  local IFS=,
  echo "${mc[*]:--} $magic"
}
