package remix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/remix/internal/hugemem"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// OpenOptions tune Open.
type OpenOptions struct {
	ScanOptions
	// MetadataOnly builds the tree without keeping file bodies (sizes are
	// kept, content cannot be read back), except /init, which detection
	// reads. It is what inspect uses: memory stays small and nothing is
	// written to disk.
	MetadataOnly bool
	// KeepContent, when set, chooses the regular files whose bodies are
	// kept (name as stored in the archive, body size); the others keep
	// only their size, and reading their content fails. For writers that
	// never re-emit most files: an append that adds a few edits need not
	// hold the 100+ MiB of kernel modules of a typical image.
	KeepContent func(name string, size int64) bool
	// SpoolDir is where file bodies past the first 256 MiB are kept while
	// the image is open; "" means DefaultSpoolDir(). The spool file is
	// unlinked at once, so nothing is left behind even if the process
	// dies, and it holds at most MaxUncompressed bytes.
	SpoolDir string
	// SpoolFrom, when positive, sends every body of at least this many
	// bytes to the spool file at once, whatever memory is left: the
	// small ones (scripts, configuration) stay in memory and the large
	// ones (programs, libraries) are read back from the page cache, in
	// the parts that are read. For a caller that reads few large bodies
	// again (an append), memory then stays small whatever the image.
	SpoolFrom int64
	// OnEntry, when set, sees every raw entry in file order (with the link
	// target of symlinks), for listings such as inspect --files.
	OnEntry func(seg *Segment, h *newc.Header, target string)
	// Progress, when set, is called now and then with the bytes of the
	// file read so far.
	Progress func(read int64)
	// CopyTo, when set, receives every byte of the file as Open reads it,
	// written on a goroutine of its own while the image is decoded (and
	// disk writeback started as it goes). A writer that keeps the input's
	// bytes (WriteOptions.Copied) then needs no second read of the input,
	// and what it keeps is exactly what was parsed, even if the file is
	// replaced meanwhile.
	CopyTo io.Writer
}

// Image is an initrd read into memory: its segments as found in the file
// and the root filesystem the kernel would build from it.
type Image struct {
	Path     string
	Size     int64
	Segments []Segment
	Tree     *Tree
	// Dropped lists entries the kernel would skip at boot (a missing
	// parent, a non-empty directory in the way, a dangling hard link).
	Dropped []string

	spool  *spool
	copied int64 // bytes of the file copied to OpenOptions.CopyTo
}

