#!/usr/bin/env bash
# The one test command (README): builds the real-initrd lab if it is not
# cached yet, then runs every Go test, the lab and QEMU boot tests included.
#   scripts/test.sh            all tests
#   scripts/test.sh -run Boot  extra arguments go to `go test`
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [[ -z "${INITRD_REMIX_LAB:-}" ]]; then
  echo "test.sh: building or reusing the lab (scripts/lab.sh)" >&2
  INITRD_REMIX_LAB=$(scripts/lab.sh | tail -n 1)
  export INITRD_REMIX_LAB
fi
echo "test.sh: lab at $INITRD_REMIX_LAB" >&2

# The storage testbed, the mkosi-initrd image, the host-only images, the
# recovery cycle's source machine, the UKIs and the SSH roots are built from the lab;
# start them now, beside the first packages' tests (mkosi mostly waits for
# Debian's archive). The tests that need them wait on their locks, and
# rebuild them should a background build have failed.
bg=()
if [[ "$*" != *-short* ]]; then
  scripts/testbed.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
  scripts/mkosi-initrd.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
  scripts/hostonly.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
  scripts/recovery-lab.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
  scripts/uki-lab.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
  scripts/ssh-lab.sh "$INITRD_REMIX_LAB" >/dev/null 2>&1 & bg+=($!)
fi
finish() { for p in "${bg[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap finish EXIT

gofmt_out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$gofmt_out" ]]; then
  echo "test.sh: gofmt would change:" >&2
  echo "$gofmt_out" >&2
  exit 1
fi
go vet ./...
# Boots take ~40 s each under TCG; the budget covers the whole matrix.
go test -count=1 -timeout 80m "$@" ./...
