// Package udevrule reads udev rules files the way udev does: a rule is one
// logical line (a backslash at the end continues it), made of
// comma-separated KEY{attr}OP"value" pairs. It only parses; which programs
// a rule may run is decided by its callers.
package udevrule

import (
	"fmt"
	"strings"
)

// Key is one KEY{attr}OP"value" pair of a rule.
type Key struct {
	Name  string // RUN, PROGRAM, IMPORT, ENV, ...
	Attr  string // the part in braces: program, builtin, SYSTEMD_WANTS, ...
	Op    string // ==, !=, =, +=, -=, :=
	Value string
}

// Rule is one logical line of a rules file.
type Rule struct {
	Line  int    // 1-based line where it starts
	Lines int    // how many lines it spans
	Text  string // the logical line, continuations joined
	Keys  []Key
	Err   error // set when the line could not be read; Keys then holds what came before
}

// Rules splits a rules file into rules, skipping comments and blank lines.
func Rules(body []byte) []Rule {
	var out []Rule
	lines := strings.Split(string(body), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		text := strings.TrimRight(lines[i], "\r")
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = strings.TrimSuffix(text, "\\") + strings.TrimRight(lines[i], "\r")
		}
		t := strings.TrimSpace(text)
		if t == "" || t[0] == '#' {
			continue
		}
		keys, err := parse(t)
		out = append(out, Rule{Line: start, Lines: i + 2 - start, Text: text, Keys: keys, Err: err})
	}
	return out
}

func parse(s string) ([]Key, error) {
	var out []Key
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		if s[i] == '#' {
			return out, nil
		}
		j := i
		for j < len(s) && (isWord(s[j])) {
			j++
		}
		if j == i {
			return out, fmt.Errorf("column %d: expected a key", i+1)
		}
		k := Key{Name: s[i:j]}
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				return out, fmt.Errorf("column %d: unterminated {", j+1)
			}
			k.Attr = s[j+1 : j+end]
			j += end + 1
		}
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		op := ""
		for _, o := range []string{"==", "!=", "+=", "-=", ":=", "="} {
			if strings.HasPrefix(s[j:], o) {
				op = o
				break
			}
		}
		if op == "" {
			return out, fmt.Errorf("column %d: key %s without an operator", j+1, k.Name)
		}
		k.Op = op
		j += len(op)
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) && s[j] == 'e' && j+1 < len(s) && s[j+1] == '"' {
			j++
		}
		if j >= len(s) || s[j] != '"' {
			return out, fmt.Errorf("column %d: value of %s is not quoted", j+1, k.Name)
		}
		j++
		var v strings.Builder
		closed := false
		for j < len(s) {
			c := s[j]
			if c == '\\' && j+1 < len(s) && s[j+1] == '"' {
				v.WriteByte('"')
				j += 2
				continue
			}
			if c == '"' {
				closed = true
				j++
				break
			}
			v.WriteByte(c)
			j++
		}
		if !closed {
			return out, fmt.Errorf("value of %s is not closed", k.Name)
		}
		k.Value = v.String()
		out = append(out, k)
		i = j
	}
}

func isWord(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// Runs reports whether k runs a program (not a udev builtin): RUN (or
// RUN{program}), PROGRAM and IMPORT{program}.
func (k Key) Runs() bool {
	switch k.Name {
	case "RUN":
		return k.Attr == "" || k.Attr == "program"
	case "PROGRAM":
		return true
	case "IMPORT":
		return k.Attr == "program"
	}
	return false
}

// Wants returns the systemd units a key asks systemd to start for the
// device (ENV{SYSTEMD_WANTS}), or nil.
func (k Key) Wants() []string {
	if k.Name == "ENV" && k.Attr == "SYSTEMD_WANTS" && k.Op != "==" && k.Op != "!=" {
		return strings.Fields(k.Value)
	}
	return nil
}
