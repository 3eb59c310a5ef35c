package atomicfile

import (
	"os"
	"syscall"
)

// startWriteback starts writing the file's dirty pages to disk and returns
// at once (sync_file_range with SYNC_FILE_RANGE_WRITE over the whole file).
// A hint: if it fails, Commit's fsync still writes everything.
func startWriteback(f *os.File) {
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, 0, 0, 2, 0, 0)
	})
}
