#!/bin/sh
# initrd-remix rescue hook (build --ssh): brings the network up and starts
# the SSH server, then leaves the fingerprint and the addresses for the
# banner in /run/initrd-remix/banner.d/50-ssh. Network only: nothing here
# mounts or activates storage (no NFS, iSCSI or NBD root).
conf=/etc/initrd-remix/ssh/rescue.conf
[ -r "$conf" ] || exit 0
. "$conf"
PATH=/usr/sbin:/usr/bin:/sbin:/bin
bb=
[ -n "$BUSYBOX" ] && [ -x "$BUSYBOX" ] && bb=$BUSYBOX
# ip: the image's own (or the root's that the build added), else the root
# busybox's applet.
if ! command -v ip >/dev/null 2>&1 && [ -n "$bb" ]; then
	ip() { "$bb" ip "$@"; }
fi
log() { echo "initrd-remix: $*"; }

# initrd_remix.ip= on the kernel command line (the kernel's ip= syntax; a
# boot entry carries it, or type it at the boot menu) replaces the network
# the image was built with.
. /usr/lib/initrd-remix/ssh-ip.sh
set -f
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	initrd_remix.ip=*)
		if parse_ip "${arg#initrd_remix.ip=}"; then
			log "network from the kernel command line: ${arg#initrd_remix.ip=}"
		else
			log "ignoring $arg: not the kernel's ip= syntax"
		fi
		;;
	esac
done
set +f

# Every wired NIC: a device behind a bus, not wireless.
nics=
for n in /sys/class/net/*; do
	name=${n##*/}
	[ -e "$n/device" ] || continue
	[ -e "$n/wireless" ] || [ -e "$n/phy80211" ] && continue
	[ -z "$NET_DEVICE" ] || [ "$NET_DEVICE" = "$name" ] || continue
	nics="$nics $name"
done
ip link set dev lo up 2>/dev/null
[ -n "$NET_HOSTNAME" ] && echo "$NET_HOSTNAME" >/proc/sys/kernel/hostname

# The DHCP client the build chose (DHCP_CLIENT, DHCP_PROG: see "Reach the
# rescue over SSH" in the README for the order), with its directories and
# its user's home (dhcpcd chroots into it).
for d in $DHCP_DIRS $DHCP_HOME; do
	[ "$d" = / ] || { mkdir -p "$d" && chmod 755 "$d"; }
done
dhcp() {
	case $DHCP_CLIENT in
	udhcpc)
		# The root's busybox runs as "busybox udhcpc"; the image's
		# udhcpc is a link to its busybox or a program of its own.
		u=$DHCP_PROG
		[ -n "$bb" ] && [ "$DHCP_PROG" = "$bb" ] && u="$bb udhcpc"
		$u -i "$1" -s "$UDHCPC_SCRIPT" -t 10 -T 2 -A 5 -b -p "/run/initrd-remix/udhcpc.$1.pid" ;;
	dhcpcd)
		# IPv4 only, as the kernel's ip=; -w: back once it has an
		# address (or after -t seconds), then it keeps the lease.
		"$DHCP_PROG" -4 -w -t 30 -c "$DHCPCD_SCRIPT" -f /dev/null --noipv4ll \
			-o domain_name_servers -j /run/initrd-remix/dhcpcd.log "$1" ;;
	dhclient)
		"$DHCP_PROG" -4 -1 -sf "$DHCLIENT_SCRIPT" -cf /dev/null \
			-lf "/run/initrd-remix/dhclient.$1.leases" -pf "/run/initrd-remix/dhclient.$1.pid" "$1" ;;
	ipconfig)
		# klibc's ipconfig configures the device itself and leaves
		# what it got in /run/net-DEV.conf.
		"$DHCP_PROG" -t 20 -c dhcp -d "$1" >/dev/null && (
			. "/run/net-$1.conf" || exit
			[ "$IPV4GATEWAY" != 0.0.0.0 ] || IPV4GATEWAY=
			lease_log "$1" "$IPV4ADDR/$(mask_bits "$IPV4NETMASK")" ipconfig "$IPV4GATEWAY"
		) ;;
	*)
		log "$1: no DHCP client in this image" ;;
	esac
}

# systemd-networkd, run as a plain daemon: one .network file per NIC, then
# the addresses it got. ClientIdentifier=mac: its default, a DUID, is
# derived from /etc/machine-id, which a rescue need not have (networkd
# fails the link with "Failed to configure DHCPv4 client" without it).
networkd() {
	for n in $nics; do
		printf '[Match]\nName=%s\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n\n[DHCPv4]\nClientIdentifier=mac\n' "$n" \
			>"/run/systemd/network/90-initrd-remix-$n.network"
	done
	SYSTEMD_LOG_TARGET=console "$DHCP_PROG" </dev/null >>/run/initrd-remix/networkd.log 2>&1 &
	for n in $nics; do
		i=0
		while [ $i -lt 30 ]; do
			addr=$(ip -4 -o addr show dev "$n" 2>/dev/null | while read -r _ _ _ a _; do echo "$a"; break; done)
			[ -n "$addr" ] && break
			sleep 1
			i=$((i + 1))
		done
		if [ -n "$addr" ]; then
			lease_log "$n" "$addr" systemd-networkd
		else
			log "$n: no address from systemd-networkd after 30 s"
		fi
	done
}

case $NET_MODE in
dhcp)
	if [ "$DHCP_CLIENT" = systemd-networkd ]; then
		networkd
	else
		for n in $nics; do
			ip link set dev "$n" up
			dhcp "$n" &
		done
		wait
	fi
	;;
static)
	set -- $nics
	if [ -z "$1" ]; then
		log "no wired network card${NET_DEVICE:+ named $NET_DEVICE} for the static address $NET_ADDR"
	else
		ip addr add "$NET_ADDR" dev "$1" && ip link set dev "$1" up &&
			log "$1: $NET_ADDR (static)"
		[ -z "$NET_GATEWAY" ] || ip route replace default via "$NET_GATEWAY" dev "$1"
		if [ -n "$NET_DNS" ]; then
			: >/etc/resolv.conf
			for d in $NET_DNS; do echo "nameserver $d" >>/etc/resolv.conf; done
		fi
	fi
	;;
esac

# The SSH server: its privilege separation directory, ptys, then sshd.
for d in $SSHD_PRIVSEP; do
	mkdir -p "$d" && chmod 755 "$d"
done
if [ ! -e /dev/pts/ptmx ]; then
	mkdir -p /dev/pts
	mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
fi
start_server() {
	case $SSHD_KIND in
	dropbear)
		# -s: no password logins at all, so public keys only; it forks
		# into the background once listening.
		"$SSHD" -r "$DROPBEAR_KEY" -s -p 22 -P /run/initrd-remix/sshd.pid -E 2>>/run/initrd-remix/sshd.log ;;
	*)
		"$SSHD" -f "$SSHD_CONFIG" -E /run/initrd-remix/sshd.log ;;
	esac
}
if start_server; then
	log "sshd started ($SSH_FINGERPRINT)"
else
	log "sshd failed to start:"
	while IFS= read -r l; do echo "  $l"; done </run/initrd-remix/sshd.log
fi

# What the banner says: the fingerprint, and the addresses learnt here.
{
	echo " SSH: log in as root with an authorized key; host key $SSH_FINGERPRINT"
	ip -4 -o addr show 2>/dev/null | while read -r _ dev _ addr _; do
		[ "$dev" = lo ] && continue
		echo "   ssh root@${addr%/*}      ($dev)"
	done
} >/run/initrd-remix/banner.d/50-ssh
exit 0