// Open reads the initrd at path. The file is only ever opened read-only.
// Errors name the file and the offset.
func Open(ctx context.Context, path string, opt OpenOptions) (*Image, error) {
	f, st, r, err := openInput(path, opt.Progress)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cp *inputCopy
	if opt.CopyTo != nil {
		cp = newInputCopy(r, opt.CopyTo)
		r = cp
	}
	img, err := Read(ctx, r, opt)
	if cp != nil {
		copied, cerr := cp.finish()
		if err == nil && cerr != nil {
			img.Close()
			err = cerr
		}
		if err == nil {
			img.copied = copied
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img.Path, img.Size = path, st.Size()
	return img, nil
}

// openInput opens an image file read-only and returns it, its size and
// mode, and the reader to decode it from (reporting progress, if asked).
func openInput(path string, progress func(int64)) (*os.File, os.FileInfo, io.Reader, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return nil, nil, nil, err
	}
	var r io.Reader = f
	if progress != nil {
		r = &progressReader{r: f, fn: progress}
	}
	return f, st, r, nil
}

// OpenRegular opens path read-only if it is a regular file, and fails at
// once otherwise: opening a FIFO would wait for a writer forever, a device
// could be read without end. The open does not block (O_NONBLOCK, which
// changes nothing for a regular file), and the check is on what was opened,
// so a file swapped for something else meanwhile is caught too.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file but %s", path, atomicfile.Kind(st.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// Read builds an Image from a stream.
func Read(ctx context.Context, r io.Reader, opt OpenOptions) (*Image, error) {
	img := &Image{Tree: NewTree()}
	if !opt.MetadataOnly {
		img.spool = &spool{dir: opt.SpoolDir, from: opt.SpoolFrom}
	}
	b := &treeBuilder{img: img, links: map[linkKey]string{}, onEntry: opt.OnEntry, keep: opt.KeepContent}
	segs, err := Scan(ctx, r, opt.ScanOptions, b.entry)
	img.Segments = segs
	if err == nil && img.spool != nil {
		err = img.spool.finish()
	}
	if err != nil {
		img.Close()
		return nil, err
	}
	if len(segs) == 0 || countEntries(segs) == 0 {
		img.Close()
		return nil, errors.New("no cpio archive found: not an initrd")
	}
	img.Tree.SetGeneration(len(segs))
	return img, nil
}

func countEntries(segs []Segment) int {
	n := 0
	for _, s := range segs {
		n += s.Entries
	}
	return n
}

// Close releases the spooled file bodies. Content taken from the tree is
// unreadable afterwards.
func (img *Image) Close() error {
	if img.spool != nil {
		return img.spool.close()
	}
	return nil
}

// EditGeneration is the generation of changes made after reading: nodes
// whose Gen() equals it were added or changed by the caller.
func (img *Image) EditGeneration() int { return len(img.Segments) }

// FirstLate returns the index of the first segment that is not early: the
// part of the image a rewrite replaces.
func (img *Image) FirstLate() int {
	for i, s := range img.Segments {
		if !s.Early {
			return i
		}
	}
	return len(img.Segments)
}

// HasMicrocode reports whether an early archive carries CPU microcode.
func (img *Image) HasMicrocode() bool {
	for _, s := range img.Segments {
		if s.Early && s.Microcode {
			return true
		}
	}
	return false
}

// linkKey is how the kernel recognises hard links: device, inode and type,
// within one archive (its table is reset at each trailer).
type linkKey struct {
	archive      int
	major, minor uint32
	ino          uint32
	typ          uint32
}

type treeBuilder struct {
	img     *Image
	links   map[linkKey]string
	onEntry func(seg *Segment, h *newc.Header, target string)
	keep    func(name string, size int64) bool
	// stream, when set, keeps no bodies: each regular file's content is a
	// *streamedContent, and after sees every entry once the tree has
	// applied it, with the body still unread (see Repack).
	stream *streamer
}

type progressReader struct {
	r    io.Reader
	n    int64
	last int64
	fn   func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.last >= 4<<20 || err != nil {
		p.last = p.n
		p.fn(p.n)
	}
	return n, err
}

func (b *treeBuilder) entry(seg *Segment, archive int, h *newc.Header, body io.Reader) error {
	t := b.img.Tree
	t.SetGeneration(seg.Index)
	typ := h.Type()
	e := Entry{Name: h.Name, Mode: h.Mode, UID: h.UID, GID: h.GID, Mtime: h.Mtime,
		RDevMajor: h.RDevMajor, RDevMinor: h.RDevMinor}
	switch typ {
	case newc.TypeSymlink:
		target, err := io.ReadAll(io.LimitReader(body, newc.MaxNameLen))
		if err != nil {
			return err
		}
		e.Target = string(target)
	case newc.TypeReg:
		if b.onEntry != nil {
			b.onEntry(seg, h, "")
		}
		c, err := b.content(h, body)
		if err != nil {
			return err
		}
		e.Content = c
	}
	if b.onEntry != nil && typ != newc.TypeReg {
		b.onEntry(seg, h, e.Target)
	}
	before, seq := t.Len(), t.seq
	var n *Node
	linkable := h.Nlink >= 2 && typ != newc.TypeDir && typ != newc.TypeSymlink
	key := linkKey{archive, h.DevMajor, h.DevMinor, h.Ino, typ}
	first, linked := "", false
	if linkable {
		first, linked = b.links[key]
		if !linked {
			b.links[key] = h.Name
		}
	}
	if linked {
		n = b.link(first, e, h)
	} else {
		var err error
		if n, err = t.Put(e); err != nil {
			b.drop(h, err)
		}
	}
	if b.stream != nil {
		// A fresh name is one node more, the newest: the order the
		// writer lists it in is the order it came in.
		fresh := n != nil && t.Len() == before+1 && n.seq == seq+1
		return b.stream.entry(seg, h, n, fresh, e.Content, body)
	}
	return nil
}

// link applies a later name of a hard-link group: the kernel links it to the
// first name and, for regular files, reopens the shared inode without
// truncation, re-owns it, and rewrites it only if this entry has a body.
// It returns the new name's node, nil if the kernel would drop the entry.
func (b *treeBuilder) link(first string, e Entry, h *newc.Header) *Node {
	t := b.img.Tree
	old := t.Lookup(first)
	if old == nil {
		b.drop(h, fmt.Errorf("hard link to %q, which no longer exists", first))
		return nil
	}
	n, err := t.Link(old, e.Name)
	if err != nil {
		b.drop(h, err)
		return nil
	}
	if h.Type() == newc.TypeReg {
		t.setMeta(n.Inode, e)
		if h.Size > 0 {
			n.Inode.Content = e.Content
		}
	}
	return n
}

func (b *treeBuilder) drop(h *newc.Header, err error) {
	b.img.Dropped = append(b.img.Dropped, fmt.Sprintf("%q at offset %d: %v", h.Name, h.Offset, err))
}

func (b *treeBuilder) content(h *newc.Header, body io.Reader) (Content, error) {
	if h.Size == 0 {
		return nil, nil
	}
	if b.stream != nil {
		return b.stream.content(h.Size), nil
	}
	if b.img.spool == nil || (b.keep != nil && !b.keep(h.Name, h.Size)) {
		if Canonical(h.Name) == "init" && h.Size <= 1<<20 {
			data, err := io.ReadAll(body)
			return BytesContent(data), err
		}
		return sizeOnly(h.Size), nil
	}
	return b.img.spool.add(body, h.Size)
}

// sizeOnly stands for a body that was not kept (metadata-only reads).
type sizeOnly int64

func (s sizeOnly) Size() int64 { return int64(s) }
func (s sizeOnly) Open() (io.ReadCloser, error) {
	return nil, ErrContentNotKept
}

// ErrContentNotKept is returned when reading a body the image was opened
// without (OpenOptions.MetadataOnly or KeepContent).
var ErrContentNotKept = errors.New("file content was not kept (image opened for metadata only or with a KeepContent filter)")

// spoolMemory is how many bytes of file bodies are kept in memory before
// the rest goes to disk: typical initrds fit, so they are rewritten without
// a round trip through the file system, and huge ones stay bounded.
const spoolMemory = 256 << 20

// spoolChunk is the size of the memory blocks bodies are packed into. Fresh
// memory costs a page fault per 4 KiB page on first touch, which dominated
// repack on virtual machines (about 10 ms per MiB measured here); blocks this
// large are backed by transparent huge pages where the kernel offers them
// (see package hugemem), one fault per 2 MiB.
const spoolChunk = 32 << 20

// smallChunk is the block size with OpenOptions.SpoolFrom.
const smallChunk = 1 << 20

// spool keeps file bodies: in memory up to spoolMemory, then in one
// unlinked temporary file, so that images of any size are rewritten with
// bounded memory.
type spool struct {
	dir   string
	from  int64  // OpenOptions.SpoolFrom
	buf   []byte // for copies to the file
	mem   int64  // bytes of memory taken, chunks included
	chunk []byte // free tail of the current memory block
	f     *os.File
	w     *bufio.Writer
	off   int64
}

// alloc returns size bytes of spool memory, or nil when the memory budget
// is spent.
func (s *spool) alloc(size int64) []byte {
	if size <= int64(len(s.chunk)) {
		b := s.chunk[:size:size]
		s.chunk = s.chunk[size:]
		return b
	}
	chunk := int64(spoolChunk)
	if s.from > 0 {
		// Only small bodies are held: small blocks, so that the
		// memory taken is what they need.
		chunk = smallChunk
	}
	n := max(size, chunk)
	if s.mem+n > spoolMemory {
		n = size
		if s.mem+n > spoolMemory {
			return nil
		}
	}
	block := hugemem.Alloc(int(n))
	s.mem += n
	s.chunk = block[size:]
	return block[:size:size]
}

type spoolContent struct {
	s        *spool
	off, len int64
}

func (c spoolContent) Size() int64 { return c.len }
func (c spoolContent) Open() (io.ReadCloser, error) {
	if c.s.f == nil {
		return nil, errors.New("image already closed")
	}
	return spoolReader{io.NewSectionReader(c.s.f, c.off, c.len)}, nil
}

// spoolReader is an open spooled body; it reads at any offset too.
type spoolReader struct{ *io.SectionReader }

func (spoolReader) Close() error { return nil }

func (s *spool) add(body io.Reader, size int64) (Content, error) {
	if s.from <= 0 || size < s.from {
		if b := s.alloc(size); b != nil {
			if _, err := io.ReadFull(body, b); err != nil {
				return nil, err
			}
			return BytesContent(b), nil
		}
	}
	if s.f == nil {
		if s.dir == "" {
			s.dir = DefaultSpoolDir()
		}
		f, err := os.CreateTemp(s.dir, "initrd-remix-*.spool")
		if err != nil {
			return nil, fmt.Errorf("spool of file bodies: %w", err)
		}
		os.Remove(f.Name())
		s.f, s.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	if s.buf == nil {
		s.buf = make([]byte, 64<<10)
	}
	// Through s.buf: io.Copy would take a fresh buffer for every body.
	n, err := io.CopyBuffer(onlyWriter{s.w}, onlyReader{body}, s.buf)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("spool of file bodies in %s: %w", s.dir, err)
		}
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("body is %d bytes, header says %d", n, size)
	}
	c := spoolContent{s: s, off: s.off, len: n}
	s.off += n
	return c, nil
}

// onlyReader and onlyWriter hide every method but Read and Write, so
// that io.CopyBuffer uses the buffer it is given (WriterTo and ReaderFrom
// implementations such as *os.File's take a fresh one each time).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// DefaultSpoolDir is where file bodies spill over when OpenOptions.SpoolDir
// is "": $TMPDIR if set, else /var/tmp, which is on disk where /tmp is
// often a tmpfs (memory), else /tmp. Never the output's directory: a bomb
// would fill a small /boot.
func DefaultSpoolDir() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	if st, err := os.Stat("/var/tmp"); err == nil && st.IsDir() {
		return "/var/tmp"
	}
	return os.TempDir()
}

func (s *spool) finish() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool of file bodies in %s: %w", s.dir, err)
	}
	return nil
}

func (s *spool) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
