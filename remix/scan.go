package remix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// DefaultMaxUncompressed bounds the decompressed size of one image. Real
// initrds hold tens to a few hundred MiB; a stream that inflates past this
// is treated as hostile rather than filling memory or disk.
const DefaultMaxUncompressed int64 = 4 << 30

// ErrTooLarge is returned when the decompressed data exceeds the limit.
var ErrTooLarge = errors.New("decompressed size exceeds the limit")

// DefaultMaxMetadata bounds the memory an image's entries may take once
// read (see ScanOptions.MaxMetadata). Generators' images have 1,500 to
// 9,000 entries (about 10 MiB charged); this admits about 250,000 entries
// of short names, and keeps inspect, build and repack of a hostile image
// of millions of empty files below 600 MiB (measured: repack, the
// hungriest, peaks at 357 MiB with short names, 564 MiB with 4,000-byte
// ones).
const DefaultMaxMetadata int64 = 256 << 20

// EntryCost is what each entry and each segment is charged against
// ScanOptions.MaxMetadata on top of its name and link target: about what
// one costs at the peak of the hungriest command (repack, measured at 1.3
// KB per empty file of a short name, garbage included).
const EntryCost = 1024

// MetadataError is returned when an image's entries would take more memory
// than ScanOptions.MaxMetadata allows: a hostile image of millions of empty
// files is small on disk and in decompressed bytes, but not in memory.
type MetadataError struct {
	Limit   int64 // the budget in bytes
	Entries int   // entries read before the one that did not fit
}

func (e *MetadataError) Error() string {
	limit := fmt.Sprintf("%d bytes", e.Limit)
	if e.Limit%(1<<20) == 0 {
		limit = fmt.Sprintf("%d MiB", e.Limit>>20)
	}
	return fmt.Sprintf("the image's entries exceed the metadata limit of %s after %d entries (each entry counts %d bytes plus its name and link target)",
		limit, e.Entries, EntryCost)
}

// metaBudget is what is left of ScanOptions.MaxMetadata.
type metaBudget struct {
	limit, left int64 // left < 0 with limit < 0: no limit
	entries     int
}

func newMetaBudget(limit int64) *metaBudget {
	if limit == 0 {
		limit = DefaultMaxMetadata
	}
	return &metaBudget{limit: limit, left: limit}
}

// charge takes n bytes, or fails with a *MetadataError once they are spent.
func (b *metaBudget) charge(n int64) error {
	if b.limit < 0 {
		return nil
	}
	if n > b.left {
		return &MetadataError{Limit: b.limit, Entries: b.entries}
	}
	b.left -= n
	return nil
}

// entry charges one entry whose header is h, before anything keeps it.
func (b *metaBudget) entry(h *newc.Header) error {
	n := int64(EntryCost + len(h.Name))
	if h.Type() == newc.TypeSymlink {
		n += h.Size
	}
	if err := b.charge(n); err != nil {
		return err
	}
	b.entries++
	return nil
}

// Segment is one piece of an initrd file: an uncompressed cpio archive (or
// part of one) or one compressed stream (one gzip member, one zstd frame, one
// xz stream...) holding archives or parts of them.
//
// The kernel does not reset its cpio state between segments: an archive
// runs from its first header to its TRAILER!!! entry (or the end of the
// file), whatever segments it crosses, and a segment may end at any entry
// boundary. So one archive may be cut over several zstd frames or gzip
// members; its hard links still group across them.
type Segment struct {
	Index       int         `json:"index"`
	Offset      int64       `json:"offset"`
	Length      int64       `json:"length"`
	Compression codec.Codec `json:"compression"`
	// Archives counts the archives whose first header is in this segment
	// (a trailer-only archive included); an archive that merely continues
	// here from an earlier segment is not counted again.
	Archives int `json:"archives"`
	// Continues is set when the segment's first entries belong to an
	// archive that an earlier segment started and did not terminate.
	Continues bool `json:"continues"`
	// Unterminated is set when the segment's last archive has no trailer
	// in it: it goes on in the next segment, or ends with the file.
	Unterminated     bool  `json:"unterminated"`
	Entries          int   `json:"entries"`
	UncompressedSize int64 `json:"uncompressed_size"`
	// Padding counts the zero bytes after the segment, before the next one
	// or the end of the file.
	Padding int64 `json:"padding"`
	// Early marks uncompressed archives before the first compressed
	// segment: the kernel's early loaders (microcode, ACPI tables) read
	// only those, so writers keep them first and byte for byte.
	Early     bool `json:"early"`
	Microcode bool `json:"microcode"`

	mainNames bool // holds names outside the early loaders' namespace
}

