// Package newc reads and writes cpio archives in the "newc" (070701) and
// "crc" (070702) formats, the only ones the Linux kernel unpacks into its
// initial root filesystem (init/initramfs.c).
//
// The project owns this codec instead of using an existing library because
// an initrd has to survive a read and rewrite exactly:
// github.com/cavaliergopher/cpio drops device major/minor numbers (so
// /dev/console loses 5,1) and cannot write symlinks, and u-root's writer
// drops later duplicates although the kernel keeps the last one. The codec
// is small, tested against GNU cpio as an oracle and against the kernel's
// unpacking rules.
//
// The Reader never reads ahead of the bytes it needs and has no internal
// buffer: an initrd is a concatenation of segments (zero padding, cpio
// archives, compressed streams), and the caller resumes scanning the image
// exactly where an archive ends. Callers that want speed wrap the source in
// a bufio.Reader themselves.
//
// The Reader is stricter than the kernel, which silently skips an entry
// with an impossible name size, a body on a directory or device, or a
// symlink target longer than PATH_MAX: an image that relies on such skips
// cannot be rewritten faithfully, so this package reports them as errors.
// It also verifies the 070702 checksum of regular files, as recent kernels
// do, because a mismatch means corruption.
//
// The Writer always writes 070701 with a zero checksum, the one format every
// kernel accepts, and writes each header in one call straight through to
// the underlying writer, so an archive needs no Flush.
package newc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Magic numbers, the trailer name and the kernel's name limit.
const (
	MagicNewc  = "070701"
	MagicCRC   = "070702"
	Trailer    = "TRAILER!!!"
	MaxNameLen = 4096 // PATH_MAX including the NUL, as init/initramfs.c checks
)

// File type bits of Header.Mode, as in <sys/stat.h>.
const (
	TypeMask    uint32 = 0o170000
	TypeReg     uint32 = 0o100000
	TypeDir     uint32 = 0o040000
	TypeSymlink uint32 = 0o120000
	TypeChar    uint32 = 0o020000
	TypeBlock   uint32 = 0o060000
	TypeFIFO    uint32 = 0o010000
	TypeSocket  uint32 = 0o140000
)

const (
	headerLen = 6 + 13*8 // magic and 13 fields of 8 hex digits
	maxSize   = 0xffffffff
	zeros     = "\x00\x00\x00"
	// fieldNames names the header fields in order, for error messages.
	fieldNames = "ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check"
)

// Byte offsets of header fields that errors point at.
const (
	offSize     = 6 + 6*8
	offNameSize = 6 + 11*8
	offCheck    = 6 + 12*8
)

// ErrTruncated reports an archive that ends inside a header, a name, a body
// or padding, including an empty input where an archive was expected.
// Errors wrapping it also wrap io.ErrUnexpectedEOF.
var ErrTruncated = errors.New("cpio archive is truncated")

// Header is one cpio entry.
type Header struct {
	Magic     string // as read (070701 or 070702); ignored on write (always 070701)
	Ino       uint32
	Mode      uint32 // permission and type bits (TypeReg, TypeDir, ...)
	UID, GID  uint32
	Nlink     uint32
	Mtime     uint32
	Size      int64 // body length, 0..0xffffffff
	DevMajor  uint32
	DevMinor  uint32
	RDevMajor uint32
	RDevMinor uint32
	Check     uint32 // as read; ignored on write (always 0)
	Name      string // exactly as stored, without the terminating NUL
	Offset    int64  // read only: where the header starts, base included
}

// Type returns the file type bits of the mode.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// IsTrailer reports whether h is the end-of-archive marker.
func (h *Header) IsTrailer() bool { return h.Name == Trailer }

// FormatError locates a malformed or truncated archive. Offset counts from
// the base given to NewReader.
type FormatError struct {
	Offset int64
	Err    error
}

func (e *FormatError) Error() string { return fmt.Sprintf("offset %d: %v", e.Offset, e.Err) }
func (e *FormatError) Unwrap() error { return e.Err }

// pad4 is the padding that brings n to a multiple of 4. The archive start
// is 4-aligned, so aligning lengths relative to it is enough.
func pad4(n int64) int64 { return (4 - n&3) & 3 }

func truncated(off int64) error {
	return &FormatError{Offset: off, Err: fmt.Errorf("%w (%w)", ErrTruncated, io.ErrUnexpectedEOF)}
}

