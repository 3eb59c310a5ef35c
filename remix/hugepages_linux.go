package remix

import "syscall"

// hugePages asks the kernel to back b with transparent huge pages. It is a
// hint: where THP is off or b is too small nothing changes, so errors are
// ignored.
func hugePages(b []byte) {
	if len(b) >= 4<<20 {
		_ = syscall.Madvise(b, 14) // MADV_HUGEPAGE
	}
}
