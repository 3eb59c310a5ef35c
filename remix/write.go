package remix

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// WriteMode chooses how an edited image is laid out.
type WriteMode string

const (
	// Rewrite keeps the early uncompressed archives byte for byte and
	// writes everything else as one new compressed archive of the merged
	// tree: the smallest result, and it drops what later entries shadowed.
	Rewrite WriteMode = "rewrite"
	// Append keeps the whole original file byte for byte and adds one
	// segment holding only the edits, which the kernel applies last: the
	// fastest result, since nothing is decompressed or recompressed.
	Append WriteMode = "append"
)

// ParseWriteMode accepts "rewrite" and "append".
func ParseWriteMode(s string) (WriteMode, error) {
	switch WriteMode(s) {
	case Rewrite, Append:
		return WriteMode(s), nil
	}
	return "", fmt.Errorf("unknown write mode %q (want rewrite or append)", s)
}

// WriteOptions control Image.WriteTo.
type WriteOptions struct {
	Mode        WriteMode
	Compression codec.Codec // of the new segment; "" means zstd
	Level       int         // codec level; 0 is the codec's default
	Concurrency int         // encoder threads; 0 is GOMAXPROCS
	// FrameSize is the uncompressed size of the independent zstd frames
	// or gzip members the new archive is cut into, at entry boundaries,
	// to compress them in parallel; 0 is codec.DefaultFrameSize.
	FrameSize int
	// Window is the zstd window (see codec.WriterOptions); 0 is 8 MiB.
	Window int
	// Verify decodes the new segment while it is written, on another
	// core, and checks that it follows the kernel's layout rules and holds
	// exactly the entries and contents intended; WriteTo fails otherwise.
	Verify bool
	// Splice, when set with zstd, may return a body compressed ahead of
	// time for a regular file's content (codec.SpliceEncoder, made with
	// this Level and Window): the entry is then written as a zstd frame
	// of its own around those blocks, not compressed again. It is asked
	// once per content written; what it returns must depend only on the
	// content (never on timing), so that the output does too. nil
	// compresses every body in the frames.
	Splice func(Content) (*codec.Spliced, error)
	// Copied says w is the OpenOptions.CopyTo of the Open that made the
	// image, a CopiedOutput holding the whole input: WriteTo cuts it to
	// the bytes the mode keeps instead of reading the input again.
	Copied bool
}

// WriteResult describes what WriteTo produced.
type WriteResult struct {
	Mode        WriteMode   `json:"mode"`
	Compression codec.Codec `json:"compression"`
	Bytes       int64       `json:"bytes"`
	KeptBytes   int64       `json:"kept_bytes"`  // copied unchanged from the input
	NewEntries  int         `json:"new_entries"` // entries in the new segment
	// NewSegmentOffset is where the new segment starts, -1 if none.
	NewSegmentOffset int64 `json:"new_segment_offset"`
	// Streamed is set when Repack wrote the new archive while reading the
	// input (see Repack).
	Streamed bool `json:"streamed"`
	written  []writtenEntry
	// closesArchive is set when the new segment starts with a lone
	// trailer, closing an archive the kept bytes left open.
	closesArchive bool
}

// WriteTo writes the image to w in the chosen mode. The original file at
// img.Path is re-read for the bytes that are kept.
func (img *Image) WriteTo(ctx context.Context, w io.Writer, opt WriteOptions) (*WriteResult, error) {
	if opt.Compression == "" {
		opt.Compression = codec.Zstd
	}
	if opt.Mode == "" {
		opt.Mode = Rewrite
	}
	if img.spool == nil {
		return nil, errors.New("image was opened for metadata only; it cannot be written")
	}
	res := &WriteResult{Mode: opt.Mode, Compression: opt.Compression, NewSegmentOffset: -1}
	l, err := planLayout(img.Segments, img.Size, opt.Mode)
	if err != nil {
		return nil, err
	}
	cw := &countio.Writer{W: w}
	switch {
	case opt.Copied:
		if err := img.keepCopied(w, l); err != nil {
			return nil, err
		}
		cw.N = l.keep
	case l.keep > 0:
		if err := copyPrefix(cw, img.Path, l.keep); err != nil {
			return nil, err
		}
	}
	res.KeptBytes = l.keep
	res.closesArchive = l.closesArchive
	nodes := newNodes(img.Tree, l.minGen)
	if len(nodes) > 0 {
		if err := l.padBefore(cw); err != nil {
			return nil, err
		}
		res.NewSegmentOffset = cw.N
		n, err := writeVerified(ctx, cw, nodes, opt, res)
		if err != nil {
			return nil, err
		}
		res.NewEntries = n
		if err := padArchiveEnd(cw, opt.Compression); err != nil {
			return nil, err
		}
	}
	res.Bytes = cw.N
	return res, nil
}
