// Package newc reads and writes cpio archives in the "newc" (070701) and
// "crc" (070702) formats, the only ones the Linux kernel unpacks into its
// initial root filesystem.
//
// The project owns this codec instead of using an existing library because
// the initrd must round-trip exactly: github.com/cavaliergopher/cpio drops
// device major/minor numbers (so /dev/console loses 5,1) and cannot write
// symlinks, and u-root's writer drops later duplicates although the kernel
// keeps the last one. The reader never reads ahead of the bytes it needs,
// so the caller can continue scanning an image (padding, another archive, a
// compressed stream) exactly where an archive ends. It is tested against
// GNU cpio.
package newc

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Magic numbers, the trailer name and limits the kernel applies.
const (
	MagicNewc  = "070701"
	MagicCRC   = "070702"
	Trailer    = "TRAILER!!!"
	MaxNameLen = 4096 // PATH_MAX including the NUL, as init/initramfs.c checks

	headerLen = 110
)

// File type bits of Header.Mode.
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

// ErrTruncated reports an archive that ends inside a header, name or body.
var ErrTruncated = errors.New("archive is truncated")

// Header is one cpio entry.
type Header struct {
	Magic     string // as read; the writer always writes 070701
	Ino       uint32
	Mode      uint32
	UID, GID  uint32
	Nlink     uint32
	Mtime     uint32
	Size      int64
	DevMajor  uint32
	DevMinor  uint32
	RDevMajor uint32
	RDevMinor uint32
	Check     uint32
	Name      string // as stored, without the terminating NUL
	Offset    int64  // where the header starts (reader only)
}

// Type returns the file type bits.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// IsTrailer reports whether h is the end-of-archive marker.
func (h *Header) IsTrailer() bool { return h.Name == Trailer }

// FormatError locates a malformed archive.
type FormatError struct {
	Offset int64
	Err    error
}

func (e *FormatError) Error() string { return fmt.Sprintf("cpio offset %d: %v", e.Offset, e.Err) }
func (e *FormatError) Unwrap() error { return e.Err }

func pad4(n int64) int64 { return (4 - n&3) & 3 }

// Reader reads one archive, entry by entry.
type Reader struct {
	r      io.Reader
	off    int64 // base + bytes consumed
	remain int64 // unread body bytes of the current entry
	pad    int64 // padding after the current body
	crc    bool
	sum    uint32
	want   uint32
	done   bool
	hdr    [headerLen]byte
}

// NewReader reads an archive from r; base is the offset of the archive in
// whatever the caller reports offsets against (file or decompressed
// stream). The archive is assumed to start 4-byte aligned.
func NewReader(r io.Reader, base int64) *Reader {
	return &Reader{r: r, off: base}
}

// Offset returns base plus the bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

func (r *Reader) fill(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &FormatError{Offset: r.off, Err: fmt.Errorf("%w (%w)", ErrTruncated, io.ErrUnexpectedEOF)}
	}
	return err
}

func (r *Reader) skip(n int64) error {
	if n == 0 {
		return nil
	}
	got, err := io.CopyN(io.Discard, r.r, n)
	r.off += got
	if err == io.EOF {
		return &FormatError{Offset: r.off, Err: fmt.Errorf("%w (%w)", ErrTruncated, io.ErrUnexpectedEOF)}
	}
	return err
}

// Next advances to the next entry, skipping what is left of the previous
// body. After the trailer entry and its padding it returns io.EOF, with the
// underlying reader positioned just past them.
func (r *Reader) Next() (*Header, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.remain > 0 {
		if r.crc {
			// The checksum covers the whole body, so it has to be read.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return nil, err
			}
		} else if err := r.skip(r.remain); err != nil {
			return nil, err
		}
		r.remain = 0
	}
	if err := r.skip(r.pad); err != nil {
		return nil, err
	}
	r.pad = 0
	start := r.off
	if err := r.fill(r.hdr[:]); err != nil {
		return nil, err
	}
	h := &Header{Offset: start}
	magic := string(r.hdr[:6])
	if magic != MagicNewc && magic != MagicCRC {
		return nil, &FormatError{Offset: start, Err: fmt.Errorf("bad cpio magic %q (want 070701 or 070702)", r.hdr[:6])}
	}
	h.Magic = magic
	var f [13]uint32
	for i := range f {
		field := r.hdr[6+8*i : 14+8*i]
		v, err := strconv.ParseUint(string(field), 16, 32)
		if err != nil {
			return nil, &FormatError{Offset: start + 6 + 8*int64(i), Err: fmt.Errorf("header field %d is not hex: %q", i, field)}
		}
		f[i] = uint32(v)
	}
	h.Ino, h.Mode, h.UID, h.GID, h.Nlink, h.Mtime = f[0], f[1], f[2], f[3], f[4], f[5]
	h.Size = int64(f[6])
	h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor = f[7], f[8], f[9], f[10]
	namesize, check := int64(f[11]), f[12]
	h.Check = check
	if namesize < 1 || namesize > MaxNameLen {
		return nil, &FormatError{Offset: start, Err: fmt.Errorf("name size %d out of range 1..%d", namesize, MaxNameLen)}
	}
	name := make([]byte, namesize)
	if err := r.fill(name); err != nil {
		return nil, err
	}
	if name[namesize-1] != 0 {
		return nil, &FormatError{Offset: start + headerLen, Err: errors.New("name is not NUL-terminated")}
	}
	for _, c := range name[:namesize-1] {
		if c == 0 {
			return nil, &FormatError{Offset: start + headerLen, Err: errors.New("name contains a NUL byte")}
		}
	}
	h.Name = string(name[:namesize-1])
	if err := r.skip(pad4(headerLen + namesize)); err != nil {
		return nil, err
	}
	typ := h.Type()
	if h.Size != 0 && typ != TypeReg && typ != TypeSymlink && !h.IsTrailer() {
		return nil, &FormatError{Offset: start, Err: fmt.Errorf("%q: non-zero size %d for a file of type %#o", h.Name, h.Size, typ)}
	}
	if typ == TypeSymlink && h.Size >= MaxNameLen {
		return nil, &FormatError{Offset: start, Err: fmt.Errorf("%q: symlink target of %d bytes is longer than PATH_MAX", h.Name, h.Size)}
	}
	r.remain, r.pad = h.Size, pad4(h.Size)
	// GNU cpio leaves the checksum of symlinks 0: only file bodies are summed.
	r.crc, r.sum, r.want = magic == MagicCRC && typ == TypeReg, 0, check
	if h.IsTrailer() {
		if err := r.skip(r.remain + r.pad); err != nil {
			return nil, err
		}
		r.remain, r.pad, r.done = 0, 0, true
		return nil, io.EOF
	}
	return h, nil
}

