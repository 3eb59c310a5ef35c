// Package config reads initrd-remix's configuration: the system-wide file
// /etc/initrd-remix/initrd-remix.conf, then every /etc/initrd-remix/conf.d/
// *.conf in lexical order, so packages and administrators can drop in
// settings for repeatable builds (the kernel hooks build with whatever is
// there). Flags given on the command line override it. It is the one reader
// of that grammar: build uses it, and the kernel hooks ask the binary
// ("initrd-remix config get hooks") instead of parsing the files themselves.
//
// Grammar: one "key = value" per line, blanks around "=" optional; blank
// lines are ignored; "#" at the start of a line, or after a blank, starts a
// comment that runs to the end of the line. Values are taken literally
// after trimming blanks (no quoting, no variables). Only the keys in Keys
// are accepted: build's flags that make sense for every build (add,
// include, module, preset, allow-missing, compress, level, threads, mode,
// max-size, max-metadata, spool-dir, run, and sign-key and sign-cert for
// rescue UKIs) and "hooks", read by the kernel
// hooks. Keys that name one build only (input, output, kver, root, dry-run,
// force, ...) are refused.
// List keys (add, include, module) accumulate over lines and files; for
// the other keys the last value wins. Booleans are yes/no, true/false,
// on/off or 1/0 in any case, and are stored as "true" or "false".
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Default locations.
const (
	DefaultFile   = "/etc/initrd-remix/initrd-remix.conf"
	DefaultDropIn = "/etc/initrd-remix/conf.d"
)

// maxFile bounds one configuration file.
const maxFile = 1 << 20

// Kind is the type of a key's value.
type Kind int

// The kinds of value a key takes.
const (
	String Kind = iota // any non-empty text
	List               // any non-empty text; every line counts
	Bool               // yes/no, true/false, on/off, 1/0 (any case)
	Int                // a decimal integer
)

// Key is one key a configuration file may set.
type Key struct {
	Name    string
	Kind    Kind
	Default string // the value when no file sets it; "" when build's flag default applies
}

// Keys lists what a configuration file may set.
func Keys() []Key {
	return []Key{
		{Name: "add", Kind: List}, {Name: "include", Kind: List}, {Name: "module", Kind: List},
		{Name: "drivers", Kind: String}, {Name: "omit-module", Kind: List},
		{Name: "preset", Kind: String}, {Name: "allow-missing", Kind: Bool}, {Name: "compress", Kind: String},
		{Name: "level", Kind: Int}, {Name: "threads", Kind: Int}, {Name: "mode", Kind: String},
		{Name: "max-size", Kind: String}, {Name: "max-metadata", Kind: String}, {Name: "spool-dir", Kind: String}, {Name: "run", Kind: String},
		{Name: "sign-key", Kind: String}, {Name: "sign-cert", Kind: String},
		{Name: "ssh", Kind: Bool}, {Name: "ssh-authorized-keys", Kind: String}, {Name: "ssh-host-keys", Kind: String}, {Name: "ip", Kind: String},
		{Name: "hooks", Kind: Bool, Default: "true"},
	}
}

// commandLineOnly are build's flags that name one build, or change how one
// run behaves: in a file, every kernel hook would inherit them (with
// dry-run, a hook would report an image it never wrote).
var commandLineOnly = []string{"input", "output", "kver", "root", "dry-run", "force", "no-verify", "quiet", "json", "config", "config-dir", "help"}

// Lookup returns the key of that name, if a file may set it.
func Lookup(name string) (Key, bool) {
	for _, k := range Keys() {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// ParseBool reads a boolean in the usual spellings, in any case.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes/no, true/false, on/off, 1/0)", v)
}

// Setting is one key's value and where it was set, for error messages.
type Setting struct {
	Key, Value string
	File       string
	Line       int
}

// Config is the merged configuration, in the order settings were read.
type Config struct {
	Settings []Setting
}

// ListKeys accumulate; every other key keeps its last value.
func ListKeys() []string {
	var out []string
	for _, k := range Keys() {
		if k.Kind == List {
			out = append(out, k.Name)
		}
	}
	return out
}

// Values returns every value of a list key, in order.
func (c *Config) Values(key string) []string {
	var out []string
	for _, s := range c.Settings {
		if s.Key == key {
			out = append(out, s.Value)
		}
	}
	return out
}

// Value returns the last value of a key.
func (c *Config) Value(key string) (Setting, bool) {
	for i := len(c.Settings) - 1; i >= 0; i-- {
		if c.Settings[i].Key == key {
			return c.Settings[i], true
		}
	}
	return Setting{}, false
}

// Effective returns the values a key has after every file was read: each
// value of a list key, the last value of another key, or its default.
func (c *Config) Effective(name string) ([]string, error) {
	k, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%q is not a configuration key (keys: %s)", name, keyNames())
	}
	if k.Kind == List {
		return c.Values(name), nil
	}
	if s, ok := c.Value(name); ok {
		return []string{s.Value}, nil
	}
	if k.Default != "" {
		return []string{k.Default}, nil
	}
	return nil, nil
}

func keyNames() string {
	var n []string
	for _, k := range Keys() {
		n = append(n, k.Name)
	}
	return strings.Join(n, ", ")
}

// stripComment cuts a comment off a line: "#" at its start or after a blank.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// Parse reads one file's content; name is used in errors, with the line.
func Parse(name string, b []byte) ([]Setting, error) {
	var out []Setting
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFile)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(stripComment(sc.Text()))
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"key = value\", got %q", name, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		key, known := Lookup(k)
		switch {
		case known:
		case k == "" || strings.ContainsAny(k, " \t") || strings.HasPrefix(k, "-"):
			return nil, fmt.Errorf("%s:%d: bad key %q (keys are build's long flag names without \"--\": %s)", name, n, k, keyNames())
		case contains(commandLineOnly, k):
			return nil, fmt.Errorf("%s:%d: %q cannot be set in a configuration file, only on the command line (keys: %s)", name, n, k, keyNames())
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q (keys: %s)", name, n, k, keyNames())
		}
		if v == "" {
			return nil, fmt.Errorf("%s:%d: %s has no value", name, n, k)
		}
		switch key.Kind {
		case Bool:
			b, err := ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", name, n, k, err)
			}
			v = strconv.FormatBool(b)
		case Int:
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %q is not a whole number", name, n, k, v)
			}
		}
		out = append(out, Setting{Key: k, Value: v, File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Load reads file (missing is fine) and then dropIn/*.conf in lexical
// order (a missing directory is fine). file == "" skips it.
func Load(file, dropIn string) (*Config, error) {
	c := &Config{}
	var files []string
	if file != "" {
		files = append(files, file)
	}
	if dropIn != "" {
		m, err := filepath.Glob(filepath.Join(dropIn, "*.conf"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dropIn, err)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", f)
		}
		if fi.Size() > maxFile {
			return nil, fmt.Errorf("%s: larger than %d bytes", f, maxFile)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		s, err := Parse(f, b)
		if err != nil {
			return nil, err
		}
		c.Settings = append(c.Settings, s...)
	}
	return c, nil
}

// Check refuses keys not in known (build's flag names) and "hooks",
// naming the file and line.
func (c *Config) Check(known func(string) bool) error {
	for _, s := range c.Settings {
		if s.Key == "hooks" {
			continue
		}
		if !known(s.Key) {
			return fmt.Errorf("%s:%d: unknown key %q", s.File, s.Line, s.Key)
		}
	}
	return nil
}

// IsList reports whether key accumulates.
func IsList(key string) bool {
	k, ok := Lookup(key)
	return ok && k.Kind == List
}
