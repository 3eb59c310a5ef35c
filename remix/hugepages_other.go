//go:build !linux

package remix

// hugePages is a no-op where transparent huge pages are not known.
func hugePages([]byte) {}
