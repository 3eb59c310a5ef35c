#!/usr/bin/env bash
# boot.sh: boots a kernel and an initrd, or a machine from its disks, in QEMU
# (TCG, no KVM needed) with the serial console in a log file, and reports
# whether an expected line appeared.
#
#   boot.sh [--kernel K --initrd I [--append "ARGS"]] [--bus BUS] [--disk FILE]...
#           [--disk-rw FILE]... [--nic MODEL]... [--hostfwd HOSTPORT:GUESTPORT]...
#           [--expect REGEX] [--fail REGEX]... [--timeout SEC] [--log FILE]
#           [--memory MiB] [--esp DIR [--secure-boot]]
#
# The kernel command line is always "console=ttyS0 panic=-1" plus --append.
# Without --kernel and --initrd, the firmware (SeaBIOS) boots from the first
# disk given (bootindex 0), as a machine with a boot loader installed does.
# Disks are attached as virtio-blk with snapshot=on: the files are never
# modified. --disk-rw attaches a disk writable instead (so that a test can
# prove by its checksum that the boot did not write to it); --disk and
# --disk-rw disks appear in the order given (vda, vdb, ...).
# --bus BUS puts the --disk/--disk-rw that follow it on another bus, one
# controller per bus:
#   virtio       virtio-blk (the default: vda, vdb, ...)
#   nvme         an NVMe controller per disk (nvme0n1, ...)
#   ahci         SATA disks (ide-hd) on one AHCI controller, at most 6
#   megasas      SCSI disks on an LSI MegaRAID SAS 1078 (megaraid_sas)
#   mptsas1068   SCSI disks on an LSI SAS 1068 (mptsas), at most 8 (QEMU
#                7.2's model: Linux 6.1's mptsas brings the HBA up but
#                finds no disk behind it; the tests use megasas)
#   virtio-scsi  SCSI disks on a virtio-scsi controller
#   usb          USB mass storage (usb-storage) on a qemu-xhci controller
# Every disk off virtio-blk gets the serial number bootN, N its position
# among all disks (0, 1, ...). --nic MODEL adds a network card of that QEMU
# model (e1000e, e1000, virtio-net-pci, rtl8139, vmxnet3) on QEMU's user
# network with restrict=on (no way out of the VM); without --nic the VM has
# none. --hostfwd HOSTPORT:GUESTPORT forwards TCP port HOSTPORT of the
# host's 127.0.0.1 to GUESTPORT of the guest on the first --nic (SSH into
# the guest: --hostfwd 2222:22). The log is polled; the run stops as soon as --expect (an extended
# regex, grep -E) matches (ok), a --fail regex matches (fail; the defaults
# "Kernel panic", "junk in compressed archive", "Initramfs unpacking failed"
# always apply), QEMU exits (exited) or --timeout (default 120 s) passes
# (timeout). QEMU is always killed. Prints one line on stdout
#   boot: ok|fail|timeout|exited after N s (log: FILE)
# and exits 0 ok, 1 fail, 2 timeout, 3 QEMU exited without the expected
# line, 64 usage. Without --expect a run ends by fail, exit or timeout only.
# Without --log the log goes to a new file under ${TMPDIR:-/tmp}. QEMU's own
# messages are appended to the log after the run.
# --esp DIR boots UEFI firmware (OVMF, Debian's ovmf package) instead of
# SeaBIOS, from an EFI system partition made of DIR's files (a FAT image
# built with mkfs.fat and mcopy, no loop device; attached first, as an IDE
# disk, so virtio disks keep their names): the firmware starts
# EFI/BOOT/BOOTX64.EFI, a UKI or a boot loader. OVMF mirrors its console
# and the boot loader's menu on the serial log. --secure-boot turns Secure
# Boot on, with OVMF's test build that has Debian's snakeoil key enrolled
# (PK, KEK, db; /usr/share/ovmf/PkKek-1-snakeoil.{key,pem}, key passphrase
# "snakeoil", sign what it may start), on q35 with SMM.
# Environment: BOOT_QEMU (qemu-system-x86_64), BOOT_MACHINE (pc),
# BOOT_CPU (max), BOOT_SMP (1).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
}
die_usage() { echo "boot.sh: $*" >&2; exit 64; }