// Reader reads one archive, entry by entry.
type Reader struct {
	r      io.Reader
	off    int64 // base + bytes consumed from r
	remain int64 // unread body bytes of the current entry
	pad    int64 // padding after the current body

	// A 070702 regular file's body is summed as it passes, header value in want.
	summing   bool
	sum, want uint32

	// err is sticky: io.EOF once the trailer is consumed, or the first
	// failure, since nothing after a failure can be located reliably.
	err error

	// buf holds a header, then a name and its padding; it doubles as scratch
	// space for skipping bodies, so reading allocates only the name string.
	buf [headerLen + MaxNameLen + 3]byte
}

// NewReader reads an archive from r. base is the offset of the archive in
// whatever the caller reports offsets against (the image file, or a
// decompressed stream); the archive start is assumed to be 4-byte aligned.
func NewReader(r io.Reader, base int64) *Reader {
	return &Reader{r: r, off: base}
}

// Offset returns base plus the bytes consumed from the underlying reader.
func (r *Reader) Offset() int64 { return r.off }

// fill reads exactly len(p) bytes, turning any early end into a
// FormatError at the offset where the data stopped.
func (r *Reader) fill(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return truncated(r.off)
	case err != nil:
		return fmt.Errorf("reading cpio archive at offset %d: %w", r.off, err)
	}
	return nil
}

// account sums body bytes of a 070702 regular file and checks the sum once
// the body is complete.
func (r *Reader) account(p []byte) error {
	if !r.summing {
		return nil
	}
	for _, c := range p {
		r.sum += uint32(c)
	}
	if r.remain == 0 && r.sum != r.want {
		return &FormatError{Offset: r.off, Err: fmt.Errorf("070702 checksum of the body is %#x, header says %#x", r.sum, r.want)}
	}
	return nil
}

// skipBody consumes what the caller left of the current body, and its
// padding, through the scratch buffer so the checksum is still verified.
// Without a checksum, a source that can discard (a *bufio.Reader) skips
// without copying: most of an initrd's bytes are module bodies that a
// metadata-only read never looks at.
func (r *Reader) skipBody() error {
	if d, ok := r.r.(interface{ Discard(int) (int, error) }); ok && !r.summing {
		for r.remain > 0 {
			n, err := d.Discard(int(min(r.remain, 1<<30)))
			r.off += int64(n)
			r.remain -= int64(n)
			if err != nil {
				if err == io.EOF {
					return truncated(r.off)
				}
				return fmt.Errorf("reading cpio body at offset %d: %w", r.off, err)
			}
		}
	}
	for r.remain > 0 {
		chunk := r.buf[:min(r.remain, int64(len(r.buf)))]
		if err := r.fill(chunk); err != nil {
			return err
		}
		r.remain -= int64(len(chunk))
		if err := r.account(chunk); err != nil {
			return err
		}
	}
	if err := r.fill(r.buf[:r.pad]); err != nil {
		return err
	}
	r.pad = 0
	return nil
}

// FinishEntry consumes the rest of the current entry's body and its
// padding, so the underlying reader sits exactly where the next header
// would start. A caller uses it to look at what follows an entry before
// deciding to call Next: the kernel lets an archive stop at any entry
// boundary and continue in the next segment of the image.
func (r *Reader) FinishEntry() error {
	if r.err != nil {
		if r.err == io.EOF {
			return nil
		}
		return r.err
	}
	if err := r.skipBody(); err != nil {
		r.err = err
		return err
	}
	return nil
}

// Next advances to the next entry, skipping the unread body of the previous
// one. After consuming the trailer entry and its padding it returns io.EOF,
// leaving the underlying reader just past them.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	h, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return h, nil
}

