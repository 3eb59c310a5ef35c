#!/usr/bin/env bash
# sid-initramfs-tools.sh ROOT: gives a Debian unstable root made by
# debootstrap both generators, as the other releases' roots have them.
#
# In sid the kernel depends on "dracut | initramfs-tools", and dracut (the
# package of the kernel hooks, not dracut-core) conflicts with
# initramfs-tools. debootstrap always takes the first alternative, so the
# root is made with dracut and without initramfs-tools and
# cryptsetup-initramfs; apt then installs those two, which removes dracut
# and keeps dracut-core. The lab makes its images by calling the generators,
# not through the kernel's hooks, so nothing is lost. update-initramfs is
# held off meanwhile (initramfs-tools' trigger would build an image the lab
# builds later anyway).
set -euo pipefail
r=${1:?usage: sid-initramfs-tools.sh ROOT}
in_root() { chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }
mount -t proc proc "$r/proc"
trap 'umount "$r/proc"' EXIT
in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.lab --add /usr/sbin/update-initramfs
printf '#!/bin/sh\n# held off by the lab while initramfs-tools is installed\nexit 0\n' >"$r/usr/sbin/update-initramfs"
chmod 0755 "$r/usr/sbin/update-initramfs"
# A frozen mirror (a snapshot) serves an expired Release file: apt, unlike
# debootstrap, checks its Valid-Until unless told not to.
in_root apt-get -q -o Acquire::Check-Valid-Until=false update
in_root apt-get -q -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io install initramfs-tools cryptsetup-initramfs
rm "$r/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.lab --remove /usr/sbin/update-initramfs
in_root apt-get -q clean
# What the lab needs: both generators and no dracut hook package.
in_root dpkg-query -W -f '${Package} ${Version} ${Status}\n' initramfs-tools dracut-core cryptsetup-initramfs
! in_root dpkg-query -W -f '${Status}\n' dracut 2>/dev/null | grep -q 'install ok installed' ||
  { echo "sid-initramfs-tools.sh: dracut is still installed" >&2; exit 1; }
test -x "$r/usr/sbin/mkinitramfs" && test -x "$r/usr/bin/dracut"
