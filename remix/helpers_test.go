package remix

import "io"

// readHead returns up to n leading bytes of c.
func readHead(c Content, n int) []byte {
	if c == nil {
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
