#!/bin/sh
# initrd-remix rescue: ISC dhclient's script (dhclient -sf, in place of
# dhclient-script): applies the lease with ip, writes resolv.conf and tells
# the hook what it got. Environment: reason, interface, new_ip_address,
# new_subnet_mask, new_routers, new_domain_name_servers, old_ip_address
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
	# shellcheck disable=SC2086 # lists of addresses
	if [ "$reason" = BOUND ] || [ "$reason" = REBOOT ] || [ "$old_ip_address" != "$new_ip_address" ]; then
		lease_apply "$interface" "$new_ip_address/$bits" $new_routers || exit 1
		set -- $new_routers
		lease_log "$interface" "$new_ip_address/$bits" dhclient "$1"
	fi
	# shellcheck disable=SC2086
	lease_dns $new_domain_name_servers
	;;
EXPIRE | FAIL | RELEASE | STOP)
	[ -z "$old_ip_address" ] || ip -4 addr flush dev "$interface" 2>/dev/null
	;;
esac
exit 0
