#!/bin/sh
# initrd-remix rescue: dhcpcd's script (dhcpcd -c, in place of
# dhcpcd-run-hooks). dhcpcd has set the address and routes itself; this
# writes resolv.conf and tells the hook what it got. Environment: reason,
# interface, new_ip_address, new_subnet_cidr, new_routers,
# new_domain_name_servers (dhcpcd-run-hooks(8)).
. /usr/lib/initrd-remix/ssh-ip.sh
case $reason in
BOUND | RENEW | REBIND | REBOOT)
	# shellcheck disable=SC2086 # lists of addresses
	lease_dns $new_domain_name_servers
	set -- $new_routers
	[ "$reason" = RENEW ] || [ "$reason" = REBIND ] ||
		lease_log "$interface" "$new_ip_address/$new_subnet_cidr" dhcpcd "$1"
	;;
esac
exit 0
