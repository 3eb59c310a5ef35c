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
# newc headers itself in perl (perl-base is essential in Debian), seeking
# over the bodies: initramfs-tools 0.148 and dracut 106 on keep the kernel
# modules in a long uncompressed archive before the compressed one, a
# thousand entries and more.
first_segment_info() {
  perl -e '
    use strict; use warnings;
    my $img = shift;
    open(my $f, "<:raw", $img) or die "$img: $!\n";
    my $size = -s $f;
    my ($off, @mc) = (0);
    sub at { my ($o, $n) = @_; seek($f, $o, 0) or return ""; my $b = ""; read($f, $b, $n); return $b }
    SEG: while ($off < $size) {
      # Skip zero padding between segments.
      my $chunk = at($off, 4096);
      if ($chunk =~ /^(\0*)/ && length($1) == length($chunk)) {
        last SEG if length($chunk) == 0;
        $off += length($chunk); next SEG;
      }
      $off += length($1);
      last SEG unless at($off, 6) =~ /^07070[12]$/;
      # One uncompressed newc archive: walk to its trailer.
      while ($off < $size) {
        my $hdr = at($off, 110);
        if ($hdr !~ /^07070[12]/ || length($hdr) < 110) { print "- corrupt-cpio\@$off\n"; exit 0 }
        my $filesize = hex(substr($hdr, 54, 8));
        my $namesize = hex(substr($hdr, 94, 8));
        my $name = at($off + 110, $namesize - 1);
        $off += 110 + $namesize; $off = ($off + 3) & ~3;
        $off += $filesize;       $off = ($off + 3) & ~3;
        last if $name eq "TRAILER!!!";
        push @mc, $1 if $name =~ m{^kernel/x86/microcode/([^/]*)\.bin$};
      }
    }
    my $magic = "none";
    if ($off < $size) {
      my $hex = unpack("H*", at($off, 6));
      $magic = $hex =~ /^1f8b|^1f9e/ ? "gzip"
        : $hex =~ /^28b52ffd/ ? "zstd"
        : $hex =~ /^fd377a585a00/ ? "xz"
        : $hex =~ /^02214c18/ ? "lz4"
        : $hex =~ /^425a68/ ? "bzip2"
        : $hex =~ /^5d0000/ ? "lzma"
        : $hex =~ /^894c5a4f/ ? "lzo"
        : $hex =~ /^30373037303[12]/ ? "cpio"
        : "unknown:$hex";
    }
    print((@mc ? join(",", @mc) : "-"), " $magic\n");
  ' "$1"
}
