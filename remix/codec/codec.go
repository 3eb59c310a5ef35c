// Package codec is the one place in initrd-remix that knows the compressors
// the Linux kernel accepts for initrd segments. It does three things:
//
//   - Detect recognises a compressed stream by its leading bytes, as the
//     kernel's decompress_method table does (lib/decompress.c).
//   - NewReader decodes exactly one stream (one gzip member, one zstd frame,
//     one xz stream, ...) and consumes from its source exactly the bytes of
//     that stream, so the caller learns where the stream ends and where the
//     next segment of the initrd starts — the position the kernel's
//     decompressors report back to init/initramfs.c.
//   - NewWriter encodes one stream the kernel boots: gzip without name and
//     time, one zstd frame with a window of at most 8 MiB and no skippable
//     frames, xz with a CRC32 check and LZMA2, lz4 in the legacy format.
//
// Each format lives in a file of its own (gzip.go, zstd.go, xz.go, lz4.go,
// bzip2.go, lzma.go, lzo.go) with its magic, its reader, its writer if the
// kernel-safe output can be written, and the kernel's limits; formats() in
// codec.go is the registry that Detect, Parse, Writable, NewReader and
// NewWriter consult.
//
// The package holds no mutable state: every reader and writer owns what it
// uses, and all tables are constants or are rebuilt per call.
package codec

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Codec names a compression format of initrd segments.
type Codec string

// The formats the kernel knows (plus None for uncompressed cpio).
const (
	None  Codec = "none"
	Gzip  Codec = "gzip"
	Zstd  Codec = "zstd"
	XZ    Codec = "xz"
	LZ4   Codec = "lz4"
	Bzip2 Codec = "bzip2"
	LZMA  Codec = "lzma"
	LZO   Codec = "lzo"
)

// MagicLen is the number of leading bytes Detect needs at most.
const MagicLen = 6

// ErrUnsupported is wrapped by the errors for what this package cannot do:
// writing bzip2, lzma or lzo, and stream features that the kernel's own
// decompressors support but the Go decoders do not (xz BCJ filters).
var ErrUnsupported = errors.New("not supported")

// A format is one compressor the kernel knows, everything this package does
// with it in one place: its names, its magic numbers, how one stream is
// opened for reading, how one is written (nil for a format the kernel reads
// but nothing here writes), and the kernel's limits on what follows it.
// Each format's file holds its format; formats lists them all.
type format struct {
	codec   Codec
	aliases []string // more names Parse accepts
	// magics start every stream of the format. The kernel's table
	// (lib/decompress.c) compares only two bytes and leaves the rest of
	// the check to the decompressor; Detect compares the full magic so
	// that a stray "BZ" or "\x5d\x00" in junk is an unknown magic rather
	// than a corrupt stream.
	magics []string
	// open sets up s to decode one stream at s.cur.
	open func(s *stream, lim limits, cache *Decoders) error
	// newWriter returns an encoder of streams the kernel boots; nil when
	// the format is only read.
	newWriter func(w io.Writer, o WriterOptions) (io.WriteCloser, error)
	// trailingZeros is how many zero bytes must follow a stream of the
	// format when anything follows it (a format without end marker).
	trailingZeros int
}

// formats is the registry, in the order names are listed to users: the
// writable formats first. Adding a codec is its file and one line here.
func formats() []format {
	return []format{gzipFormat(), zstdFormat(), xzFormat(), lz4Format(), bzip2Format(), lzmaFormat(), lzoFormat()}
}

// lookup returns the registered format of c.
func lookup(c Codec) (format, bool) {
	for _, f := range formats() {
		if f.codec == c {
			return f, true
		}
	}
	return format{}, false
}

// Detect names the codec whose magic number starts b.
//
// Every stream the kernel's decompressors accept starts with its format's
// full magic, with one theoretical exception: a legacy lzma stream with a
// dictionary under 64 KiB (no lzma tool writes one by default) has a
// non-zero third byte. Input shorter than a format's magic matches nothing.
func Detect(b []byte) (Codec, bool) {
	for _, f := range formats() {
		for _, m := range f.magics {
			if len(b) >= len(m) && string(b[:len(m)]) == m {
				return f.codec, true
			}
		}
	}
	return "", false
}

// Parse reads a codec name as given to a --compress flag: the codec names,
// plus the aliases gz, zst, bz2 and cat/uncompressed for none. Case and
// surrounding space are ignored.
func Parse(name string) (Codec, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == string(None) || n == "cat" || n == "uncompressed" {
		return None, nil
	}
	var readOnly []string
	for _, f := range formats() {
		if n == string(f.codec) || slices.Contains(f.aliases, n) {
			return f.codec, nil
		}
		if f.newWriter == nil {
			readOnly = append(readOnly, string(f.codec))
		}
	}
	return "", fmt.Errorf("unknown compression %q: valid names are %s (writable) and %s (readable only)", name, joinCodecs(Writable()), strings.Join(readOnly, ", "))
}

// Writable lists the codecs NewWriter produces, in a fresh slice.
func Writable() []Codec {
	out := []Codec{None}
	for _, f := range formats() {
		if f.newWriter != nil {
			out = append(out, f.codec)
		}
	}
	return out
}

// TrailingZeros is how many zero bytes the kernel needs after a stream of c
// when anything follows it in the image: 4 after legacy lz4, which has no
// end marker (the zero word ends it), 0 for the others.
func TrailingZeros(c Codec) int {
	f, _ := lookup(c)
	return f.trailingZeros
}

func joinCodecs(cs []Codec) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// StreamError reports a corrupt, truncated or unsupported stream. Offset
// counts the bytes of the stream (from its first magic byte) that had been
// consumed when the problem was found, so the fault lies at or shortly
// before it; add the stream's offset in the file to locate it there.
type StreamError struct {
	Codec  Codec
	Offset int64
	Err    error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("%s stream: at byte %d: %v", e.Codec, e.Offset, e.Err)
}

func (e *StreamError) Unwrap() error { return e.Err }
