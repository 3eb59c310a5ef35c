package remix

import (
	"fmt"
	"io"

	"github.com/initrd-remix/initrd-remix/internal/countio"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// Layout planning: which entries the new archive holds, with which headers,
// and the padding the kernel needs around it.

// writtenEntry is what the new segment must hold, for Verify.
type writtenEntry struct {
	h       newc.Header
	target  string
	content Content // the body written, for regular files with one
}

// padArchiveEnd ends an uncompressed new archive as GNU cpio does: tools
// that split images (unmkinitramfs) find its end by the zero padding to a
// 512-byte block; the kernel skips zeros.
func padArchiveEnd(w *countio.Writer, c codec.Codec) error {
	if c != codec.None {
		return nil
	}
	pad := 512 - w.N%512
	if pad < 4 {
		pad += 512
	}
	_, err := w.Write(make([]byte, pad))
	return err
}

// layout is where the new segment goes in the output: how many bytes of
// the input are kept in front of it unchanged, whether it must first close
// an archive they leave open, and the zero bytes the kernel needs between
// them. WriteTo and Repack's streamer both take it from planLayout.
type layout struct {
	mode WriteMode
	keep int64 // bytes of the input kept, from its start
	// minGen is the first generation of nodes the new segment holds.
	minGen int
	// closesArchive: the kernel continues an unterminated archive into the
	// next segment, with its hard-link table (major, minor, ino, mode)
	// still full of the kept entries, so a new entry reusing one of their
	// inode numbers would become a hard link to an old file. A lone trailer
	// first clears it.
	closesArchive bool
	// pad is the zeros before the new segment: archives must start 4-byte
	// aligned after an uncompressed one, and a legacy lz4 stream, which has
	// no end marker, only ends at a zero chunk size, so it must be followed
	// by at least four zero bytes.
	pad int64
}

// planLayout decides the layout for mode over an input of size bytes
// whose segments are segs. Rewrite keeps the segments before the first
// late one and replaces the rest; Append keeps everything. Repack's
// streamer, which decides before the rest of the input is read, passes the
// bytes before the first compressed segment as size and no segments: it
// follows only inputs whose kept archives are closed and whose new archive
// starts there.
func planLayout(segs []Segment, size int64, mode WriteMode) (layout, error) {
	l := layout{mode: mode, keep: size}
	switch mode {
	case Rewrite:
		l.minGen = len(segs)
		for i, s := range segs {
			if !s.Early {
				l.keep, l.minGen = s.Offset, i
				break
			}
		}
	case Append:
		l.minGen = len(segs)
	default:
		return layout{}, fmt.Errorf("unknown write mode %q", mode)
	}
	for _, s := range segs {
		if s.End() <= l.keep && s.Length > 0 {
			l.closesArchive = s.Unterminated
		}
	}
	l.pad = (4 - l.keep%4) % 4
	if mode == Append && len(segs) > 0 {
		last := segs[len(segs)-1]
		if need := int64(codec.TrailingZeros(last.Compression)) - last.Padding - l.pad; need > 0 {
			l.pad += (need + 3) &^ 3 // still 4-byte aligned
		}
	}
	return l, nil
}

// cutCopy cuts a copy of the input (OpenOptions.CopyTo) back to the kept
// bytes and positions out after them.
func (l layout) cutCopy(out CopiedOutput) error {
	if err := out.Truncate(l.keep); err != nil {
		return err
	}
	_, err := out.Seek(l.keep, io.SeekStart)
	return err
}

// padBefore writes the zeros before the new segment to w, which holds the
// kept bytes.
func (l layout) padBefore(w *countio.Writer) error {
	if w.N != l.keep {
		return fmt.Errorf("the output holds %d bytes before the new segment, the layout keeps %d", w.N, l.keep)
	}
	if l.pad == 0 {
		return nil
	}
	_, err := w.Write(make([]byte, l.pad))
	return err
}

func copyPrefix(w io.Writer, path string, n int64) error {
	f, _, err := OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.Copy(w, io.LimitReader(f, n))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if got != n {
		return fmt.Errorf("%s: changed while being read (%d bytes instead of %d)", path, got, n)
	}
	return nil
}

// newNodes returns the nodes the new segment holds: those of generation
// minGen or later, with whole hard-link groups.
func newNodes(t *Tree, minGen int) []*Node {
	var nodes []*Node
	for _, n := range t.Nodes() {
		if n.Gen() >= minGen {
			nodes = append(nodes, n)
		}
	}
	return withWholeLinkGroups(t, nodes)
}

// withWholeLinkGroups adds the other names of every hard-linked inode, in
// tree order, because the kernel links names only within one archive.
func withWholeLinkGroups(t *Tree, nodes []*Node) []*Node {
	need := map[*Inode]bool{}
	for _, n := range nodes {
		if n.Inode.links > 1 {
			need[n.Inode] = true
		}
	}
	if len(need) == 0 {
		return nodes
	}
	var out []*Node
	in := map[*Node]bool{}
	for _, n := range nodes {
		in[n] = true
	}
	for _, n := range t.Nodes() {
		if in[n] || need[n.Inode] {
			out = append(out, n)
		}
	}
	return out
}

// detachTarget is the target of the symlink written before a name that
// Tree.Replace detached from its old inode.
const detachTarget = "initrd-remix-replaced"

// planEntries returns the entries of the new archive for nodes, in order:
// what writeArchive writes and what a check of the written segment expects.
// Inode numbers are assigned afresh in output order, so the result depends
// only on the tree. Hard-linked names carry the data on the last one, as GNU
// cpio does; the kernel accepts either placement.
func planEntries(nodes []*Node, mode WriteMode) []writtenEntry {
	inos := map[*Inode]uint32{}
	total := map[*Inode]int{}
	for _, n := range nodes {
		if _, ok := inos[n.Inode]; !ok {
			inos[n.Inode] = uint32(len(inos) + 1)
		}
		total[n.Inode]++
	}
	seen := map[*Inode]int{}
	plan := make([]writtenEntry, 0, len(nodes))
	for i, n := range nodes {
		in := n.Inode
		if n.detached && mode == Append {
			// A symlink first: the kernel unlinks whatever has the name
			// (clean_path), so the entry after it makes a new inode.
			plan = append(plan, writtenEntry{h: newc.Header{Name: n.Path, Ino: uint32(len(nodes) + 1 + i),
				Mode: newc.TypeSymlink | 0o777, Nlink: 1, Mtime: in.Mtime, Size: int64(len(detachTarget))},
				target: detachTarget})
		}
		seen[in]++
		plan = append(plan, entryFor(n.Path, in, inos[in], total[in], seen[in] == total[in]))
	}
	return plan
}

// entryFor is the entry written for one name of inode in: ino its number in
// the archive, links its names there, last whether this name is the last
// of them (the one that carries a regular file's data).
func entryFor(name string, in *Inode, ino uint32, links int, last bool) writtenEntry {
	h := newc.Header{Name: name, Ino: ino, Mode: in.Mode, UID: in.UID, GID: in.GID,
		Nlink: 1, Mtime: in.Mtime, RDevMajor: in.RDevMajor, RDevMinor: in.RDevMinor}
	we := writtenEntry{}
	switch in.Type() {
	case newc.TypeDir:
		h.Nlink = 2
	case newc.TypeSymlink:
		h.Size = int64(len(in.Target))
		we.target = in.Target
	case newc.TypeReg:
		h.Nlink = uint32(links)
		if last {
			h.Size = in.Size()
			if h.Size > 0 {
				we.content = in.Content
			}
		}
	default:
		h.Nlink = uint32(links)
	}
	we.h = h
	return we
}