kernel= initrd= append= expect= log= timeout=120 memory=1024 esp= secboot=0
disks=() rw=() buses=() nics=() fwds=()
bus=virtio
fails=("Kernel panic" "junk in compressed archive" "Initramfs unpacking failed")
while (($#)); do
  case $1 in
    -h|--help) usage ;;
    --secure-boot) secboot=1; shift; continue ;;
    --kernel|--initrd|--append|--disk|--disk-rw|--bus|--nic|--hostfwd|--expect|--fail|--timeout|--log|--memory|--esp)
      (($# >= 2)) || die_usage "$1 needs a value"
      case $1 in
        --kernel) kernel=$2 ;;
        --initrd) initrd=$2 ;;
        --append) append=$2 ;;
        --disk) disks+=("$2"); rw+=(0); buses+=("$bus") ;;
        --disk-rw) disks+=("$2"); rw+=(1); buses+=("$bus") ;;
        --bus)
          case $2 in
            virtio|nvme|ahci|megasas|mptsas1068|virtio-scsi|usb) bus=$2 ;;
            *) die_usage "unknown bus: $2 (virtio, nvme, ahci, megasas, mptsas1068, virtio-scsi, usb)" ;;
          esac ;;
        --nic)
          case $2 in
            e1000e|e1000|virtio-net-pci|rtl8139|vmxnet3) nics+=("$2") ;;
            *) die_usage "unknown NIC model: $2 (e1000e, e1000, virtio-net-pci, rtl8139, vmxnet3)" ;;
          esac ;;
        --hostfwd)
          [[ $2 =~ ^[0-9]{1,5}:[0-9]{1,5}$ ]] || die_usage "--hostfwd wants HOSTPORT:GUESTPORT, got: $2"
          fwds+=("hostfwd=tcp:127.0.0.1:${2%%:*}-:${2#*:}") ;;
        --expect) expect=$2 ;;
        --fail) fails+=("$2") ;;
        --timeout) timeout=$2 ;;
        --log) log=$2 ;;
        --memory) memory=$2 ;;
        --esp) esp=$2 ;;
      esac
      shift 2 ;;
    --kernel=*|--initrd=*|--append=*|--disk=*|--disk-rw=*|--bus=*|--nic=*|--hostfwd=*|--expect=*|--fail=*|--timeout=*|--log=*|--memory=*|--esp=*)
      set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    *) die_usage "unknown argument: $1 (see --help)" ;;
  esac
done
if [[ -n $kernel || -n $initrd ]]; then
  [[ -n $kernel ]] || die_usage "--initrd needs --kernel"
  [[ -n $initrd ]] || die_usage "--kernel needs --initrd"
  [[ -f $kernel && -r $kernel ]] || die_usage "kernel not readable: $kernel"
  [[ -f $initrd && -r $initrd ]] || die_usage "initrd not readable: $initrd"
