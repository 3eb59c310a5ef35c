package codec

import (
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// exactSource counts what a decoder consumes and lets it be handed back,
// for decoders that read one byte past their stream while looking for a
// concatenated one.
type exactSource struct {
	src Source
	n   int64
}

func (e *exactSource) Read(p []byte) (int, error) {
	n, err := e.src.Read(p)
	e.n += int64(n)
	return n, err
}

func (e *exactSource) ReadByte() (byte, error) {
	b, err := e.src.ReadByte()
	if err == nil {
		e.n++
	}
	return b, err
}

type xzReader struct {
	r  *xz.Reader
	pr *io.PipeReader
}

// newXZReader feeds the decoder through a pipe from a goroutine that
// delimits the stream. The goroutine's last read of src happens before it
// closes the pipe, so once the decoder reports the end, src is free again.
func newXZReader(src Source) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(delimitXZ(src, pw)) }()
	// DictCap is a floor for LZMA2 (the filter's size wins), so ask for the
	// minimum; checkXZBlockHeader bounds what the filter may ask for.
	cfg := xz.ReaderConfig{SingleStream: true, DictCap: lzma.MinDictCap}
	r, err := cfg.NewReader(pr)
	if err != nil {
		pr.CloseWithError(err)
		return nil, fmt.Errorf("xz: %w", err)
	}
	return &xzReader{r: r, pr: pr}, nil
}

func (x *xzReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("xz: %w", err)
	}
	return n, err
}

func (x *xzReader) Close() error {
	x.pr.CloseWithError(errors.New("xz reader closed"))
	return nil
}

// bzip2Reader stops after one stream, as the kernel's bunzip2 does. Go's
// decoder reads one byte past the end of a stream to look for a
// concatenated one; that byte is handed back to the source.
type bzip2Reader struct {
	src  *bzByteSource
	r    io.Reader
	done bool
}

// bzByteSource holds back the last three bytes read (by peeking instead of
// consuming), because at the end of a stream Go's decoder reads two bytes
// looking for the "BZ" of a concatenated stream before it gives up.
type bzByteSource struct {
	src     Source
	pending int
}

const bzHeldBack = 2

func (b *bzByteSource) Read(p []byte) (int, error) {
	b.settle()
	return b.src.Read(p)
}

func (b *bzByteSource) ReadByte() (byte, error) {
	buf, err := b.src.Peek(b.pending + 1)
	if len(buf) <= b.pending {
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	c := buf[b.pending]
	b.pending++
	if b.pending > bzHeldBack {
		b.src.Discard(1)
		b.pending--
	}
	return c, nil
}

// settle consumes every byte held back.
func (b *bzByteSource) settle() {
	b.src.Discard(b.pending)
	b.pending = 0
}

func newBzip2Reader(src Source) io.ReadCloser {
	bs := &bzByteSource{src: src}
	return &bzip2Reader{src: bs, r: bzip2.NewReader(bs)}
}

func (b *bzip2Reader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		b.src.settle()
		b.done = true
		return n, err
	}
	var se bzip2.StructuralError
	if errors.As(err, &se) && string(se) == "bad magic value in continuation file" && b.src.pending == bzHeldBack {
		// The stream ended; the two bytes after it belong to the next
		// segment and were only peeked at.
		b.src.pending = 0
		b.done = true
		return n, io.EOF
	}
	return n, fmt.Errorf("bzip2: %w", err)
}

func (b *bzip2Reader) Close() error { return nil }

type lzmaReader struct{ r *lzma.Reader }

func newLZMAReader(src Source) (io.ReadCloser, error) {
	cfg := lzma.ReaderConfig{DictCap: maxDictSize}
	r, err := cfg.NewReader(&exactSource{src: src})
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return &lzmaReader{r: r}, nil
}

func (l *lzmaReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("lzma: %w", err)
	}
	return n, err
}

func (l *lzmaReader) Close() error { return nil }
