# stage.sh: the cache discipline of the lab's derived stages (testbed,
# mkosi-initrd, ...), sourced by their scripts (bash).
#
#   source "$here/lib/stage.sh"
#   stage_begin NAME DONEFILE LAB_DIR [EXTRA...]
#
# The stage's directory is ~/.cache/initrd-remix/NAME-HASH, HASH being the
# sha256 of the calling script, the real name of the lab directory (its
# hash of the lab recipe; a link such as lab-current would key every lab to
# one stage) and EXTRA. A stage is complete when DONEFILE exists in it:
# stage_begin then prints the directory and exits 0. Otherwise it takes the
# stage's lock (concurrent runs wait, then find it complete) and sets
#   stage_dir   where the result goes (absent until stage_commit)
#   stage_work  a private temporary directory on the same file system,
#               removed on exit
#   stage_hash  the hash
#   stage_t0    $SECONDS at the start
# The script builds in $stage_work and ends with stage_commit SUBDIR, which
# renames $stage_work/SUBDIR (or $stage_work itself when SUBDIR is ".")
# into place atomically, logs and prints the directory.

stage_begin() {
  local name=$1 done=$2 lab=$3
  shift 3
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix
  mkdir -p "$cache"
  stage_name=$name
  stage_hash=$( { sha256sum <"$0"; echo "${lab##*/}"; printf '%s\n' "$@"; } | sha256sum | cut -c1-12)
  stage_dir=$cache/$name-$stage_hash
  if [[ -f $stage_dir/$done ]]; then
    echo "$stage_dir"
    exit 0
  fi
  exec 9>"$cache/.lock-$name-$stage_hash"
  flock 9
  if [[ -f $stage_dir/$done ]]; then
    echo "$stage_dir"
    exit 0
  fi
  stage_work=$(mktemp -d "$cache/.$name-$stage_hash-XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$stage_work'" EXIT
  stage_t0=$SECONDS
}

stage_commit() {
  local sub=${1:-.}
  if [[ $sub == . ]]; then
    mv "$stage_work" "$stage_dir"
  else
    mv "$stage_work/$sub" "$stage_dir"
  fi
  echo "$(basename "$0"): built $stage_dir in $((SECONDS - stage_t0)) s" >&2
  echo "$stage_dir"
}

# stage_apt_install ROOT DEBS LOG PKG...: apt-get installs PKG (without
# recommends) in the copy ROOT of a lab root, in a private mount namespace
# (proc, sys, dev bound in; the packages kept in DEBS, bound onto its
# archive cache), with no service started (policy-rc.d) and Release files
# taken as valid past their date (the lab's sid mirror). Output in LOG; on
# failure its last lines go to stderr and it returns 1.
stage_apt_install() {
  local r=$1 debs=$2 log=$3
  shift 3
  mkdir -p "$debs/partial" "$r/proc" "$r/sys" "$r/dev" "$r/run"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  # shellcheck disable=SC2016
  if ! unshare --mount --propagation private bash -euc '
r=$1 debs=$2
shift 2
for d in proc sys dev; do mount --rbind "/$d" "$r/$d"; done
mount --bind "$debs" "$r/var/cache/apt/archives"
printf "#!/bin/sh\nexit 101\n" >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
trap '\''rm -f "$r/usr/sbin/policy-rc.d"'\'' EXIT
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive /bin/sh -euc '\''
apt-get -o Acquire::Check-Valid-Until=false update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
'\'' sh "$@"
' bash "$r" "$debs" "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    return 1
  fi
}
