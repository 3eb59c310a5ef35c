package ldso

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Limits for configuration files, which are small in practice.
const (
	maxConfBytes    = 1 << 20
	maxIncludeDepth = 16
)

// parseLdSoConf returns the directories named by an ld.so.conf and the
// files it includes, in order, the way ldconfig reads them: '#' starts a
// comment, "include PATTERN..." expands globs (relative ones against the
// including file's directory) and reads each match, "hwcap" lines are
// obsolete and ignored, any other line names one directory. Everything is
// resolved inside the root. A missing top-level file yields no
// directories.
func (v *view) parseLdSoConf(file string) ([]string, error) {
	var dirs []string
	seen := map[string]bool{}
	var parse func(file string, depth int) error
	parse = func(file string, depth int) error {
		if depth > maxIncludeDepth {
			return fmt.Errorf("%s: includes nested deeper than %d", file, maxIncludeDepth)
		}
		b, _, err := v.readFile(file, maxConfBytes)
		if err != nil {
			if depth == 0 && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, maxConfBytes)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			fields := strings.Fields(line)
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !strings.HasPrefix(pat, "/") {
						pat = path.Join(path.Dir(file), pat)
					}
					for _, m := range v.glob(pat) {
						if err := parse(m, depth+1); err != nil {
							return err
						}
					}
				}
				continue
			case "hwcap":
				continue
			}
			// Old ldconfig accepted "DIR=TYPE"; the type is ignored now.
			if i := strings.IndexByte(line, '='); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			if !strings.HasPrefix(line, "/") {
				continue // ldconfig refuses relative directories
			}
			d := dirSlash(path.Clean(line))
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
		return sc.Err()
	}
	if err := parse(file, 0); err != nil {
		return nil, err
	}
	return dirs, nil
}

// parseNsswitch returns the NSS service names of an nsswitch.conf in order
// of first use, without the "[STATUS=action]" items. A missing file yields
// glibc's built-in default: files, then dns for hosts.
func (v *view) parseNsswitch(file string) ([]string, error) {
	b, _, err := v.readFile(file, maxConfBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"files", "dns"}, nil
	}
	if err != nil {
		return nil, err
	}
	var services []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxConfBytes)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		_, list, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		inAction := false
		for _, f := range strings.Fields(list) {
			if strings.HasPrefix(f, "[") {
				inAction = true
			}
			if inAction {
				inAction = !strings.HasSuffix(f, "]")
				continue
			}
			if !seen[f] && validService(f) {
				seen[f] = true
				services = append(services, f)
			}
		}
	}
	return services, sc.Err()
}

func validService(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}
