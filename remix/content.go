package remix

import "io"

// Head returns up to n leading bytes of c: what a file's magic or "#!" line
// is sniffed from. A content that cannot be opened or read has no head.
func Head(c Content, n int) []byte {
	if c == nil || n <= 0 {
		return nil
	}
	r, err := c.Open()
	if err != nil {
		return nil
	}
	defer r.Close()
	buf := make([]byte, n)
	k, _ := io.ReadFull(r, buf)
	return buf[:k]
}
