package remix

import (
	"errors"
	"fmt"
	"io"
)

// The input copy moves the file in copyChunks buffers of copyChunk bytes,
// allocated once and recycled: fresh memory costs a page fault per page on
// first touch, which on the machines measured cost more than the copy.
const (
	copyChunk  = 256 << 10
	copyChunks = 4
)

// inputCopy copies what Open reads from the file to OpenOptions.CopyTo on a
// goroutine of its own, so the write overlaps the decoding instead of
// following it (and an atomicfile.File starts writing back to disk as it
// goes).
type inputCopy struct {
	r         io.Reader
	dst       io.Writer
	ch        chan []byte
	free      chan []byte
	done      chan error
	allocated int
	n         int64 // bytes handed to the goroutine
}

func newInputCopy(r io.Reader, dst io.Writer) *inputCopy {
	c := &inputCopy{r: r, dst: dst, ch: make(chan []byte, copyChunks), free: make(chan []byte, copyChunks), done: make(chan error, 1)}
	go c.run()
	return c
}

func (c *inputCopy) run() {
	var err error
	for b := range c.ch {
		if err == nil {
			_, err = c.dst.Write(b)
		}
		c.free <- b[:0]
	}
	c.done <- err
}

func (c *inputCopy) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for rest := p[:n]; len(rest) > 0; {
		var b []byte
		if c.allocated < copyChunks {
			select {
			case b = <-c.free:
			default:
				c.allocated++
				b = make([]byte, 0, copyChunk)
			}
		} else {
			b = <-c.free
		}
		k := min(len(rest), copyChunk)
		c.ch <- append(b, rest[:k]...)
		rest = rest[k:]
	}
	c.n += int64(n)
	return n, err
}

// finish waits for the copy and returns the bytes copied.
func (c *inputCopy) finish() (int64, error) {
	close(c.ch)
	if err := <-c.done; err != nil {
		return 0, fmt.Errorf("copy to the output: %w", err)
	}
	return c.n, nil
}

// CopiedOutput is an output file that Open filled with a copy of the input
// (OpenOptions.CopyTo): WriteTo with WriteOptions.Copied cuts it to the
// bytes the write mode keeps and writes the new segment after them. An
// *os.File is one.
type CopiedOutput interface {
	io.Writer
	io.Seeker
	Truncate(size int64) error
}

// keepCopied positions w after the first keep bytes of the input copy.
func (img *Image) keepCopied(w io.Writer, keep int64) error {
	out, ok := w.(CopiedOutput)
	if !ok {
		return errors.New("WriteOptions.Copied: the output cannot be truncated and positioned (not a file)")
	}
	if img.copied != img.Size {
		return fmt.Errorf("WriteOptions.Copied: the image was opened with a copy of %d bytes of its %d", img.copied, img.Size)
	}
	if err := out.Truncate(keep); err != nil {
		return err
	}
	_, err := out.Seek(keep, io.SeekStart)
	return err
}