else
  [[ -z $append ]] || die_usage "--append needs --kernel"
  ((${#disks[@]})) || [[ -n $esp ]] || die_usage "without --kernel, a --disk or --esp to boot from is required"
fi
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
if ((secboot)); then
  [[ -n $esp ]] || die_usage "--secure-boot needs --esp"
  ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd
fi
if [[ -n $esp ]]; then
  [[ -z $kernel ]] || die_usage "--esp boots the firmware: no --kernel"
  [[ -d $esp ]] || die_usage "--esp is not a directory: $esp"
  for f in "$ovmf_code" "$ovmf_vars"; do
    [[ -r $f ]] || die_usage "$f not found (apt-get install ovmf)"
  done
  for tool in mkfs.fat mcopy; do
    command -v "$tool" >/dev/null || die_usage "$tool not found (apt-get install dosfstools mtools)"
  done
fi
for i in "${!disks[@]}"; do
  d=${disks[$i]}
  [[ -f $d && -r $d ]] || die_usage "disk not readable: $d"
  ((!rw[i])) || [[ -w $d ]] || die_usage "disk not writable: $d"
done
# The ports of one AHCI controller and the targets of one SAS 1068.
for b in ahci:6 mptsas1068:8; do
  n=0
  for x in "${buses[@]}"; do [[ $x != "${b%:*}" ]] || n=$((n + 1)); done
  ((n <= ${b#*:})) || die_usage "at most ${b#*:} disks on the ${b%:*} bus"
done
((${#fwds[@]} == 0 || ${#nics[@]} > 0)) || die_usage "--hostfwd needs a --nic"
[[ $timeout =~ ^[0-9]+$ ]] && ((timeout > 0)) || die_usage "--timeout must be a positive integer (seconds)"
[[ $memory =~ ^[0-9]+$ ]] && ((memory >= 64)) || die_usage "--memory must be an integer >= 64 (MiB)"
qemu=${BOOT_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die_usage "$qemu not found (apt-get install qemu-system-x86)"
# A broken regex is a usage error, not a pattern that silently never matches.
for re in "$expect" "${fails[@]}"; do
  [[ -n $re ]] || continue
  rc=0
  grep -Eq -- "$re" </dev/null 2>/dev/null || rc=$?
  ((rc <= 1)) || die_usage "bad regex: $re"
done

if [[ -z $log ]]; then
  log=$(mktemp "${TMPDIR:-/tmp}/boot-XXXXXX.log")
else
  mkdir -p "$(dirname "$log")"
fi
: >"$log"
qlog=$(mktemp "${TMPDIR:-/tmp}/boot-qemu-XXXXXX.txt")
uefi=
if [[ -n $esp ]]; then
  uefi=$(mktemp -d "${TMPDIR:-/tmp}/boot-uefi-XXXXXX")
  # FAT32 with room to spare; mkfs.fat -C makes the image file itself.
  kib=$(( $(du -sk "$esp" | cut -f1) * 5 / 4 + 65536 ))
  mkfs.fat -F 32 -n ESP -C "$uefi/esp.img" "$kib" >/dev/null
  if compgen -G "$esp/*" >/dev/null; then
    mcopy -s -Q -i "$uefi/esp.img" "$esp"/* ::/
  fi
  cp "$ovmf_vars" "$uefi/vars.fd"
fi

# pc (i440fx) with one vCPU of the "max" model is the quickest combination
# for Debian's 6.1 kernels under TCG here; no default devices, and no NIC
# unless --nic asks for one.
args=(-accel tcg -machine "${BOOT_MACHINE:-pc}" -cpu "${BOOT_CPU:-max}" -smp "${BOOT_SMP:-1}"
      -m "$memory" -nographic -no-reboot -nodefaults -monitor none -serial "file:$log")
if [[ -n $esp ]]; then
  # The Secure Boot builds need SMM (q35); the plain one runs on pc.
  ((!secboot)) || args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on)
  args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code"
         -drive "if=pflash,format=raw,unit=1,file=$uefi/vars.fd"
         -drive "if=none,id=esp,format=raw,file=$uefi/esp.img" -device "ide-hd,drive=esp,bootindex=0")
fi
if [[ -n $kernel ]]; then
  args+=(-kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 panic=-1${append:+ $append}")
fi
if ((${#nics[@]} == 0)); then
  args+=(-nic none)
fi
for i in "${!nics[@]}"; do
  fwd=
  if ((i == 0 && ${#fwds[@]})); then
    fwd=$(IFS=,; echo ",${fwds[*]}")
  fi
  args+=(-netdev "user,id=net$i,restrict=on$fwd" -device "${nics[$i]},netdev=net$i")
done
# One controller per bus, made when its first disk comes; a count of the
# disks on each gives their port or SCSI target.
declare -A on_bus=()
for i in "${!disks[@]}"; do
  d=${disks[$i]} b=${buses[$i]}
  # QEMU option values escape a comma by doubling it.
  drive="file=${d//,/,,},format=raw"
  ((rw[i])) || drive+=",snapshot=on"
  # The firmware boots from the first disk when no kernel is given.
  bootindex=
  [[ -n $kernel || -n $esp ]] || ((i != 0)) || bootindex=,bootindex=0
  if [[ $b == virtio ]]; then
    if [[ -n $bootindex ]]; then
      args+=(-drive "$drive,if=none,id=disk$i" -device "virtio-blk-pci,drive=disk$i$bootindex")
    else
      args+=(-drive "$drive,if=virtio")
    fi
    continue
  fi
  n=${on_bus[$b]:-0}
  on_bus[$b]=$((n + 1))
  ctl=${b//-/}0
  if ((n == 0)); then
    case $b in
      ahci) args+=(-device "ahci,id=$ctl") ;;
      megasas | mptsas1068) args+=(-device "$b,id=$ctl") ;;
      virtio-scsi) args+=(-device "virtio-scsi-pci,id=$ctl") ;;
      usb) args+=(-device "qemu-xhci,id=$ctl") ;;
    esac
  fi
  args+=(-drive "$drive,if=none,id=disk$i")
  case $b in
    nvme) args+=(-device "nvme,drive=disk$i,serial=boot$i$bootindex") ;;
    ahci) args+=(-device "ide-hd,drive=disk$i,bus=$ctl.$n,serial=boot$i$bootindex") ;;
    megasas | mptsas1068 | virtio-scsi) args+=(-device "scsi-hd,drive=disk$i,bus=$ctl.0,scsi-id=$n,serial=boot$i$bootindex") ;;
    usb) args+=(-device "usb-storage,drive=disk$i,bus=$ctl.0,serial=boot$i$bootindex") ;;
  esac
done

# QEMU runs in its own process group (setsid) under timeout(1): the group is
# killed when the run ends, and should this script itself be killed, timeout
# still ends QEMU shortly after the deadline.
qpid=
stop_qemu() {
  [[ -n $qpid ]] || return 0
  if kill -0 -- "-$qpid" 2>/dev/null; then
    kill -TERM -- "-$qpid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 -- "-$qpid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$qpid" 2>/dev/null || true
  fi
  wait "$qpid" 2>/dev/null || true
  qpid=
}
finish() {
  stop_qemu
  if [[ -s $qlog ]]; then
    { echo; echo "--- boot.sh: qemu output ---"; cat "$qlog"; } >>"$log"
  fi
  rm -f "$qlog"
  [[ -z $uefi ]] || rm -rf "$uefi"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

matches() { grep -aEq -- "$1" "$log"; }
failed() {
  local re
  for re in "${fails[@]}"; do
    [[ -n $re ]] && matches "$re" && return 0
  done
  return 1
}

start=$SECONDS
setsid timeout -k 5 $((timeout + 30)) "$qemu" "${args[@]}" </dev/null >"$qlog" 2>&1 &
qpid=$!

result=timeout
while :; do
  alive=1
  kill -0 "$qpid" 2>/dev/null || alive=0
  # The log is checked after noticing an exit, so the last lines count.
  if [[ -n $expect ]] && matches "$expect"; then result=ok; break; fi
  if failed; then result=fail; break; fi
  if ((!alive)); then result=exited; break; fi
  if ((SECONDS - start >= timeout)); then result=timeout; break; fi
  sleep 0.5
done
elapsed=$((SECONDS - start))
stop_qemu
echo "boot: $result after $elapsed s (log: $log)"
case $result in
  ok) exit 0 ;;
  fail) exit 1 ;;
  timeout) exit 2 ;;
  *) exit 3 ;;
esac
