package sshd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxAuthorizedKeys bounds the authorized_keys file read (1 MiB is
// thousands of keys).
const maxAuthorizedKeys = 1 << 20

// AuthorizedKeysSearch is where authorized keys are looked for, inside the
// root, when none is named.
var authorizedKeysSearch = []string{"/etc/initrd-remix/authorized_keys", "/root/.ssh/authorized_keys"}

// AuthorizedKeysSearch returns the default search order inside root.
func AuthorizedKeysSearch(root string) []string {
	var out []string
	for _, p := range authorizedKeysSearch {
		out = append(out, filepath.Join(root, p))
	}
	return out
}

// FindAuthorizedKeys returns the authorized keys file: given, or the
// first of AuthorizedKeysSearch(root) that exists.
func FindAuthorizedKeys(given, root string) (string, error) {
	if given != "" {
		return given, nil
	}
	search := AuthorizedKeysSearch(root)
	for _, p := range search {
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no authorized keys for the rescue's SSH server: none given (--ssh-authorized-keys FILE or ssh-authorized-keys in the configuration) and none of %s exists", strings.Join(search, ", "))
}

// ReadAuthorizedKeys reads and checks an authorized_keys file: a regular
// file (a symlink is followed) that only root or the user running the
// build can change, in a directory likewise, holding at least one key
// OpenSSH accepts. It returns the keys, one line each.
func ReadAuthorizedKeys(p string) ([]byte, error) {
	data, err := readChecked("authorized keys", p, false, true, maxAuthorizedKeys)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	dir := filepath.Dir(real)
	di, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	if err := checkOwner(dir, di, false); err != nil && di.Mode()&fs.ModeSticky == 0 {
		return nil, fmt.Errorf("authorized keys' directory %w", err)
	}
	keys, err := ParseAuthorizedKeys(data)
	if err != nil {
		return nil, fmt.Errorf("authorized keys %s: %w", p, err)
	}
	return keys, nil
}

// ParseAuthorizedKeys checks every line of an authorized_keys file (blank
// lines and # comments are skipped) and returns the key lines; a line
// OpenSSH would not accept is an error naming it, and so is a file without
// a key.
func ParseAuthorizedKeys(data []byte) ([]byte, error) {
	var out bytes.Buffer
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(bytes.TrimSuffix(line, []byte("\r")))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("line %d: a NUL byte", i+1)
		}
		_, _, _, rest, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("line %d: more than one key on a line", i+1)
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		return nil, errors.New("no key in it")
	}
	return out.Bytes(), nil
}