func (r *Reader) next() (*Header, error) {
	if err := r.skipBody(); err != nil {
		return nil, err
	}
	r.summing = false // a trailer's body must not count towards the last file
	start := r.off
	hdr := r.buf[:headerLen]
	if err := r.fill(hdr); err != nil {
		return nil, err
	}
	var magic string // set from the constants so that no string is allocated
	switch string(hdr[:6]) {
	case MagicNewc:
		magic = MagicNewc
	case MagicCRC:
		magic = MagicCRC
	default:
		return nil, &FormatError{Offset: start, Err: fmt.Errorf("bad cpio magic %q (want %s or %s)", hdr[:6], MagicNewc, MagicCRC)}
	}
	var f [13]uint32
	for i := range f {
		field := hdr[6+8*i : 14+8*i]
		v, ok := parseHex8(field)
		if !ok {
			return nil, &FormatError{Offset: start + 6 + 8*int64(i),
				Err: fmt.Errorf("header field %s is not 8 hex digits: %q", strings.Fields(fieldNames)[i], field)}
		}
		f[i] = v
	}
	namesize := int64(f[11])
	if namesize < 1 || namesize > MaxNameLen {
		return nil, &FormatError{Offset: start + offNameSize, Err: fmt.Errorf("name size %d is outside 1..%d", namesize, MaxNameLen)}
	}
	name := r.buf[headerLen : headerLen+namesize+pad4(headerLen+namesize)]
	if err := r.fill(name); err != nil {
		return nil, err
	}
	name = name[:namesize]
	if i := bytes.IndexByte(name, 0); i != len(name)-1 {
		if name[len(name)-1] != 0 {
			return nil, &FormatError{Offset: start + headerLen + namesize - 1, Err: fmt.Errorf("name %q is not NUL-terminated", name)}
		}
		return nil, &FormatError{Offset: start + headerLen + int64(i), Err: fmt.Errorf("name %q contains a NUL byte", name[:len(name)-1])}
	}
	r.remain, r.pad = int64(f[6]), pad4(int64(f[6]))
	if string(name[:namesize-1]) == Trailer {
		// The kernel skips whatever body a trailer claims; so does this reader.
		if err := r.skipBody(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	h := &Header{
		Magic: magic, Offset: start, Name: string(name[:namesize-1]),
		Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5], Size: int64(f[6]),
		DevMajor: f[7], DevMinor: f[8], RDevMajor: f[9], RDevMinor: f[10], Check: f[12],
	}
	typ := h.Type()
	if h.Size != 0 && typ != TypeReg && typ != TypeSymlink {
		return nil, &FormatError{Offset: start + offSize,
			Err: fmt.Errorf("%q: size %d on a file of type %#o (only regular files and symlinks have a body)", h.Name, h.Size, typ)}
	}
	if typ == TypeSymlink && h.Size > MaxNameLen {
		return nil, &FormatError{Offset: start + offSize, Err: fmt.Errorf("%q: symlink target of %d bytes is longer than PATH_MAX", h.Name, h.Size)}
	}
	// Like the kernel, only regular files are summed: GNU cpio leaves the
	// checksum of symlinks 0.
	r.summing, r.sum, r.want = magic == MagicCRC && typ == TypeReg, 0, h.Check
	if r.summing && h.Size == 0 && h.Check != 0 {
		return nil, &FormatError{Offset: start + offCheck, Err: fmt.Errorf("%q: empty file with a non-zero 070702 checksum %#x", h.Name, h.Check)}
	}
	return h, nil
}

// parseHex8 parses 8 hex digits without the string conversion
// strconv.ParseUint needs: it runs 13 times per header.
func parseHex8(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// Read reads the body of the current entry and returns io.EOF at its end.
// For a 070702 regular file, the read that completes the body returns a
// FormatError if the checksum does not match.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(int64(len(p)), r.remain)]
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.remain -= int64(n)
	if cerr := r.account(p[:n]); cerr != nil {
		r.err = cerr
		return n, cerr
	}
	switch {
	case err == io.EOF && r.remain > 0:
		r.err = truncated(r.off)
	case err == io.EOF:
		// The body is complete; whether padding follows is Next's concern.
	case err != nil:
		r.err = fmt.Errorf("reading cpio body at offset %d: %w", r.off, err)
	}
	return n, r.err
}

// Writer writes one archive. It writes straight through to the underlying
// writer, one call per header and one per body Write: wrap it in a
// bufio.Writer for speed (and flush that).
type Writer struct {
	w      io.Writer
	off    int64
	remain int64 // body bytes the current header still expects
	pad    int64 // padding owed after the current body, written with the next header
	closed bool
	err    error // sticky: after a failed write the archive is unusable

	buf [3 + headerLen + MaxNameLen + 3]byte // previous padding, header, name, padding
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Offset returns the number of bytes written so far.
func (w *Writer) Offset() int64 { return w.off }

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.off += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("writing cpio archive at offset %d: %w", w.off, err)
	}
	return w.err
}

