// Package bootentry reads and writes Boot Loader Specification type #1
// entries ($BOOT/loader/entries/*.conf) for initrd-remix's rescue images, so
// that a boot loader which follows the specification (systemd-boot, GRUB with
// blscfg) offers a rescue entry for each installed kernel.
//
// It keeps the promises the usual rescue entries elsewhere break: an entry
// never points at a missing file (Write checks before writing, List reports
// entries whose files went away), a machine-id change never leaves two rescue
// entries for one kernel (Write removes the entries of this installation's
// earlier tokens for the same version), removing a kernel's entries leaves
// nothing of ours behind (Remove), and on a $BOOT shared with other
// installations only this installation's entries are ever written over or
// removed (OwnedTokens), and no path an entry names is followed out of the
// boot partition. Entries are told apart from everyone else's by the file
// name suffix Suffix and their "version" field; nothing else in
// loader/entries is ever touched.
package bootentry

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Suffix ends the file name of every rescue entry this package writes:
// <token>-<kernel version>-initrd-remix-rescue.conf. It differs from the
// names systemd's 90-loaderentry.install uses (<token>-<version>.conf and
// <token>-<version>+<tries>.conf), so neither tool removes the other's entry.
const Suffix = "-initrd-remix-rescue.conf"

// ImagePrefix starts the file name of every rescue image initrd-remix writes
// (initrd-remix-rescue.img in an entry directory,
// initrd-remix-rescue-<version>.img in /boot). Remove deletes only images
// with this prefix, so a hand-written entry that points at a distribution's
// initrd can never make it delete that initrd.
const ImagePrefix = "initrd-remix-rescue"

// MaxSize bounds what Parse accepts; real entries are a few hundred bytes.
const MaxSize = 64 << 10

// Entry is one type #1 entry. Paths (Linux, Initrd) are absolute paths
// relative to the root of the partition that holds the entry, as the
// specification requires.
type Entry struct {
	Title     string
	Version   string
	MachineID string
	SortKey   string
	Linux     string
	Initrd    []string
	Options   string
	// Extra holds the keys this package does not interpret (efi,
	// devicetree, architecture, ...), in file order, so nothing is lost.
	Extra []Field
}

// Field is one key and value of an entry.
type Field struct{ Key, Value string }

// ParseError locates a problem in an entry file.
type ParseError struct {
	Line int // 1-based; 0 when the problem is the whole file
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Parse reads an entry the way the specification defines it: one "key
// value" per line, separated by spaces or tabs; lines starting with "#" and
// empty lines are ignored; "initrd" and "options" may repeat (options are
// joined with a space); for other keys the last line wins, as in
// systemd-boot. Unknown keys are kept in Extra. It refuses what no boot
// loader would read as intended: invalid UTF-8, NUL bytes, a key without a
// value, files larger than MaxSize.
func Parse(data []byte) (*Entry, error) {
	if len(data) > MaxSize {
		return nil, &ParseError{0, fmt.Sprintf("%d bytes, more than the %d an entry may have", len(data), MaxSize)}
	}
	e := &Entry{}
	var opts []string
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		if !utf8.Valid(raw) {
			return nil, &ParseError{n, "not valid UTF-8"}
		}
		if bytes.IndexByte(raw, 0) >= 0 {
			return nil, &ParseError{n, "NUL byte"}
		}
		line := strings.TrimRight(string(raw), " \t\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.IndexAny(line, " \t")
		if cut < 0 {
			return nil, &ParseError{n, fmt.Sprintf("key %q has no value", line)}
		}
		key, value := line[:cut], strings.TrimLeft(line[cut:], " \t")
		switch key {
		case "title":
			e.Title = value
		case "version":
			e.Version = value
		case "machine-id":
			e.MachineID = value
		case "sort-key":
			e.SortKey = value
		case "linux":
			e.Linux = value
		case "initrd":
			e.Initrd = append(e.Initrd, value)
		case "options":
			opts = append(opts, value)
		default:
			e.Extra = append(e.Extra, Field{key, value})
		}
	}
	e.Options = strings.Join(opts, " ")
	return e, nil
}

// Marshal writes the entry in the key order systemd's 90-loaderentry.install
// uses, keys padded to one column. Values are written as they are: Check
// them first (Validate) when they come from outside.
func (e *Entry) Marshal() []byte {
	var b bytes.Buffer
	put := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k, v)
		}
	}
	put("title", e.Title)
	put("version", e.Version)
	put("machine-id", e.MachineID)
	put("sort-key", e.SortKey)
	put("options", e.Options)
	put("linux", e.Linux)
	for _, i := range e.Initrd {
		put("initrd", i)
	}
	for _, f := range e.Extra {
		put(f.Key, f.Value)
	}
	return b.Bytes()
}

// Validate checks that the entry can be written and read back unchanged and
// names what a boot loader needs: a version, a kernel and an initrd, as
// absolute paths. It returns the first problem.
func (e *Entry) Validate() error {
	fields := []Field{{"title", e.Title}, {"version", e.Version}, {"machine-id", e.MachineID},
		{"sort-key", e.SortKey}, {"options", e.Options}, {"linux", e.Linux}}
	for _, i := range e.Initrd {
		fields = append(fields, Field{"initrd", i})
	}
	fields = append(fields, e.Extra...)
	for _, f := range fields {
		if strings.ContainsAny(f.Value, "\n\r\x00") || !utf8.ValidString(f.Value) {
			return fmt.Errorf("%s %q: a value must be one line of UTF-8", f.Key, f.Value)
		}
		if f.Value != strings.TrimSpace(f.Value) {
			return fmt.Errorf("%s %q: leading or trailing white space would be lost", f.Key, f.Value)
		}
	}
	for _, f := range e.Extra {
		if f.Key == "" || strings.ContainsAny(f.Key, " \t#") {
			return fmt.Errorf("key %q is not a single word", f.Key)
		}
	}
	if e.Version == "" {
		return fmt.Errorf("no version")
	}
	if !strings.HasPrefix(e.Linux, "/") {
		return fmt.Errorf("linux %q: not an absolute path on the boot partition", e.Linux)
	}
	if len(e.Initrd) == 0 {
		return fmt.Errorf("no initrd")
	}
	for _, i := range e.Initrd {
		if !strings.HasPrefix(i, "/") {
			return fmt.Errorf("initrd %q: not an absolute path on the boot partition", i)
		}
	}
	return nil
}
