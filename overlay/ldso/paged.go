package ldso

import "io"

// pageSize and maxPages shape a pagedReader: an ELF file's headers, its
// dynamic section and version records, its section headers and its
// strings sit in a few pages, read by debug/elf and by the parsers here in
// records of a few bytes each.
const (
	pageSize = 4 << 10
	maxPages = 64
)

// pagedReader serves small reads of an ELF file from whole pages it reads
// once: without it a library's version records and strings cost one
// pread each (measured on the lab's rescue build: 28,000 preads, a quarter
// of the build's system time). Reads of more than a page go to the file
// directly. It holds at most maxPages pages and is used by one goroutine.
type pagedReader struct {
	r     io.ReaderAt
	size  int64
	pages map[int64][]byte // by page number; shorter than pageSize at the end
	free  [][]byte         // pages of earlier files, for reuse
}

func newPagedReader(r io.ReaderAt, size int64) *pagedReader {
	p := &pagedReader{pages: map[int64][]byte{}}
	p.reset(r, size)
	return p
}

// reset makes p read another file, keeping its pages' memory: a closure
// parses hundreds of files.
func (p *pagedReader) reset(r io.ReaderAt, size int64) {
	p.r, p.size = r, size
	p.release()
}

// release forgets the file's pages, keeping their memory.
func (p *pagedReader) release() {
	for _, pg := range p.pages {
		p.free = append(p.free, pg[:cap(pg)])
	}
	clear(p.pages)
}

// ReadAt implements io.ReaderAt over the first size bytes of the file.
func (p *pagedReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return p.r.ReadAt(b, off) // the file's own error
	}
	if len(b) > pageSize {
		if off >= p.size {
			return 0, io.EOF
		}
		want := b
		if rest := p.size - off; int64(len(want)) > rest {
			want = want[:rest]
		}
		n, err := p.r.ReadAt(want, off)
		if err == nil && n < len(b) {
			err = io.EOF
		}
		return n, err
	}
	n := 0
	for n < len(b) {
		at := off + int64(n)
		if at >= p.size {
			return n, io.EOF
		}
		pg, err := p.page(at / pageSize)
		if err != nil {
			return n, err
		}
		i := int(at % pageSize)
		if i >= len(pg) {
			// The file is shorter than it was said to be.
			return n, io.ErrUnexpectedEOF
		}
		n += copy(b[n:], pg[i:])
	}
	return n, nil
}

func (p *pagedReader) page(num int64) ([]byte, error) {
	if pg, ok := p.pages[num]; ok {
		return pg, nil
	}
	if len(p.pages) >= maxPages {
		p.release()
	}
	start := num * pageSize
	var pg []byte
	if n := len(p.free); n > 0 {
		pg, p.free = p.free[n-1], p.free[:n-1]
	} else {
		pg = make([]byte, pageSize)
	}
	pg = pg[:min(pageSize, p.size-start)]
	n, err := p.r.ReadAt(pg, start)
	if n < len(pg) {
		p.free = append(p.free, pg[:cap(pg)])
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	p.pages[num] = pg
	return pg, nil
}
