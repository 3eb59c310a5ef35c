package hugemem

import "syscall"

// advise asks for transparent huge pages (MADV_HUGEPAGE); errors are
// ignored, the buffer works either way.
func advise(b []byte) {
	_ = syscall.Madvise(b, 14)
}
