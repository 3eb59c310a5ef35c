package remix

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/initrd-remix/initrd-remix/remix/internal/chunkpipe"
)

// copyChunks is how many reads of the file the copy may lag behind.
const copyChunks = 16

// inputCopy copies what Open reads from the file to OpenOptions.CopyTo on a
// goroutine of its own, through a buffered pipe whose chunks are recycled,
// so the write overlaps the decoding instead of following it (and an
// atomicfile.File starts writing back to disk as it goes). A failed write
// does not disturb reading: it is reported by finish.
type inputCopy struct {
	r    io.Reader
	pw   *chunkpipe.Writer
	done chan error

	// mu orders reads (on a decoder's goroutine) with stop.
	mu       sync.Mutex
	stopped  bool
	finished bool
	n        int64 // bytes handed to the goroutine
	err      error // the copy's, once finished
}

func newInputCopy(r io.Reader, dst io.Writer) *inputCopy {
	pr, pw := chunkpipe.New(copyChunks)
	c := &inputCopy{r: r, pw: pw, done: make(chan error, 1)}
	go func() {
		_, err := io.Copy(dst, pr)
		pr.CloseWithError(err)
		c.done <- err
	}()
	return c
}

func (c *inputCopy) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.mu.Lock()
		if !c.stopped {
			c.pw.Write(p[:n]) // an error here is the copy's, returned by finish
			c.n += int64(n)
		}
		c.mu.Unlock()
	}
	return n, err
}

// finish ends the copy where it stands, waits for it and returns the bytes
// copied: all that was read so far. Later reads are not copied.
func (c *inputCopy) finish() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished {
		c.stopped, c.finished = true, true
		c.pw.CloseWithError(nil)
		if err := <-c.done; err != nil {
			c.err = fmt.Errorf("copy to the output: %w", err)
		}
	}
	if c.err != nil {
		return 0, c.err
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

// keepCopied positions w, the input copy, after the bytes l keeps.
func (img *Image) keepCopied(w io.Writer, l layout) error {
	out, ok := w.(CopiedOutput)
	if !ok {
		return errors.New("WriteOptions.Copied: the output cannot be truncated and positioned (not a file)")
	}
	if img.copied != img.Size {
		return fmt.Errorf("WriteOptions.Copied: the image was opened with a copy of %d bytes of its %d", img.copied, img.Size)
	}
	return l.cutCopy(out)
}
