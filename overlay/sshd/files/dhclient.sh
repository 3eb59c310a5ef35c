#!/bin/sh
# initrd-remix rescue: ISC dhclient's script (dhclient -sf, in place of
# dhclient-script): applies the lease with ip, writes resolv.conf and tells
# the hook what it got. Environment: reason, interface, new_ip_address,
# new_subnet_mask, new_routers, new_domain_name_servers
# (dhclient-script(8)); dhclient passes no PATH of the hook's.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /etc/initrd-remix/ssh/rescue.conf
if ! command -v ip >/dev/null 2>&1 && [ -n "$BUSYBOX" ]; then
	ip() { "$BUSYBOX" ip "$@"; }
fi
. /usr/lib/initrd-remix/ssh-ip.sh
case $reason in
PREINIT)
	ip link set dev "$interface" up
	;;
BOUND | RENEW | REBIND | REBOOT)
	bits=$(mask_bits "${new_subnet_mask:-255.255.255.0}") || bits=24
	if [ "$reason" != RENEW ] || [ "$old_ip_address" != "$new_ip_address" ]; then
		ip -4 addr flush dev "$interface" 2>/dev/null
		ip addr add "$new_ip_address/$bits" dev "$interface" || exit 1
	fi
	ip link set dev "$interface" up
	for r in $new_routers; do
		ip route replace default via "$r" dev "$interface" && break
	done
	if [ -n "$new_domain_name_servers" ]; then
		: >/run/initrd-remix/resolv.conf
		for d in $new_domain_name_servers; do echo "nameserver $d" >>/run/initrd-remix/resolv.conf; done
		[ -L /etc/resolv.conf ] || cat /run/initrd-remix/resolv.conf >/etc/resolv.conf 2>/dev/null
	fi
	echo "initrd-remix: $interface: $new_ip_address/$bits by DHCP${new_routers:+, gateway $new_routers} (dhclient)" >/dev/console
	;;
EXPIRE | FAIL | RELEASE | STOP)
	[ -z "$old_ip_address" ] || ip -4 addr flush dev "$interface" 2>/dev/null
	;;
esac
exit 0
