#!/usr/bin/env bash
# ssh-lab.sh: builds the --root of the SSH rescue tests (TestSSHLab): copies
# of the lab's Debian roots with an SSH server installed by apt, and prints
# its directory as the last line of stdout.
#
#   ssh-lab.sh [LAB_DIR]        (default: $INITRD_REMIX_LAB)
#
# The lab roots have no SSH server. In a copy of each root (the lab itself is
# never written), apt-get installs openssh-server without recommends, in a
# private mount namespace, with no service started (policy-rc.d):
#   bookworm/   the lab's Debian 12 root + openssh-server (OpenSSH 9.2: one
#               sshd binary)
#   trixie/     the lab's Debian 13 root + openssh-server (OpenSSH 10.0:
#               sshd execs sshd-session and sshd-auth)
#   dropbear/   the lab's Debian 12 root + dropbear-bin only (no OpenSSH)
#   dhcpcd/     the lab's Debian 13 root + openssh-server and dhcpcd-base,
#               busybox removed: a root whose DHCP client is dhcpcd (as a
#               minimal Debian 13 install), so build --ssh cannot fall back
#               to busybox's udhcpc
#   networkd/   the lab's Debian 12 root + openssh-server, busybox removed:
#               no DHCP client but systemd-networkd (part of systemd there)
# The package installations generate host keys in /etc/ssh and
# /etc/dropbear; they are removed (the rescue brings its own). ssh.env names the roots and the
# OpenSSH versions.
#
# Cached as ~/.cache/initrd-remix/ssh-<hash of this script and the lab>;
# built in a temporary directory and renamed when complete; concurrent runs
# wait on a lock. About 2 minutes. Needs root, network access to
# deb.debian.org (the packages are kept in ~/.cache/initrd-remix/debs/ssh-REL),
# unshare, chroot, flock.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lab=${1:-${INITRD_REMIX_LAB:-}}
[[ -n $lab && -f $lab/lab.env ]] || { echo "ssh-lab.sh: no lab (give LAB_DIR or set INITRD_REMIX_LAB)" >&2; exit 64; }
lab=$(cd "$lab" && pwd -P)
[[ $(id -u) == 0 ]] || { echo "ssh-lab.sh: must run as root (chroot, mounts)" >&2; exit 1; }
for tool in unshare chroot flock; do
  command -v "$tool" >/dev/null || { echo "ssh-lab.sh: $tool not found" >&2; exit 1; }
done
log() { echo "ssh-lab.sh: $*" >&2; }
# shellcheck source=lib/stage.sh
source "$here/lib/stage.sh"
stage_begin ssh ssh.env "$lab"
work=$stage_work
cache=${XDG_CACHE_HOME:-$HOME/.cache}/initrd-remix

# build NAME SRC_ROOT PACKAGE SERVER: the copy $work/NAME with PACKAGE,
# which must bring the program SERVER.
build() {
  local name=$1 src=$2 pkg=$3 server=$4 r=$work/$1
  log "$name: copying $src"
  cp -ax "$src" "$r"
  log "$name: installing $pkg (log: apt-$name.log)"
  # shellcheck disable=SC2086 # PKG may name several packages
  stage_apt_install "$r" "$cache/debs/ssh-$name" "$work/apt-$name.log" $pkg || { log "$name: apt-get failed"; return 1; }
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/lab-images "$r"/etc/ssh/ssh_host_* "$r"/etc/dropbear/dropbear_*_host_key
  [[ -x $r$server ]] || { log "$name: no $server after apt-get"; return 1; }
}

# shellcheck disable=SC1091
bookworm_root=$(. "$lab/lab.env"; echo "$LAB_ROOT")
trixie_root=$(. "$lab/releases/trixie/lab.env"; echo "$LAB_ROOT")
build bookworm "$bookworm_root" openssh-server /usr/sbin/sshd &
b1=$!
build trixie "$trixie_root" openssh-server /usr/sbin/sshd &
b2=$!
build dropbear "$bookworm_root" dropbear-bin /usr/sbin/dropbear &
b3=$!
build dhcpcd "$trixie_root" "openssh-server dhcpcd-base" /usr/sbin/dhcpcd &
b4=$!
build networkd "$bookworm_root" openssh-server /usr/sbin/sshd &
b5=$!
rc=0
wait $b1 || rc=1
wait $b2 || rc=1
wait $b3 || rc=1
wait $b4 || rc=1
wait $b5 || rc=1
((rc == 0)) || exit 1
# No busybox in the dhcpcd and networkd roots (the binary only: the
# package's other files do not matter to a build).
for r in dhcpcd networkd; do
  rm -f "$work/$r"/usr/bin/busybox "$work/$r"/usr/sbin/busybox "$work/$r"/bin/busybox
done
for c in sbin/dhcpcd sbin/dhclient bin/busybox; do
  [[ ! -e $work/networkd/usr/$c ]] || { log "networkd: the root has /usr/$c"; exit 1; }
done
[[ ! -e $work/dropbear/usr/sbin/sshd ]] || { log "dropbear: the root has OpenSSH too"; exit 1; }
ver() { chroot "$work/$1" dpkg-query -W -f '${Version}' "${2:-openssh-server}"; }
{
  echo "# initrd-remix ssh lab $stage_hash ($(basename "$lab")), built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - stage_t0)) s"
  echo "SSH_BOOKWORM_ROOT=$stage_dir/bookworm"
  echo "SSH_BOOKWORM_OPENSSH=$(ver bookworm)"
  echo "SSH_TRIXIE_ROOT=$stage_dir/trixie"
  echo "SSH_TRIXIE_OPENSSH=$(ver trixie)"
  echo "SSH_DROPBEAR_ROOT=$stage_dir/dropbear"
  echo "SSH_DROPBEAR_VERSION=$(ver dropbear dropbear-bin)"
  echo "SSH_DHCPCD_ROOT=$stage_dir/dhcpcd"
  echo "SSH_DHCPCD_VERSION=$(ver dhcpcd dhcpcd-base)"
  echo "SSH_NETWORKD_ROOT=$stage_dir/networkd"
  echo "SSH_NETWORKD_VERSION=$(ver networkd systemd)"
} >"$work/ssh.env"
stage_commit .