// Read reads the body of the current entry.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.remain -= int64(n)
	if r.crc {
		for _, c := range p[:n] {
			r.sum += uint32(c)
		}
		if r.remain == 0 && r.sum != r.want {
			return n, &FormatError{Offset: r.off, Err: fmt.Errorf("crc checksum %#x does not match header %#x", r.sum, r.want)}
		}
	}
	if err == io.EOF && r.remain > 0 {
		return n, &FormatError{Offset: r.off, Err: fmt.Errorf("%w (%w)", ErrTruncated, io.ErrUnexpectedEOF)}
	}
	if r.remain == 0 && err == nil {
		err = nil
	}
	return n, err
}

// Writer writes one archive. It writes straight through; wrap w in a
// bufio.Writer for speed.
type Writer struct {
	w      io.Writer
	off    int64
	remain int64
	pad    int64
	closed bool
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Offset returns the bytes written so far.
func (w *Writer) Offset() int64 { return w.off }

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.off += int64(n)
	return err
}

var zeros [4]byte

func (w *Writer) finishBody() error {
	if w.remain > 0 {
		return fmt.Errorf("previous entry is %d bytes short of its header's size", w.remain)
	}
	if w.pad > 0 {
		if err := w.write(zeros[:w.pad]); err != nil {
			return err
		}
		w.pad = 0
	}
	return nil
}

// WriteHeader starts an entry. The magic is always 070701 and the
// checksum 0: the kernel accepts newc everywhere and crc only recently.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("cpio writer is closed")
	}
	if err := w.finishBody(); err != nil {
		return err
	}
	if h.Name == "" || len(h.Name)+1 > MaxNameLen {
		return fmt.Errorf("cpio name %q: length must be 1..%d", h.Name, MaxNameLen-1)
	}
	for i := 0; i < len(h.Name); i++ {
		if h.Name[i] == 0 {
			return fmt.Errorf("cpio name %q contains a NUL byte", h.Name)
		}
	}
	typ := h.Mode & TypeMask
	if h.Size < 0 || h.Size > 0xffffffff {
		return fmt.Errorf("%s: size %d does not fit a newc header", h.Name, h.Size)
	}
	if h.Size != 0 && typ != TypeReg && typ != TypeSymlink && h.Name != Trailer {
		return fmt.Errorf("%s: only regular files and symlinks have a body (type %#o, size %d)", h.Name, typ, h.Size)
	}
	namesize := int64(len(h.Name) + 1)
	buf := make([]byte, 0, headerLen+namesize+3)
	buf = append(buf, MagicNewc...)
	for _, v := range []uint32{h.Ino, h.Mode, h.UID, h.GID, h.Nlink, h.Mtime, uint32(h.Size),
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor, uint32(namesize), 0} {
		buf = appendHex8(buf, v)
	}
	buf = append(buf, h.Name...)
	buf = append(buf, 0)
	buf = append(buf, zeros[:pad4(headerLen+namesize)]...)
	if err := w.write(buf); err != nil {
		return err
	}
	w.remain, w.pad = h.Size, pad4(h.Size)
	return nil
}

func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF" // as GNU cpio and the kernel's gen_init_cpio write
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}

// Write writes body bytes of the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		return 0, fmt.Errorf("write of %d bytes exceeds the entry's remaining size %d", len(p), w.remain)
	}
	n, err := w.w.Write(p)
	w.off += int64(n)
	w.remain -= int64(n)
	return n, err
}

// Close finishes the last body and writes the trailer; it does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.WriteHeader(&Header{Name: Trailer, Nlink: 1}); err != nil {
		return err
	}
	w.closed = true
	return w.finishBody()
}
