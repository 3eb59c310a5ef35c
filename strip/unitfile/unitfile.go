// Package unitfile reads systemd unit files and drop-ins the way systemd
// does: [Section] headers, Key=Value assignments, comment lines (# and ;),
// a backslash at the end of a line continuing it, and an empty assignment
// resetting a list. It only parses; what a unit starts or runs is decided
// by its callers.
package unitfile

import (
	"bytes"
	"fmt"
	"strings"
)

// MaxSize bounds the unit files Parse accepts; systemd refuses larger ones
// too (its limit is 4 MiB per line), and no real unit comes close.
const MaxSize = 1 << 20

// Entry is one assignment.
type Entry struct {
	Section string
	Key     string
	Value   string
	Line    int // 1-based line of the assignment's first line
}

// File is a parsed unit file or drop-in: its assignments in order.
type File struct {
	Entries []Entry
}

// Parse reads a unit file. Lines that are neither a section header, an
// assignment, a comment nor empty are an error naming the line: systemd
// would ignore them with a warning, but a caller that must fail closed
// cannot know what was meant.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("unit file of %d bytes, more than %d", len(b), MaxSize)
	}
	f := &File{}
	section := ""
	lines := bytes.Split(b, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimRight(string(lines[i]), "\r")
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		// A continued line: the backslash is replaced by a space and
		// the next line appended; comment lines in between are skipped.
		cont := strings.HasSuffix(t, "\\")
		if cont {
			t = strings.TrimSuffix(t, "\\") + " "
		}
		for cont && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(strings.TrimRight(string(lines[i]), "\r"))
			if next != "" && (next[0] == '#' || next[0] == ';') {
				continue
			}
			cont = strings.HasSuffix(next, "\\")
			if cont {
				next = strings.TrimSuffix(next, "\\") + " "
			}
			t += next
		}
		t = strings.TrimSpace(strings.TrimSuffix(t, "\\"))
		if strings.HasPrefix(t, "[") {
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, fmt.Errorf("line %d: bad section header %q", start, clip(t))
			}
			section = t[1 : len(t)-1]
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %d: not an assignment: %q", start, clip(t))
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: assignment %s outside a section", start, k)
		}
		f.Entries = append(f.Entries, Entry{Section: section, Key: k, Value: strings.TrimSpace(v), Line: start})
	}
	return f, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Merge returns the assignments of f followed by those of the drop-ins, in
// order: the unit as systemd loads it.
func Merge(f *File, dropins ...*File) *File {
	out := &File{}
	if f != nil {
		out.Entries = append(out.Entries, f.Entries...)
	}
	for _, d := range dropins {
		if d != nil {
			out.Entries = append(out.Entries, d.Entries...)
		}
	}
	return out
}

// Values returns the values of key in section, a list as systemd builds
// it: each assignment appends, an empty one clears what came before.
func (f *File) Values(section, key string) []string {
	var out []string
	for _, e := range f.Entries {
		if e.Section != section || e.Key != key {
			continue
		}
		if e.Value == "" {
			out = nil
			continue
		}
		out = append(out, e.Value)
	}
	return out
}

// Words returns the space-separated words of every value of key in
// section (unit lists such as Wants=), with the same reset rule.
func (f *File) Words(section, key string) []string {
	var out []string
	for _, v := range f.Values(section, key) {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// Last returns the last value of key in section, or "".
func (f *File) Last(section, key string) string {
	v := f.Values(section, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// DependencyKeys are the [Unit] keys that make starting one unit start
// others (OnFailure= and OnSuccess= only when it ends, which a rescue boot
// must allow for too).
var DependencyKeys = []string{"Wants", "Requires", "Requisite", "BindsTo", "Upholds", "OnFailure", "OnSuccess"}

// InstallKeys are the [Install] keys naming units that, once the unit is
// enabled, pull it in; Also= names units enabled with it.
var InstallKeys = []string{"WantedBy", "RequiredBy", "UpheldBy", "Also"}

// ExecKeys are the keys of every section that run a command line.
var ExecKeys = []string{"ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPre", "ExecStopPost"}

// Commands returns every command line the unit runs, from any section,
// each with the key that runs it.
func (f *File) Commands() []Entry {
	var out []Entry
	for _, e := range f.Entries {
		for _, k := range ExecKeys {
			if e.Key == k && e.Value != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// Program returns the program a command line runs: its first word after
// systemd's prefixes (- @ : + ! !!) and quotes. A line that separates
// several commands with a lone ";" (older systemd) yields each program.
func Program(cmdline string) []string {
	var out []string
	first := true
	for _, w := range strings.Fields(cmdline) {
		if w == ";" {
			first = true
			continue
		}
		if !first {
			continue
		}
		first = false
		p := strings.TrimLeft(w, "-@:+!|")
		p = strings.Trim(p, `"'`)
		if p == "" {
			// "@" alone or only prefixes: the program is the next word.
			first = true
			continue
		}
		out = append(out, p)
	}
	return out
}

// Template returns the template of an instance name (foo@bar.service ->
// foo@.service), or "" for a name that is not an instance.
func Template(name string) string {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at || at+1 == dot {
		return ""
	}
	return name[:at+1] + name[dot:]
}
