// Package hugemem allocates large byte buffers backed by transparent huge
// pages where the kernel offers them.
//
// Fresh memory costs a page fault per 4 KiB page on first touch. On the
// virtual machines this tool was measured on that cost about 5-10 ms per
// MiB, more than compressing or copying the data: the buffers that hold
// file bodies, frames and their compressed output dominated profiles with
// page faults. Asked for before the first touch, huge pages take one fault
// per 2 MiB.
package hugemem

// minHuge is the size from which a buffer is worth a huge-page hint: below
// two huge pages the kernel would rarely use one.
const minHuge = 4 << 20

// Alloc returns a zeroed buffer of n bytes, hinted for huge pages when it
// is large. The hint is only a hint: where transparent huge pages are off,
// nothing changes.
func Alloc(n int) []byte {
	b := make([]byte, n)
	if n >= minHuge {
		advise(b)
	}
	return b
}
