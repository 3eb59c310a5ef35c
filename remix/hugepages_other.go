//go:build !linux

package remix

// hugePages is a no-op where transparent huge pages are not known.
func hugePages([]byte) {}

// startWriteback is a no-op where sync_file_range is not known.
func startWriteback(any, int64, int64) {}
