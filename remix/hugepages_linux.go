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

// startWriteback asks the kernel to start writing a file range to disk
// without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE), so a
// later fsync has less to wait for. A hint: errors and non-files are
// ignored.
func startWriteback(w any, off, n int64) {
	if f, ok := w.(fdWriter); ok {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), 2, 0, 0)
	}
}
