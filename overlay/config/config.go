// Package config reads initrd-remix's configuration: the system-wide file
// /etc/initrd-remix/initrd-remix.conf, then every /etc/initrd-remix/conf.d/
// *.conf in lexical order, so packages and administrators can drop in
// settings for repeatable builds (the kernel hooks build with whatever is
// there). Flags given on the command line override it.
//
// Format: one "key = value" per line; blank lines and lines starting with
// "#" are ignored; keys are build's long flag names without "--" (add,
// include, module, preset, allow-missing, compress, mode, root, ...).
// List keys (add, include, module) accumulate over lines and files; for
// the other keys the last value wins. Values are taken literally after
// trimming spaces (no quoting, no variables). The reserved key
// "hooks = yes|no" is read by the kernel hooks (they grep for exactly
// that syntax) and ignored by build.
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
	"strings"
)

// Default locations.
const (
	DefaultFile   = "/etc/initrd-remix/initrd-remix.conf"
	DefaultDropIn = "/etc/initrd-remix/conf.d"
)

// maxFile bounds one configuration file.
const maxFile = 1 << 20

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
func ListKeys() []string { return []string{"add", "include", "module"} }

func isList(k string) bool {
	for _, l := range ListKeys() {
		if l == k {
			return true
		}
	}
	return false
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

// Parse reads one file's content; name is used in errors.
func Parse(name string, b []byte) ([]Setting, error) {
	var out []Setting
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFile)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"key = value\", got %q", name, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" || strings.ContainsAny(k, " \t") || strings.HasPrefix(k, "-") {
			return nil, fmt.Errorf("%s:%d: bad key %q (keys are build's long flag names without \"--\")", name, n, k)
		}
		if k == "hooks" && v != "yes" && v != "no" {
			return nil, fmt.Errorf("%s:%d: hooks must be yes or no, got %q", name, n, v)
		}
		out = append(out, Setting{Key: k, Value: v, File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
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
func IsList(key string) bool { return isList(key) }
