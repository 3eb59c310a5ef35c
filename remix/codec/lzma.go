package codec

import (
	"io"

	"github.com/initrd-remix/initrd-remix/remix/codec/internal/lzmadec"
)

// lzma: the legacy .lzma format (13-byte header, then range-coded data up to
// the end marker or the size in the header). Magic 5d 00 00: properties
// lc=3 lp=0 pb=2 and a dictionary of at least 64 KiB. Read only.
func lzmaFormat() format {
	return format{
		codec:  LZMA,
		magics: []string{"\x5d\x00\x00"},
		open:   func(s *stream, lim limits, _ *Decoders) error { return s.openLZMA(lim) },
	}
}

func (s *stream) openLZMA(lim limits) error {
	// The decoder peeks at a window of the source and discards only the
	// bytes it used, so the cursor ends just after the stream; the
	// dictionary size is checked against the bound before allocating.
	r, err := lzmadec.NewReader(peekCursor{s.cur}, lim.dict)
	if err != nil {
		return err
	}
	s.dec = r
	return nil
}

// peekCursor is the cursor as lzmadec's Input: Discard consumes bytes
// already peeked, counting them.
type peekCursor struct{ c *cursor }

func (p peekCursor) Peek(n int) ([]byte, error) { return p.c.src.Peek(n) }

// Size is the source's buffer size when it says (*bufio.Reader does).
func (p peekCursor) Size() int {
	if s, ok := p.c.src.(interface{ Size() int }); ok {
		return s.Size()
	}
	return 0
}

func (p peekCursor) Discard(n int) (int, error) {
	if d, ok := p.c.src.(interface{ Discard(int) (int, error) }); ok {
		k, err := d.Discard(n)
		p.c.n += int64(k)
		return k, err
	}
	var buf [512]byte
	done := 0
	for done < n {
		k, err := p.c.Read(buf[:min(len(buf), n-done)])
		done += k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
	}
	return done, nil
}