// isEarlyName reports whether an archive name belongs to what the kernel's
// early loaders read (microcode, ACPI table overrides) or to dracut's marker
// of its early archive.
func isEarlyName(canonical string) bool {
	return canonical == "." || canonical == "early_cpio" || canonical == "kernel" || strings.HasPrefix(canonical, "kernel/")
}

// End returns the offset just past the segment and its padding.
func (s *Segment) End() int64 { return s.Offset + s.Length + s.Padding }

// ScanOptions bounds the work Scan does on untrusted input.
type ScanOptions struct {
	// MaxUncompressed caps the total decompressed bytes; 0 means
	// DefaultMaxUncompressed.
	MaxUncompressed int64
	// MaxMetadata caps the memory the entries of the image take once
	// read, whatever their bytes: every entry and every segment is charged
	// EntryCost plus its name and link target before it is handed on, and
	// Scan fails with a *MetadataError rather than exceed it. 0 means
	// DefaultMaxMetadata; a negative value, no limit (for output the
	// caller made from a tree already bounded).
	MaxMetadata int64
	// ParallelDecodeMemory, when positive, bounds the memory the decoders
	// hold to decode a stream on several cores (codec.Decoders'
	// ParallelMemory): a caller that must stay small trades speed for it.
	// 0: every core decodes.
	ParallelDecodeMemory int64
}

// EntryFunc receives each cpio entry in file order. archive counts the cpio
// archives of the file from 0, as the kernel delimits them: by TRAILER!!!
// entries, not by segments (hard links are grouped per archive). body is
// valid until the function returns; unread bytes are skipped.
type EntryFunc func(seg *Segment, archive int, h *newc.Header, body io.Reader) error

// archiveState is the kernel's cpio state that survives segment boundaries:
// which archive the next entry belongs to, and whether that archive has
// begun (its first header read, its trailer not yet).
type archiveState struct {
	archive int
	open    bool
}

// ScanError locates a failure in the image: the file offset of the segment
// and, inside a compressed segment, the offset in its decompressed data.
type ScanError struct {
	Segment            int
	Offset             int64 // file offset where the problem is or its segment starts
	Compression        codec.Codec
	UncompressedOffset int64 // -1 when the problem is in the file itself
	Err                error
}

func (e *ScanError) Error() string {
	// The offset is said once, here: a cpio format error at the top is
	// located at this very offset (Scan takes it from there), so only its
	// message follows.
	msg := e.Err
	if fe, ok := e.Err.(*newc.FormatError); ok {
		msg = fe.Err
	}
	if e.UncompressedOffset >= 0 && e.Compression != codec.None {
		return fmt.Sprintf("segment %d (%s stream at offset %d), decompressed offset %d: %v",
			e.Segment, e.Compression, e.Offset, e.UncompressedOffset, msg)
	}
	return fmt.Sprintf("offset %d: %v", e.Offset, msg)
}

func (e *ScanError) Unwrap() error { return e.Err }

