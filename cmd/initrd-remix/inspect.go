package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip"
)

// inspectReport is the JSON printed by inspect --json; README documents it.
type inspectReport struct {
	File           string          `json:"file"`
	Size           int64           `json:"size"`
	UKI            *ukiReport      `json:"uki,omitempty"`
	Segments       []remix.Segment `json:"segments"`
	Entries        int             `json:"entries"`
	Names          int             `json:"names"`
	Generator      strip.Detection `json:"generator"`
	UsrMerge       remix.UsrMerge  `json:"usr_merge"`
	KernelVersions []string        `json:"kernel_versions"`
	Microcode      microcodeReport `json:"microcode"`
	Dropped        []string        `json:"dropped,omitempty"`
	Files          []rawEntry      `json:"files,omitempty"`
}

type microcodeReport struct {
	Early   bool     `json:"early"`
	Vendors []string `json:"vendors"`
}

// rawEntry is one cpio entry as stored, for --files.
type rawEntry struct {
	Segment   int    `json:"segment"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Mode      uint32 `json:"mode"`
	UID       uint32 `json:"uid"`
	GID       uint32 `json:"gid"`
	Size      int64  `json:"size"`
	Mtime     uint32 `json:"mtime"`
	Nlink     uint32 `json:"nlink"`
	Ino       uint32 `json:"ino"`
	RDevMajor uint32 `json:"rdev_major"`
	RDevMinor uint32 `json:"rdev_minor"`
	Target    string `json:"target,omitempty"`
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "inspect", "IMAGE", `Show what an initrd holds: every segment (offset, length, compression,
entries, uncompressed size), the generator that built it and why, the
usr-merge state, the kernel versions of its modules and whether it carries
early microcode. The image is streamed, never modified, and never held in
memory whole.
`)
	asJSON := fs.Bool("json", false, "print one JSON object (fields documented in the README)")
	files := fs.Bool("files", false, "also list every entry, like ls -l (in archive order, with its segment)")
	var lim limitFlags
	lim.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("inspect takes exactly one IMAGE, got %d arguments", fs.NArg())
	}
	scan, err := lim.options()
	if err != nil {
		return err
	}
	path := fs.Arg(0)
	// inspect streams: what it holds is the decoders' windows and the
	// blocks an xz stream decodes ahead in parallel, a few tens of MiB.
	// A soft limit makes the collector return that garbage (a dictionary
	// per xz block) promptly instead of letting the heap double first;
	// it is soft, so a larger image still inspects, only with more GC.
	debug.SetMemoryLimit(56 << 20)
	var raw []rawEntry
	opt := remix.OpenOptions{MetadataOnly: true, ScanOptions: scan}
	if *files {
		opt.OnEntry = func(seg *remix.Segment, h *remix.Header, target string) {
			raw = append(raw, rawEntry{Segment: seg.Index, Name: h.Name, Type: remix.TypeName(h.Mode), Mode: h.Mode & 0o7777,
				UID: h.UID, GID: h.GID, Size: h.Size, Mtime: h.Mtime, Nlink: h.Nlink, Ino: h.Ino,
				RDevMajor: h.RDevMajor, RDevMinor: h.RDevMinor, Target: target})
		}
	}
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	// A unified kernel image: its sections, then the initrd it hands the
	// kernel, read in place.
	ukiIn, err := openUKI(path)
	if err != nil {
		return err
	}
	var ukiRep *ukiReport
	var img *remix.Image
	if ukiIn != nil {
		defer ukiIn.Close()
		if ukiRep, err = ukiIn.report(); err != nil {
			return err
		}
		img, err = ukiIn.readInitrd(ctx, opt)
	} else {
		p := newProgress(e, *asJSON, "reading "+path, size)
		opt.Progress = p.update
		img, err = remix.Open(ctx, path, opt)
		p.done()
		if err == nil {
			size = img.Size
		}
	}
	if err != nil {
		return err
	}
	defer img.Close()
	rep := inspectReport{File: path, Size: size, UKI: ukiRep, Segments: img.Segments, Names: img.Tree.Len(),
		Generator: strip.Detect(img.Tree), UsrMerge: remix.DetectUsrMerge(img.Tree),
		KernelVersions: remix.KernelVersions(img.Tree), Dropped: img.Dropped, Files: raw}
	for _, s := range img.Segments {
		rep.Entries += s.Entries
	}
	rep.Microcode.Vendors = remix.MicrocodeVendors(img)
	rep.Microcode.Early = img.HasMicrocode()
	if rep.KernelVersions == nil {
		rep.KernelVersions = []string{}
	}
	if rep.Microcode.Vendors == nil {
		rep.Microcode.Vendors = []string{}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	// Buffered: tabwriter writes cell by cell, and an unbuffered stdout
	// made --files one write(2) per cell (22,000 for an initrd).
	bw := bufio.NewWriterSize(e.stdout, 64<<10)
	printInspect(bw, &rep)
	return bw.Flush()
}

// termSafe escapes what a terminal would act on, or what would make one
// line look like two, in text taken from an image or a boot entry (names,
// link targets, versions): control characters (newline, carriage return,
// ESC, DEL, C1), invalid UTF-8, Unicode format characters such as
// bidirectional overrides, and the backslash, so the escaping stays
// unambiguous. They are written as Go escapes (\n, \x1b, \u202e, \\).
// The text output of every command that prints such names goes through it;
// JSON output is exact JSON instead.
func termSafe(s string) string { return escapeTerm(s, false) }

// termMessage is termSafe for a message of several lines (an error that
// may quote names): newlines, tabs and backslashes stay as they are, so
// the message keeps its shape and %q-quoted names are not escaped twice,
// but no escape sequence or other control character reaches the terminal.
func termMessage(s string) string { return escapeTerm(s, true) }

func escapeTerm(s string, message bool) string {
	keep := func(r rune) bool {
		if message && (r == '\n' || r == '\t' || r == '\\') {
			return true
		}
		return r != '\\' && r != utf8.RuneError && unicode.IsPrint(r)
	}
	clean := true
	for _, r := range s {
		if !keep(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keep(r) || r == utf8.RuneError:
			b.WriteRune(r)
		case r == '\\':
			b.WriteString(`\\`)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func printInspect(w io.Writer, r *inspectReport) {
	if r.UKI != nil {
		fmt.Fprintf(w, "%s: %s, ", termSafe(r.File), humanBytes(r.Size))
		printUKI(w, r.UKI)
	}
	fmt.Fprintf(w, "%s: %s, %d segments, %d entries (%d names after merging)\n\n", termSafe(r.File), humanBytes(r.Size), len(r.Segments), r.Entries, r.Names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\toffset\tlength\tcompression\tarchives\tentries\tuncompressed\tnotes")
	for _, s := range r.Segments {
		var notes []string
		if s.Early {
			notes = append(notes, "early")
		}
		if s.Microcode {
			notes = append(notes, "microcode")
		}
		if s.Continues {
			notes = append(notes, "continues archive")
		}
		if s.Unterminated {
			notes = append(notes, "archive open")
		}
		if s.Padding > 0 {
			notes = append(notes, fmt.Sprintf("%d zero bytes after", s.Padding))
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Index, s.Offset, humanBytes(s.Length), s.Compression, s.Archives, s.Entries, humanBytes(s.UncompressedSize), strings.Join(notes, ", "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\ngenerator:  %s (%s)\n", r.Generator.Generator, termSafe(strings.Join(r.Generator.Evidence, "; ")))
	var dirs []string
	for _, d := range r.UsrMerge.Dirs {
		switch d.Type {
		case "symlink":
			dirs = append(dirs, d.Name+" -> "+d.Target)
		case "absent":
		default:
			dirs = append(dirs, d.Name+" ("+d.Type+")")
		}
	}
	fmt.Fprintf(w, "usr-merge:  %s (%s)\n", r.UsrMerge.State, termSafe(strings.Join(dirs, ", ")))
	kv := "none found"
	if len(r.KernelVersions) > 0 {
		kv = strings.Join(r.KernelVersions, ", ")
	}
	fmt.Fprintf(w, "kernel:     %s\n", termSafe(kv))
	mc := "none"
	if r.Microcode.Early {
		mc = "early archive with " + strings.Join(r.Microcode.Vendors, ", ")
	}
	fmt.Fprintf(w, "microcode:  %s\n", mc)
	for _, d := range r.Dropped {
		fmt.Fprintf(w, "warning: the kernel would skip %s\n", termSafe(d))
	}
	if len(r.Files) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		for _, f := range r.Files {
			size := fmt.Sprint(f.Size)
			if f.Type == "char" || f.Type == "block" {
				size = fmt.Sprintf("%d, %d", f.RDevMajor, f.RDevMinor)
			}
			name := termSafe(f.Name)
			if f.Target != "" {
				name += " -> " + termSafe(f.Target)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d/%d\t%s\t%s\t%s\n", f.Segment, modeString(f.Type, f.Mode), f.Nlink, f.UID, f.GID, size,
				time.Unix(int64(f.Mtime), 0).UTC().Format("2006-01-02 15:04"), name)
		}
		tw.Flush()
	}
}

// modeString renders type and permissions as ls -l does.
func modeString(typ string, mode uint32) string {
	c := map[string]byte{"file": '-', "dir": 'd', "symlink": 'l', "char": 'c', "block": 'b', "fifo": 'p', "socket": 's'}[typ]
	if c == 0 {
		c = '?'
	}
	b := []byte{c}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<uint(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := []struct {
		bit       uint32
		pos       int
		set, only byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}}
	for _, s := range special {
		if mode&s.bit != 0 {
			if b[s.pos] == 'x' || b[s.pos] == 's' || b[s.pos] == 't' {
				b[s.pos] = s.set
			} else {
				b[s.pos] = s.only
			}
		}
	}
	return string(b)
}

// parseSize reads sizes such as 512M or 4G (binary units). A size that
// does not fit in 63 bits is an error, never a silent default.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	t = strings.TrimSuffix(t, "I")
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult, t = 1<<10, t[:len(t)-1]
		case 'M':
			mult, t = 1<<20, t[:len(t)-1]
		case 'G':
			mult, t = 1<<30, t[:len(t)-1]
		case 'T':
			mult, t = 1<<40, t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil && errors.Is(err, strconv.ErrRange) || err == nil && n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large: a size must stay below 8 EiB", s)
	}
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512M, 4G)", s)
	}
	return n * mult, nil
}

// limitFlags bound what reading an untrusted image may take: the commands
// that read one share them.
type limitFlags struct {
	maxSize, maxMetadata string
}

func (l *limitFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&l.maxSize, "max-size", "4G", "refuse images that decompress to more than this (K, M, G, T suffixes)")
	fs.StringVar(&l.maxMetadata, "max-metadata", "256M", fmt.Sprintf("refuse images whose entries take more memory than this: each entry counts %d bytes plus its name and link target (about 250,000 entries; real initrds have under 10,000)", remix.EntryCost))
}

// options turns the flags into the reader's limits.
func (l *limitFlags) options() (remix.ScanOptions, error) {
	size, err := parseSize(l.maxSize)
	if err != nil {
		return remix.ScanOptions{}, usagef("--max-size: %v", err)
	}
	meta, err := parseSize(l.maxMetadata)
	if err != nil {
		return remix.ScanOptions{}, usagef("--max-metadata: %v", err)
	}
	return remix.ScanOptions{MaxUncompressed: size, MaxMetadata: meta}, nil
}

// limitHint says which flag raises a limit an image ran into.
func limitHint(err error) string {
	switch {
	case errors.As(err, new(*remix.MetadataError)):
		return " (raise the limit with --max-metadata)"
	case errors.Is(err, remix.ErrTooLarge):
		return " (raise the limit with --max-size)"
	}
	return ""
}
