#!/usr/bin/env bash
# Boots a kernel and initrd in QEMU (TCG: KVM is not available here) with the
# serial console captured to a log, and stops as soon as the outcome is known.
#
#   boot.sh --kernel K --initrd I [--append "ARGS"] [--disk FILE]...
#           [--expect REGEX] [--fail REGEX]... [--timeout SEC] [--log FILE]
#           [--memory MiB]
#
# Disks are attached as virtio with snapshot=on: the files are never written.
# Prints one line "boot: ok|fail|timeout|exited after N s (log: FILE)" and
# exits 0 (expected output seen), 1 (a fail pattern seen), 2 (timeout),
# 3 (qemu exited without the expected output), 64 (usage).
set -uo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
kernel= initrd= append= expect= timeout=120 log= memory=1024
disks=() fails=("Kernel panic" "junk in compressed archive" "Initramfs unpacking failed" "invalid magic at start of compressed")
while (($#)); do
  case $1 in
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    --fail) fails+=("$2"); shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "boot.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n $kernel && -n $initrd && -r $kernel && -r $initrd ]] || { echo "boot.sh: --kernel and --initrd must name readable files" >&2; exit 64; }
[[ -n $log ]] || log=$(mktemp /tmp/boot-XXXXXX.log)
: >"$log"

args=(-accel tcg -machine q35 -cpu max -smp 1 -m "$memory" -nographic -no-reboot -nodefaults
      -serial "file:$log" -kernel "$kernel" -initrd "$initrd"
      -append "console=ttyS0 panic=-1 $append")
for d in "${disks[@]}"; do args+=(-drive "file=$d,format=raw,if=virtio,snapshot=on"); done

qemu-system-x86_64 "${args[@]}" </dev/null >"$log.qemu" 2>&1 &
qpid=$!
trap 'kill -9 $qpid 2>/dev/null; wait $qpid 2>/dev/null' EXIT

start=$SECONDS
result=timeout code=2
while :; do
  if [[ -n $expect ]] && grep -aEq -- "$expect" "$log"; then result=ok code=0; break; fi
  for f in "${fails[@]}"; do
    if grep -aEq -- "$f" "$log"; then result=fail code=1; echo "boot: fail pattern: $f" >&2; break 2; fi
  done
  if ! kill -0 $qpid 2>/dev/null; then
    wait $qpid 2>/dev/null
    if [[ -n $expect ]] && grep -aEq -- "$expect" "$log"; then result=ok code=0
    elif [[ -z $expect ]]; then result=ok code=0
    else result=exited code=3; fi
    break
  fi
  if ((SECONDS - start >= timeout)); then break; fi
  sleep 0.5
done
echo "boot: $result after $((SECONDS - start)) s (log: $log)"
exit $code