// limitReader fails, rather than truncating, once more than the remaining
// budget is read, so a decompression bomb is reported, not cut short.
type limitReader struct {
	r      io.Reader
	budget *int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	*l.budget -= int64(n)
	if *l.budget < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

// Scan reads an initrd from r and calls fn for every entry, streaming: it
// never holds more than one entry's header and a buffer in memory. It
// returns the segments found. The layout rules are the kernel's: zero bytes
// are padding, a '0' at a 4-byte aligned offset starts an uncompressed
// archive (or continues an unterminated one), anything else must be the
// magic of a known compressor, and a compressed stream must end at an entry
// boundary (after an entry's padding), not inside an entry. An archive
// continues across segments until its TRAILER!!! or the end of the file.
func Scan(ctx context.Context, r io.Reader, opt ScanOptions, fn EntryFunc) ([]Segment, error) {
	budget := opt.MaxUncompressed
	if budget <= 0 {
		budget = DefaultMaxUncompressed
	}
	meta := newMetaBudget(opt.MaxMetadata)
	cr := &countio.Reader{R: r}
	br := bufio.NewReaderSize(cr, 256<<10)
	pos := func() int64 { return cr.N - int64(br.Buffered()) }
	var segs []Segment
	var st archiveState
	// One set of decoders for the whole file: images cut into many zstd
	// frames or gzip members reuse one decoder instead of setting one up
	// per stream.
	decs := codec.Decoders{ParallelMemory: opt.ParallelDecodeMemory}
	defer decs.Close()
	// Early archives are the leading uncompressed ones that hold only the
	// early loaders' namespace; once anything else is seen, none follow.
	earlyOpen := true
	for {
		if err := ctx.Err(); err != nil {
			return segs, err
		}
		b, err := br.Peek(1)
		if err == io.EOF {
			return segs, nil
		}
		if err != nil {
			return segs, &ScanError{Segment: len(segs), Offset: pos(), UncompressedOffset: -1, Err: err}
		}
		if b[0] == 0 {
			n, err := skipZeros(br)
			if len(segs) > 0 {
				segs[len(segs)-1].Padding += n
			} else {
				// Leading zeros before any segment: nothing to attach them
				// to, so record them as an empty uncompressed segment.
				segs = append(segs, Segment{Index: 0, Offset: 0, Compression: codec.None, Padding: n, Early: true})
			}
			if err != nil && err != io.EOF {
				return segs, &ScanError{Segment: len(segs), Offset: pos(), UncompressedOffset: -1, Err: err}
			}
			continue
		}
		seg := Segment{Index: len(segs), Offset: pos(), Continues: st.open}
		if err := meta.charge(EntryCost); err != nil {
			return segs, &ScanError{Segment: seg.Index, Offset: seg.Offset, UncompressedOffset: -1, Err: err}
		}
		if b[0] == '0' {
			if seg.Offset&3 != 0 {
				return segs, &ScanError{Segment: seg.Index, Offset: seg.Offset, UncompressedOffset: -1,
					Err: errors.New("cpio archive starts at an offset that is not 4-byte aligned (the kernel rejects it)")}
			}
			seg.Compression = codec.None
			lr := &limitReader{r: br, budget: &budget}
			// The newc reader never reads ahead, so after the trailer (or
			// the last entry of an unterminated archive) br sits exactly
			// at the next byte of the file.
			if err := readArchive(ctx, &seg, &st, newc.NewReader(lr, seg.Offset), br, meta, fn); err != nil {
				return segs, &ScanError{Segment: seg.Index, Offset: errOffset(err, seg.Offset), UncompressedOffset: -1, Err: err}
			}
			seg.Unterminated = st.open
			seg.Early = earlyOpen && !seg.mainNames
			earlyOpen = seg.Early
			seg.Length = pos() - seg.Offset
			seg.UncompressedSize = seg.Length
			segs = append(segs, seg)
			continue
		}
		magic, _ := br.Peek(codec.MagicLen)
		c, ok := codec.Detect(magic)
		if !ok {
			return segs, &ScanError{Segment: seg.Index, Offset: seg.Offset, UncompressedOffset: -1,
				Err: fmt.Errorf("unknown magic % x: not a cpio archive nor a compressed stream the kernel knows", magic)}
		}
		if len(segs) > 0 && segs[len(segs)-1].Compression == codec.None && seg.Offset&3 != 0 {
			return segs, &ScanError{Segment: seg.Index, Offset: seg.Offset, UncompressedOffset: -1,
				Err: errors.New("broken padding: a stream after an uncompressed archive must start 4-byte aligned")}
		}
		earlyOpen = false
		seg.Compression = c
		n, err := scanCompressed(ctx, &seg, &st, br, &budget, meta, &decs, fn)
		seg.UncompressedSize = n
		if err != nil {
			var se *ScanError
			if errors.As(err, &se) {
				return segs, se
			}
			return segs, &ScanError{Segment: seg.Index, Offset: seg.Offset, Compression: c, UncompressedOffset: n, Err: err}
		}
		seg.Length = pos() - seg.Offset
		segs = append(segs, seg)
	}
}

// scanCompressed decodes one stream and walks the archives inside it, with
// the kernel's flush_buffer rules: archives may follow each other, zero
// bytes between them are padding, anything else is junk; the stream may
// continue the archive of the previous segment and may stop at any entry
// boundary, but not inside an entry (the kernel's "junk at the end of
// compressed archive").
func scanCompressed(ctx context.Context, seg *Segment, st *archiveState, br *bufio.Reader, budget *int64, meta *metaBudget, decs *codec.Decoders, fn EntryFunc) (int64, error) {
	dec, err := decs.NewReader(seg.Compression, br)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	dc := &countio.Reader{R: &limitReader{r: dec, budget: budget}}
	db := bufio.NewReaderSize(dc, 256<<10)
	dpos := func() int64 { return dc.N - int64(db.Buffered()) }
	headers := 0
	for {
		if err := ctx.Err(); err != nil {
			return dpos(), err
		}
		b, err := db.Peek(1)
		if err == io.EOF {
			break
		}
		if err != nil {
			return dpos(), err
		}
		switch {
		case b[0] == 0:
			if _, err := skipZeros(db); err != nil && err != io.EOF {
				return dpos(), err
			}
		case b[0] == '0' && dpos()&3 == 0:
			start := dpos()
			headers++
			if err := readArchive(ctx, seg, st, newc.NewReader(db, start), db, meta, fn); err != nil {
				if errors.Is(err, newc.ErrTruncated) {
					const why = "compressed stream ends inside a cpio entry (the kernel rejects it as junk at the end of compressed archive)"
					if fe, ok := err.(*newc.FormatError); ok {
						err = &newc.FormatError{Offset: fe.Offset, Err: fmt.Errorf("%s: %w", why, fe.Err)}
					} else {
						err = fmt.Errorf("%s: %w", why, err)
					}
				}
				return errOffset(err, start), err
			}
		default:
			return dpos(), errors.New("junk within compressed archive (not a cpio header)")
		}
	}
	if headers == 0 {
		return dpos(), errors.New("compressed stream holds no cpio archive")
	}
	seg.Unterminated = st.open
	// Some decoders only verify their trailer (checksum, index) once the
	// caller reads past the end; make sure that happened.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return dpos(), err
	}
	return dpos(), nil
}

