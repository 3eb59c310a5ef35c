package codec

import "github.com/ulikunitz/xz/lzma"

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
	// DictCap is a limit (since ulikunitz/xz 0.5.14), checked against the
	// header before the dictionary is allocated. The decoder reads the
	// cursor as an io.ByteReader and normalises its range coder after each
	// bit, so it consumes exactly the encoder's output, end marker and
	// final flush bytes included.
	r, err := lzma.ReaderConfig{DictCap: int(lim.dict)}.NewReader(s.cur)
	if err != nil {
		return err
	}
	s.dec = r
	return nil
}