// validate refuses what the kernel would skip or misread, so an archive
// this package writes is unpacked entry for entry.
func validate(h *Header) error {
	if h.Name == "" || len(h.Name)+1 > MaxNameLen {
		return fmt.Errorf("cpio entry name of %d bytes: must be 1..%d bytes", len(h.Name), MaxNameLen-1)
	}
	if strings.IndexByte(h.Name, 0) >= 0 {
		return fmt.Errorf("cpio entry name %q contains a NUL byte", h.Name)
	}
	if h.Name == Trailer {
		// The kernel and this Reader would end the archive here.
		return fmt.Errorf("cpio entry name %q is reserved for the end-of-archive marker", h.Name)
	}
	if h.Size < 0 || h.Size > maxSize {
		return fmt.Errorf("cpio entry %q: size %d does not fit a newc header", h.Name, h.Size)
	}
	typ := h.Type()
	if h.Size != 0 && typ != TypeReg && typ != TypeSymlink {
		return fmt.Errorf("cpio entry %q: size %d on a file of type %#o (only regular files and symlinks have a body)", h.Name, h.Size, typ)
	}
	if typ == TypeSymlink && h.Size > MaxNameLen {
		return fmt.Errorf("cpio entry %q: symlink target of %d bytes is longer than PATH_MAX", h.Name, h.Size)
	}
	return nil
}

// WriteHeader pads the previous body and starts an entry, which must then
// receive exactly h.Size body bytes through Write. The magic is always
// 070701 and the checksum 0: the kernel accepts newc everywhere and crc
// only recently. Header.Magic, Check and Offset are ignored.
func (w *Writer) WriteHeader(h *Header) error {
	if err := w.ready(); err != nil {
		return err
	}
	if w.remain > 0 {
		return fmt.Errorf("cpio entry %q: previous entry is %d bytes short of its size", h.Name, w.remain)
	}
	if err := validate(h); err != nil {
		return err
	}
	return w.writeHeader(h)
}

func (w *Writer) ready() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("cpio writer is closed")
	}
	return nil
}

func (w *Writer) writeHeader(h *Header) error {
	namesize := int64(len(h.Name) + 1)
	b := append(w.buf[:0], zeros[:w.pad]...)
	b = append(b, MagicNewc...)
	for _, v := range [13]uint32{h.Ino, h.Mode, h.UID, h.GID, h.Nlink, h.Mtime, uint32(h.Size),
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor, uint32(namesize), 0} {
		b = appendHex8(b, v)
	}
	b = append(b, h.Name...)
	b = append(b, 0)
	b = append(b, zeros[:pad4(headerLen+namesize)]...)
	w.pad = 0
	if err := w.write(b); err != nil {
		return err
	}
	w.remain, w.pad = h.Size, pad4(h.Size)
	return nil
}

// appendHex8 writes uppercase digits, as GNU cpio and the kernel's
// usr/gen_init_cpio do, so rewritten archives compare byte for byte.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>shift&0xf])
	}
	return b
}

// Write writes body bytes of the current entry. A write that would exceed
// the size in the header writes nothing and fails, leaving the archive
// intact.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.ready(); err != nil {
		return 0, err
	}
	if int64(len(p)) > w.remain {
		return 0, fmt.Errorf("cpio body write of %d bytes exceeds the %d bytes left of the entry's size", len(p), w.remain)
	}
	n, err := w.w.Write(p)
	w.off += int64(n)
	w.remain -= int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("writing cpio archive at offset %d: %w", w.off, err)
		return n, w.err
	}
	return n, nil
}

// Pad writes the padding owed after the current body now rather than with
// the next header, so Offset is a 4-byte aligned entry boundary: the point
// where the kernel accepts that a compressed stream ends and the archive
// goes on in the next one. The body must be complete.
func (w *Writer) Pad() error {
	if err := w.ready(); err != nil {
		return err
	}
	if w.remain > 0 {
		return fmt.Errorf("cpio entry padded %d bytes short of its size", w.remain)
	}
	if w.pad == 0 {
		return nil
	}
	p := w.pad
	w.pad = 0
	return w.write(append(w.buf[:0], zeros[:p]...))
}

// Close pads the last body and writes the trailer entry, leaving the
// archive 4-byte aligned. It does not close the underlying writer. Closing
// twice is harmless.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	if w.remain > 0 {
		return fmt.Errorf("cpio archive closed with the last entry %d bytes short of its size", w.remain)
	}
	if err := w.writeHeader(&Header{Name: Trailer, Nlink: 1}); err != nil {
		return err
	}
	w.closed = true
	// The trailer has no body, so the archive already ends aligned.
	return nil
}
