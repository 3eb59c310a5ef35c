// Package countio counts the bytes that pass through a reader or a writer,
// for the stages that must know exact offsets in a stream (segment
// boundaries, padding, error positions) without seeking.
package countio

import "io"

// Reader counts the bytes read through it in N.
type Reader struct {
	R io.Reader
	N int64
}

func (c *Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// ByteReader is a Reader that also reads one byte at a time without
// buffering (through R's own ReadByte when it has one), so a decoder that
// wants an io.ByteReader never reads past its data.
type ByteReader struct{ Reader }

// ReadByte reads and counts one byte.
func (c *ByteReader) ReadByte() (byte, error) {
	if br, ok := c.R.(io.ByteReader); ok {
		b, err := br.ReadByte()
		if err == nil {
			c.N++
		}
		return b, err
	}
	var b [1]byte
	if _, err := io.ReadFull(&c.Reader, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// Writer counts the bytes written through it in N.
type Writer struct {
	W io.Writer
	N int64
}

func (c *Writer) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
