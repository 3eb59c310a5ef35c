#!/bin/sh
# initrd-remix rescue: dhcpcd's script (dhcpcd -c, in place of
# dhcpcd-run-hooks). dhcpcd has set the address and routes itself; this
# writes resolv.conf and tells the hook what it got. Environment: reason,
# interface, new_ip_address, new_subnet_cidr, new_routers,
# new_domain_name_servers (dhcpcd-run-hooks(8)).
case $reason in
BOUND | RENEW | REBIND | REBOOT)
	if [ -n "$new_domain_name_servers" ]; then
		: >/run/initrd-remix/resolv.conf
		for d in $new_domain_name_servers; do echo "nameserver $d" >>/run/initrd-remix/resolv.conf; done
		[ -L /etc/resolv.conf ] || cat /run/initrd-remix/resolv.conf >/etc/resolv.conf 2>/dev/null
	fi
	[ "$reason" = BOUND ] || [ "$reason" = REBOOT ] &&
		echo "initrd-remix: $interface: $new_ip_address/$new_subnet_cidr by DHCP${new_routers:+, gateway $new_routers} (dhcpcd)" >/dev/console
	;;
esac
exit 0
