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
// The package holds no mutable state: every reader and writer owns what it
// uses, and all tables are constants or are rebuilt per call.
package codec

import (
	"errors"
	"fmt"
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

// Detect names the codec whose magic number starts b.
//
// The kernel's table (lib/decompress.c) compares only two bytes and leaves
// the rest of the check to the decompressor; Detect compares the full magic
// of each format so that a stray "BZ" or "\x5d\x00" in junk is reported as
// an unknown magic rather than as a corrupt stream. Every stream the
// kernel's decompressors accept starts with these magics, with one
// theoretical exception: a legacy lzma stream with a dictionary under
// 64 KiB (no lzma tool writes one by default) has a non-zero third byte.
// Input shorter than a format's magic matches nothing.
func Detect(b []byte) (Codec, bool) {
	switch {
	case hasPrefix(b, "\x1f\x8b"), hasPrefix(b, "\x1f\x9e"): // 1f 9e: old gzip, still in the table
		return Gzip, true
	case hasPrefix(b, "BZh"):
		return Bzip2, true
	case hasPrefix(b, "\x5d\x00\x00"):
		return LZMA, true
	case hasPrefix(b, "\xfd7zXZ\x00"):
		return XZ, true
	case hasPrefix(b, "\x89LZO"):
		return LZO, true
	case hasPrefix(b, "\x02\x21\x4c\x18"):
		return LZ4, true
	case hasPrefix(b, "\x28\xb5\x2f\xfd"):
		return Zstd, true
	}
	return "", false
}

func hasPrefix(b []byte, magic string) bool {
	return len(b) >= len(magic) && string(b[:len(magic)]) == magic
}

// Parse reads a codec name as given to a --compress flag: the codec names,
// plus the aliases gz, zst, bz2 and cat/uncompressed for none. Case and
// surrounding space are ignored.
func Parse(name string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none", "cat", "uncompressed":
		return None, nil
	case "gzip", "gz":
		return Gzip, nil
	case "zstd", "zst":
		return Zstd, nil
	case "xz":
		return XZ, nil
	case "lz4":
		return LZ4, nil
	case "bzip2", "bz2":
		return Bzip2, nil
	case "lzma":
		return LZMA, nil
	case "lzo":
		return LZO, nil
	}
	return "", fmt.Errorf("unknown compression %q: valid names are none, gzip, zstd, xz, lz4 (writable) and bzip2, lzma, lzo (readable only)", name)
}

// Writable lists the codecs NewWriter produces, in a fresh slice.
func Writable() []Codec { return []Codec{None, Gzip, Zstd, XZ, LZ4} }

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
