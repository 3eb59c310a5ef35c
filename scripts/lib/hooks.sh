# initrd-remix hook library (POSIX sh), sourced by the kernel-install plugin,
# the Debian kernel and initramfs hooks and the GRUB script. `make install`
# replaces @BINDIR@ with the directory of the initrd-remix binary.
#
# The hooks run inside kernel installations and boot loader updates: they
# never make those fail. A problem is reported loudly on stderr and the hook
# exits 0; an image is either complete (build writes a temporary file and
# renames it) or absent, never half-written.
#
# Everything a hook creates is private (umask 077): an initrd may hold a
# LUKS keyfile, and a copy of it must not become readable by everyone.

umask 077
LC_ALL=C
export LC_ALL
IR_BIN=@BINDIR@/initrd-remix
case $IR_BIN in
@*) IR_BIN=initrd-remix ;; # not installed by make: take it from PATH
esac
IR_CONF=/etc/initrd-remix/initrd-remix.conf
IR_CONF_D=/etc/initrd-remix/conf.d

ir_log() { printf 'initrd-remix: %s\n' "$*" >&2; }
ir_warn() { printf 'initrd-remix: WARNING: %s\n' "$*" >&2; }

# ir_installed: the binary is there. Debian keeps hooks under /etc (conffiles)
# after the package is removed; they must then do nothing, quietly.
ir_installed() { command -v "$IR_BIN" >/dev/null 2>&1; }

# ir_hooks_enabled: false when the configuration turns the hooks off
# (`hooks = no`). The binary reads the configuration, so the hooks and build
# share one grammar (README, "Configuration file"). A configuration it
# cannot read is reported and keeps the hooks off: every build would fail
# on it anyway.
ir_hooks_enabled() {
	ir_installed || return 1
	if ! ir_hooks=$("$IR_BIN" config get hooks --config "$IR_CONF" --config-dir "$IR_CONF_D"); then
		ir_warn "the configuration cannot be read (see above): no rescue image until it is fixed"
		return 1
	fi
	[ "$ir_hooks" = true ]
}

# ir_valid_kver VERSION: VERSION is a sane kernel version, fit to become part
# of a file name or a menu entry id: 1 to 64 of [A-Za-z0-9._+~-], not
# starting with a dot (the rule build and entry write apply).
ir_valid_kver() {
	case $1 in
	'' | .* | *[!A-Za-z0-9._+~-]*) return 1 ;;
	esac
	[ ${#1} -le 64 ]
}

# ir_find_initrd BOOTDIR KVER: prints the distribution's initrd for KVER in
# BOOTDIR, by each family's naming (Debian, Fedora/dracut, SUSE, Arch-like).
ir_find_initrd() {
	for ir_f in "$1/initrd.img-$2" "$1/initramfs-$2.img" "$1/initrd-$2" "$1/initramfs-$2"; do
		if [ -f "$ir_f" ] && [ -s "$ir_f" ]; then
			printf '%s\n' "$ir_f"
			return 0
		fi
	done
	return 1
}

# ir_build INPUT OUTPUT KVER [ARG...]: builds the rescue image (the host's
# programs, from /, for the overlay); ARGs go to build.
ir_build() {
	ir_in=$1 ir_out=$2 ir_kver=$3
	shift 3
	"$IR_BIN" build --quiet --config "$IR_CONF" --config-dir "$IR_CONF_D" --input "$ir_in" --output "$ir_out" --kver "$ir_kver" "$@"
}

# ir_refresh INPUT OUTPUT KVER [ARG...]: builds OUTPUT from INPUT; on failure says so
# loudly and returns 1. An older OUTPUT stays as it was (build replaces it
# only with a complete image).
ir_refresh() {
	ir_rc=0
	ir_build "$@" || ir_rc=$?
	if [ "$ir_rc" = 0 ]; then
		ir_log "rescue image $2 (from $1)"
		return 0
	fi
	if [ -f "$2" ]; then
		ir_warn "could not rebuild the rescue image $2 for kernel $3 from $1 (exit $ir_rc); the previous rescue image stays. The kernel installation continues."
	else
		ir_warn "could not build the rescue image $2 for kernel $3 from $1 (exit $ir_rc); there is no rescue image for this kernel. The kernel installation continues."
	fi
	return 1
}
