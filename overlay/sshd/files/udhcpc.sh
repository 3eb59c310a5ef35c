#!/bin/sh
# initrd-remix rescue: busybox udhcpc's event script (udhcpc -s): applies
# the lease with ip, writes resolv.conf, and tells the hook what it got.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface" 2>/dev/null
	ip link set dev "$interface" up
	;;
bound|renew)
	ip -4 addr flush dev "$interface" 2>/dev/null
	ip addr add "$ip/${mask:-24}" dev "$interface"
	ip link set dev "$interface" up
	for r in $router; do
		ip route replace default via "$r" dev "$interface" && break
	done
	if [ -n "$dns" ]; then
		: >/run/initrd-remix/resolv.conf
		for d in $dns; do echo "nameserver $d" >>/run/initrd-remix/resolv.conf; done
		[ -e /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ] && cp /run/initrd-remix/resolv.conf /etc/resolv.conf 2>/dev/null
		[ -e /etc/resolv.conf ] || cat /run/initrd-remix/resolv.conf >/etc/resolv.conf 2>/dev/null
	fi
	echo "initrd-remix: $interface: $ip/${mask:-24} by DHCP${router:+, gateway $router}"
	;;
esac
exit 0
