package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// HostKeyName is the file name of the rescue's host key in the key
// directory (OpenSSH's own name for an Ed25519 host key).
const HostKeyName = "ssh_host_ed25519_key"

// HostKey is the rescue's host key: created once per machine, reused by
// every later build, so the fingerprint an administrator accepted stays
// valid across kernel updates.
type HostKey struct {
	Path        string // the private key file
	Private     []byte // OpenSSH private key format
	Public      ssh.PublicKey
	Fingerprint string // ssh.FingerprintSHA256: SHA256:...
	Created     bool   // this call made it
	Temporary   bool   // made in memory only (a dry run without a key on disk)
}

// AuthorizedLine is the public key in authorized_keys / known_hosts form.
func (k *HostKey) AuthorizedLine() string {
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k.Public)))
}

// checkOwner refuses a file or directory that a user other than root or
// the one running the build could change: not owned by either, or group or
// world writable; private says group and world may not even read it.
func checkOwner(p string, fi fs.FileInfo, private bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", p)
	}
	if st.Uid != 0 && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s: unsafe owner uid %d (must be root or uid %d, which runs this build)", p, st.Uid, os.Getuid())
	}
	perm := fi.Mode().Perm()
	if private && perm&0o077 != 0 {
		return fmt.Errorf("%s: unsafe permissions %04o: only its owner may read it (chmod go= %s)", p, perm, p)
	}
	if perm&0o022 != 0 {
		return fmt.Errorf("%s: unsafe permissions %04o: group or others may write it (chmod go-w %s)", p, perm, p)
	}
	return nil
}

// LoadOrCreateHostKey returns the host key in dir, creating dir (0700)
// and the key (0600) when absent unless create is false (--dry-run: a key
// is made in memory and nothing is written). An existing directory or key
// that others could read or change is an error naming it.
func LoadOrCreateHostKey(dir string, create bool) (*HostKey, error) {
	p := filepath.Join(dir, HostKeyName)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return temporaryHostKey(p)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("host key directory: %w", err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("host key directory: %w", err)
		}
		if fi, err = os.Lstat(dir); err != nil {
			return nil, fmt.Errorf("host key directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("host key directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("host key directory %s: not a directory", dir)
	}
	if err := checkOwner(dir, fi, true); err != nil {
		return nil, fmt.Errorf("host key directory %w", err)
	}
	if k, err := readHostKey(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if !create {
		return temporaryHostKey(p)
	}
	k, err := newHostKey(p)
	if err != nil {
		return nil, err
	}
	// Written beside, then linked into place: link never replaces, so two
	// builds at once keep the first key and both use it.
	tmp, err := os.CreateTemp(dir, "."+HostKeyName+"-*")
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(k.Private); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readHostKey(p)
		}
		return nil, fmt.Errorf("host key: %w", err)
	}
	k.Created = true
	// The public half for the administrator's known_hosts; the private
	// file is the one that counts.
	pub := []byte(k.AuthorizedLine() + " initrd-remix-rescue\n")
	if err := os.WriteFile(p+".pub.tmp", pub, 0o644); err == nil {
		_ = os.Rename(p+".pub.tmp", p+".pub")
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return k, nil
}

func temporaryHostKey(p string) (*HostKey, error) {
	k, err := newHostKey(p)
	if err != nil {
		return nil, err
	}
	k.Temporary = true
	return k, nil
}

func newHostKey(p string) (*HostKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "initrd-remix-rescue")
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return parseHostKey(p, pem.EncodeToMemory(block))
}

func readHostKey(p string) (*HostKey, error) {
	data, err := readChecked("host key", p, true, false, 64<<10)
	if err != nil {
		return nil, err
	}
	return parseHostKey(p, data)
}

// readChecked reads the regular file p (a final symlink is followed only
// with follow) that no one but root or the user running the build can
// change (checkOwner; private: nor read), of at most limit bytes; what
// names it in errors.
func readChecked(what, p string, private, follow bool, limit int64) ([]byte, error) {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", what, p)
	}
	if err := checkOwner(p, fi, private); err != nil {
		return nil, fmt.Errorf("%s %w", what, err)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s %s: %d bytes, more than %d", what, p, fi.Size(), limit)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return data, nil
}

func parseHostKey(p string, data []byte) (*HostKey, error) {
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", p, err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("host key %s: a %s key, want %s", p, signer.PublicKey().Type(), ssh.KeyAlgoED25519)
	}
	return &HostKey{Path: p, Private: data, Public: signer.PublicKey(), Fingerprint: ssh.FingerprintSHA256(signer.PublicKey())}, nil
}

// DropbearPrivate is the host key in Dropbear's own format (what
// dropbearkey writes and dropbear -r reads): string "ssh-ed25519", then a
// string of the 32-byte seed and the 32-byte public key
// (buf_put_ed25519_priv_key in Dropbear's signkey_ed25519.c).
func (k *HostKey) DropbearPrivate() ([]byte, error) {
	raw, err := ssh.ParseRawPrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", k.Path, err)
	}
	var priv ed25519.PrivateKey
	switch p := raw.(type) {
	case ed25519.PrivateKey:
		priv = p
	case *ed25519.PrivateKey:
		priv = *p
	default:
		return nil, fmt.Errorf("host key %s: not an Ed25519 key", k.Path)
	}
	var b bytes.Buffer
	put := func(data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		b.Write(n[:])
		b.Write(data)
	}
	put([]byte(ssh.KeyAlgoED25519))
	put(priv) // seed || public key, 64 bytes
	return b.Bytes(), nil
}
