#!/bin/sh
# initrd-remix rescue: busybox udhcpc's event script (udhcpc -s): applies
# the lease with ip, writes resolv.conf, and tells the hook what it got.
# Environment: interface, ip, mask (prefix length), router, dns.
. /usr/lib/initrd-remix/ssh-ip.sh
case $1 in
deconfig)
	ip -4 addr flush dev "$interface" 2>/dev/null
	ip link set dev "$interface" up
	;;
bound | renew)
	# shellcheck disable=SC2086 # lists of addresses
	lease_apply "$interface" "$ip/${mask:-24}" $router
	# shellcheck disable=SC2086
	lease_dns $dns
	set -- $router
	lease_log "$interface" "$ip/${mask:-24}" udhcpc "$1"
	;;
esac
exit 0
