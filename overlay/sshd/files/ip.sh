# initrd-remix rescue: parse_ip SPEC sets NET_MODE, NET_ADDR (address/bits),
# NET_GATEWAY, NET_DEVICE, NET_HOSTNAME and NET_DNS from the kernel's ip=
# syntax (client:server:gateway:netmask:hostname:device:autoconf:dns0:dns1,
# or dhcp/on/any/both/bootp, off/none); it returns 1 and changes nothing
# for anything else. The build parses the same syntax (ParseIP); a test
# holds the two to the same results. Sourced by the SSH hook (POSIX sh).

# mask_bits NETMASK prints the prefix length of a contiguous netmask.
mask_bits() {
	mb_bits=0 mb_end=
	mb_ifs=$IFS
	IFS=.
	set -f
	set -- $1
	set +f
	IFS=$mb_ifs
	[ $# = 4 ] || return 1
	for mb_o in "$@"; do
		case $mb_o in
		255) [ -z "$mb_end" ] || return 1; mb_bits=$((mb_bits + 8)); continue ;;
		254) mb_bits=$((mb_bits + 7)) ;; 252) mb_bits=$((mb_bits + 6)) ;;
		248) mb_bits=$((mb_bits + 5)) ;; 240) mb_bits=$((mb_bits + 4)) ;; 224) mb_bits=$((mb_bits + 3)) ;;
		192) mb_bits=$((mb_bits + 2)) ;; 128) mb_bits=$((mb_bits + 1)) ;; 0) ;;
		*) return 1 ;;
		esac
		# After a partial octet only zeros may follow.
		[ -z "$mb_end" ] || [ "$mb_o" = 0 ] || return 1
		mb_end=1
	done
	echo "$mb_bits"
}

# ipv4 ADDR: four decimal octets of 0-255, no leading zeros.
ipv4() {
	case $1 in
	*[!0-9.]* | .* | *. | *..*) return 1 ;;
	esac
	v4_ifs=$IFS
	IFS=.
	set -f
	set -- $1
	set +f
	IFS=$v4_ifs
	[ $# = 4 ] || return 1
	for v4_o in "$@"; do
		case $v4_o in
		0 | [1-9] | [1-9][0-9] | 1[0-9][0-9] | 2[0-4][0-9] | 25[0-5]) ;;
		*) return 1 ;;
		esac
	done
}

parse_ip() {
	case $1 in
	dhcp | on | any | both | bootp | rarp)
		NET_MODE=dhcp NET_DEVICE= NET_HOSTNAME= NET_DNS=
		return 0 ;;
	off | none)
		NET_MODE=off
		return 0 ;;
	esac
	pi_ifs=$IFS
	IFS=:
	set -f
	set -- $1
	set +f
	IFS=$pi_ifs
	[ $# -le 10 ] || return 1
	pi_client=$1 pi_server=$2 pi_gw=$3 pi_mask=$4 pi_host=$5 pi_dev=$6 pi_auto=$7 pi_dns=
	for pi_d in "$8" "$9"; do
		[ -z "$pi_d" ] && continue
		ipv4 "$pi_d" || return 1
		pi_dns="$pi_dns${pi_dns:+ }$pi_d"
	done
	[ -z "$pi_server" ] || ipv4 "$pi_server" || return 1
	case $pi_dev in
	*[!A-Za-z0-9_.-]* | ????????????????*) return 1 ;;
	esac
	case $pi_host in
	'') ;;
	[!A-Za-z0-9]* | *[!A-Za-z0-9.-]*) return 1 ;;
	esac
	case $pi_auto in
	dhcp | on | any | both | bootp | rarp)
		[ -z "$pi_client" ] || return 1
		NET_MODE=dhcp NET_DEVICE=$pi_dev NET_HOSTNAME=$pi_host NET_DNS=$pi_dns
		return 0 ;;
	'' | off | none) ;;
	*) return 1 ;;
	esac
	ipv4 "$pi_client" || return 1
	if [ -z "$pi_mask" ]; then
		case ${pi_client%%.*} in
		[0-9] | [0-9][0-9] | 1[01][0-9] | 12[0-7]) pi_mask=255.0.0.0 ;;
		1[2-8][0-9] | 19[01]) pi_mask=255.255.0.0 ;;
		*) pi_mask=255.255.255.0 ;;
		esac
	fi
	ipv4 "$pi_mask" || return 1
	pi_bits=$(mask_bits "$pi_mask") || return 1
	[ -z "$pi_gw" ] || ipv4 "$pi_gw" || return 1
	NET_MODE=static NET_ADDR=$pi_client/$pi_bits NET_GATEWAY=$pi_gw
	NET_DEVICE=$pi_dev NET_HOSTNAME=$pi_host NET_DNS=$pi_dns
}

# The DHCP clients' scripts (udhcpc.sh, dhclient.sh, dhcpcd.sh) share these.

# lease_apply DEV ADDR/BITS [ROUTER...]: sets a lease with ip (for the
# clients that leave it to their script).
lease_apply() {
	la_dev=$1 la_addr=$2
	shift 2
	ip -4 addr flush dev "$la_dev" 2>/dev/null
	ip addr add "$la_addr" dev "$la_dev" || return 1
	ip link set dev "$la_dev" up
	for la_r in "$@"; do
		ip route replace default via "$la_r" dev "$la_dev" && break
	done
}

# lease_dns [SERVER...]: the rescue's resolv.conf (a link, such as
# systemd-resolved's stub, is left alone).
lease_dns() {
	[ $# -gt 0 ] || return 0
	: >/run/initrd-remix/resolv.conf
	for ld_d in "$@"; do echo "nameserver $ld_d" >>/run/initrd-remix/resolv.conf; done
	[ -L /etc/resolv.conf ] || cat /run/initrd-remix/resolv.conf >/etc/resolv.conf 2>/dev/null
}

# lease_log DEV ADDR/BITS CLIENT [ROUTER]: the console line of a lease
# (straight to the console: a client that has gone into the background
# has no output of the hook's).
lease_log() {
	echo "initrd-remix: $1: $2 by DHCP${4:+, gateway $4} ($3)" >/dev/console
}
