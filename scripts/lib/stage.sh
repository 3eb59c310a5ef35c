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
