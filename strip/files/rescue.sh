#!/bin/sh
# initrd-remix rescue entry point, added to the image by `initrd-remix build`.
# The distribution's own boot has loaded modules, started udev and coldplugged
# devices; the generator's storage steps were neutralised. This script runs
# the embedded payload, then a shell on the console, forever: leaving the
# shell starts a new one and never continues into a normal boot.
# Kernel argument initrd_remix.payload=0 skips the payload.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
# mdadm.conf says AUTO -all so that nothing assembles arrays on its own (udev,
# the generator's scripts); mdadm(8) puts MDADM_CONF_AUTO before the file's
# AUTO words and the first match wins, so `mdadm --assemble --scan` typed
# here (or in the payload) assembles what it finds, as the banner says.
MDADM_CONF_AUTO=+all
export PATH MDADM_CONF_AUTO
payload=/usr/lib/initrd-remix/payload

# PID 1 only when a shell-based generator exec'd us; under systemd we are a
# service on the console and systemd owns the mounts.
if [ "$$" = 1 ]; then
	[ -e /proc/self ] || mount -t proc -o nosuid,nodev,noexec proc /proc
	[ -d /sys/kernel ] || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
	[ -e /dev/null ] || mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
	run=
	while read -r _ mnt _; do [ "$mnt" = /run ] && run=1; done </proc/mounts
	[ -n "$run" ] || mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
	exec </dev/console >/dev/console 2>&1
	# busybox poweroff/reboot/halt signal PID 1; a shell PID 1 ignores
	# signals it does not trap, so turn them into the real thing.
	trap 'sync; echo o >/proc/sysrq-trigger' USR2
	trap 'sync; echo o >/proc/sysrq-trigger' USR1
	trap 'sync; echo b >/proc/sysrq-trigger' TERM
	trap '' INT QUIT TSTP
fi
mkdir -p /run/initrd-remix

# dracut installs lvm without its command links; lvm runs the command it is
# called as, so links make the banner's vgchange (and lvs, pvscan...) work.
if ! command -v vgchange >/dev/null 2>&1 && lvm=$(command -v lvm); then
	mkdir -p /run/initrd-remix/bin
	for c in vgchange vgscan vgs vgdisplay vgcfgrestore lvchange lvscan lvs lvdisplay pvscan pvs pvdisplay; do
		ln -sf "$lvm" "/run/initrd-remix/bin/$c"
	done
	PATH=$PATH:/run/initrd-remix/bin
fi

# Coldplug may still be running (modules, firmware): let it finish, as the
# distribution would before mounting the root.
if command -v udevadm >/dev/null 2>&1; then
	udevadm settle --timeout=60 >/dev/null 2>&1
fi

# Hooks that build options added (--ssh: network and SSH server); what they
# want the banner to say they leave in /run/initrd-remix/banner.d.
mkdir -p /run/initrd-remix/banner.d
for hook in /usr/lib/initrd-remix/rescue.d/*; do
	[ -x "$hook" ] && "$hook"
done

skip=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	initrd_remix.payload=0) skip=1 ;;
	esac
done

echo
if [ -x "$payload" ] && [ -z "$skip" ]; then
	echo "initrd-remix: running payload $payload"
	"$payload"
	rc=$?
	echo "initrd-remix: payload exited with status $rc"
	echo "$rc" >/run/initrd-remix/payload-status
elif [ -n "$skip" ] && [ -x "$payload" ]; then
	echo "initrd-remix: payload skipped (initrd_remix.payload=0)"
fi

# The banner names only the storage tools this image has (the build may
# have been made with --preset none); each line is proven by a lab boot.
have() { command -v "$1" >/dev/null 2>&1; }
missing=
echo
echo "====================================================================="
echo " initrd-remix rescue system"
echo " This is the distribution's initrd with its storage steps disabled:"
echo " no md array was assembled, no LVM volume activated, no LUKS volume"
echo " opened, nothing was resumed, checked or mounted. Disks are untouched."
echo " To bring storage up by hand:"
if have mdadm; then
	echo "   mdadm --assemble --scan          (md RAID: /dev/md/NAME)"
else
	missing="$missing mdadm"
fi
if have vgchange; then
	echo "   vgchange -ay                     (LVM: /dev/VG/LV)"
else
	missing="$missing lvm"
fi
if have cryptsetup; then
	echo "   cryptsetup open DEVICE NAME      (LUKS: /dev/mapper/NAME)"
else
	missing="$missing cryptsetup"
fi
echo "   mount -o ro DEVICE /mnt          (leave out -o ro to write)"
[ -z "$missing" ] || echo " Not in this image:$missing (initrd-remix build --add PROGRAM)."
for f in /run/initrd-remix/banner.d/*; do
	[ -r "$f" ] || continue
	while IFS= read -r line; do echo "$line"; done <"$f"
done
echo " poweroff or reboot when done. Leaving the shell starts a new one."
echo "====================================================================="

ENV=/usr/lib/initrd-remix/shrc
export ENV
while :; do
	if [ "$$" = 1 ]; then
		# In the background so that the traps above fire at once.
		if command -v setsid >/dev/null 2>&1; then
			setsid -c sh -i </dev/console >/dev/console 2>&1 &
		else
			sh -i </dev/console >/dev/console 2>&1 &
		fi
		wait $!
	else
		sh -i
	fi
	echo "initrd-remix: the rescue shell ended; type poweroff or reboot to leave. New shell:"
	sleep 1 2>/dev/null
done