// readArchive reads entries from r, which starts at a cpio header, until
// the archive's trailer or until what follows an entry is not another
// header (zero padding, another stream's magic, the end of the data): there
// the archive stays open and goes on wherever the kernel finds its next
// header. next is the buffered reader under r, to look ahead of it.
func readArchive(ctx context.Context, seg *Segment, st *archiveState, r *newc.Reader, next *bufio.Reader, meta *metaBudget, fn EntryFunc) error {
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if n > 0 {
			if err := r.FinishEntry(); err != nil {
				return err
			}
			b, err := next.Peek(1)
			if err == io.EOF || (err == nil && b[0] != '0') {
				return nil
			}
			if err != nil {
				return err
			}
		}
		if !st.open {
			st.open = true
			seg.Archives++
		}
		h, err := r.Next()
		if err == io.EOF {
			// The trailer: the kernel frees its hard-link table here.
			st.open = false
			st.archive++
			return nil
		}
		if err != nil {
			return err
		}
		if err := meta.entry(h); err != nil {
			return &newc.FormatError{Offset: h.Offset, Err: err}
		}
		seg.Entries++
		name := Canonical(h.Name)
		if h.Type() == newc.TypeReg && strings.HasPrefix(name, "kernel/x86/microcode/") {
			seg.Microcode = true
		}
		if !isEarlyName(name) {
			seg.mainNames = true
		}
		if fn != nil {
			if err := fn(seg, st.archive, h, r); err != nil {
				return err
			}
		}
	}
}

func skipZeros(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		buf, err := br.Peek(br.Size())
		i := 0
		for i < len(buf) && buf[i] == 0 {
			i++
		}
		br.Discard(i)
		n += int64(i)
		if i < len(buf) || err != nil {
			return n, err
		}
	}
}

// errOffset returns the offset a newc error names, or def.
func errOffset(err error, def int64) int64 {
	var fe *newc.FormatError
	if errors.As(err, &fe) {
		return fe.Offset
	}
	return def
}
