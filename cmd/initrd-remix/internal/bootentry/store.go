package bootentry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
)

// Store is a $BOOT directory (the one holding loader/entries) as seen from a
// root directory: "/" on the running system, a chroot or mounted image in
// tests and installers.
type Store struct {
	// Root is the directory every other path is inside.
	Root string
	// BootRoot is $BOOT inside Root: /boot, /efi or /boot/efi.
	BootRoot string
}

// FindBootRoot picks $BOOT the way systemd's kernel-install does when it is
// not configured: the first of /efi, /boot and /boot/efi (inside root) that
// holds loader/entries, else /boot.
func FindBootRoot(root string) string {
	for _, p := range []string{"/efi", "/boot", "/boot/efi"} {
		if st, err := os.Stat(filepath.Join(root, p, "loader/entries")); err == nil && st.IsDir() {
			return p
		}
	}
	return "/boot"
}

func (s Store) host(p string) string { return filepath.Join(s.Root, p) }

// EntriesDir is loader/entries under BootRoot, as a path on this system.
func (s Store) EntriesDir() string { return s.host(path.Join(s.BootRoot, "loader/entries")) }

// Partition returns the mount point (inside Root) of the file system that
// holds BootRoot: entry paths are relative to it. With /boot on the root file
// system it is "/", and entries say /boot/<token>/<version>/linux.
func (s Store) Partition() (string, error) {
	p := path.Clean("/" + s.BootRoot)
	st, err := os.Stat(s.host(p))
	if err != nil {
		return "", fmt.Errorf("boot directory: %w", err)
	}
	dev := devOf(st)
	for p != "/" {
		parent := path.Dir(p)
		pst, err := os.Stat(s.host(parent))
		if err != nil {
			return "", fmt.Errorf("boot directory: %w", err)
		}
		if devOf(pst) != dev {
			return p, nil
		}
		p = parent
	}
	return "/", nil
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// Found is one rescue entry file in loader/entries.
type Found struct {
	File  string `json:"file"` // path on this system
	Name  string `json:"name"` // file name
	Entry *Entry `json:"-"`
	// Problems says why a boot loader could not boot it: a file it names
	// is missing or outside the boot partition, or it cannot be parsed
	// (then Entry is nil).
	Problems []string `json:"problems,omitempty"`
	// Token is the entry token its file name carries ("" when that cannot
	// be told), and Owned says whether it is one of this installation's
	// (OwnedTokens): only those are ever written over or removed.
	Token string `json:"token,omitempty"`
	Owned bool   `json:"owned"`
}

// TokensFile (inside Root) records every entry token Write has used on
// this installation, one a line. With the current machine ID they are the
// tokens this installation owns: on a $BOOT shared with other
// installations (same kernel version, other machine IDs or entry tokens)
// their entries are never touched, while an entry this installation wrote
// under its previous machine ID is still its own to replace and remove.
const TokensFile = "/var/lib/initrd-remix/entry-tokens"

// OwnedTokens returns the entry tokens of this installation: its machine
// ID and every token recorded in TokensFile.
func (s Store) OwnedTokens() (map[string]bool, error) {
	owned := map[string]bool{}
	if id := MachineID(s.Root); id != "" {
		owned[id] = true
	}
	recorded, err := s.recordedTokens()
	for _, t := range recorded {
		owned[t] = true
	}
	return owned, err
}

func (s Store) recordedTokens() ([]string, error) {
	f := s.host(TokensFile)
	data, err := os.ReadFile(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); checkName(l) == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// own records token in TokensFile (atomically), before an entry is
// written under it.
func (s Store) own(token string) error {
	recorded, err := s.recordedTokens()
	if err != nil {
		return err
	}
	for _, t := range recorded {
		if t == token {
			return nil
		}
	}
	file := s.host(TokensFile)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("record the entry token: %w", err)
	}
	f, err := atomicfile.Create(file, 0o644)
	if err != nil {
		return fmt.Errorf("record the entry token: %w", err)
	}
	defer f.Abort()
	if _, err := f.WriteString(strings.Join(append(recorded, token), "\n") + "\n"); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return f.Commit()
}

// tokenOf tells the entry token from an entry's file name: the name less
// "-" + version + Suffix, with the version the entry states, or, for an
// entry that cannot be parsed, an owned token the name starts with,
// followed by a valid version.
func tokenOf(name string, e *Entry, owned map[string]bool) string {
	if e != nil {
		if tok, ok := strings.CutSuffix(name, "-"+e.Version+Suffix); ok && e.Version != "" && checkName(tok) == nil {
			return tok
		}
		return ""
	}
	for tok := range owned {
		if rest, ok := strings.CutPrefix(name, tok+"-"); ok && CheckVersion(strings.TrimSuffix(rest, Suffix)) == nil {
			return tok
		}
	}
	return ""
}

// List returns the rescue entries (file names ending in Suffix) for the
// kernel version, or for every version when version is "", sorted by file
// name. A missing entries directory means no entries. Entries that cannot be
// parsed are listed with a problem, never skipped silently.
func (s Store) List(version string) ([]Found, error) {
	dir := s.EntriesDir()
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	part, err := s.Partition()
	if err != nil {
		return nil, err
	}
	owned, err := s.OwnedTokens()
	if err != nil {
		return nil, err
	}
	var out []Found
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, Suffix) || !de.Type().IsRegular() {
			continue
		}
		f := Found{File: filepath.Join(dir, name), Name: name}
		e, err := readEntry(f.File)
		f.Token = tokenOf(name, e, owned)
		f.Owned = f.Token != "" && owned[f.Token]
		if err != nil {
			if version == "" || strings.HasSuffix(name, "-"+version+Suffix) {
				f.Problems = append(f.Problems, err.Error())
				out = append(out, f)
			}
			continue
		}
		if version != "" && e.Version != version {
			continue
		}
		f.Entry = e
		if e.Version == "" {
			f.Problems = append(f.Problems, "no version")
		}
		for _, p := range append([]string{e.Linux}, e.Initrd...) {
			if p == "" {
				f.Problems = append(f.Problems, "no linux")
				continue
			}
			h, err := s.resolve(part, p, true)
			if err != nil {
				f.Problems = append(f.Problems, err.Error())
				continue
			}
			if st, err := os.Stat(h); err != nil || !st.Mode().IsRegular() {
				f.Problems = append(f.Problems, fmt.Sprintf("%s is missing", p))
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readEntry(file string) (*Entry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	e, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return e, nil
}

// WriteRequest describes a rescue entry. Linux and Initrd are paths inside
// Store.Root; they must be regular files on the partition holding the
// entries (a type #1 entry cannot name files elsewhere).
type WriteRequest struct {
	Token     string // entry token: the machine ID, an os-release ID, ...
	Version   string // kernel version
	MachineID string // written only when it equals Token, as systemd does
	Title     string
	SortKey   string
	Options   string
	Linux     string
	Initrd    []string
}

// WriteResult says what Write did.
type WriteResult struct {
	File  string `json:"file"`
	Entry *Entry `json:"-"`
	// Removed lists the files of other rescue entries for the same kernel
	// version (left by an earlier machine ID or entry token) and the rescue
	// images they named, which Write deleted.
	Removed []string `json:"removed"`
}

// EntryName is the file name of the rescue entry of a token and version.
func EntryName(token, version string) string { return token + "-" + version + Suffix }

// Write checks the request, writes the entry atomically (a reader sees the
// old entry or the new one), then deletes every other rescue entry for the
// same version and the rescue images those named, so a machine-id change
// leaves one entry, not two. Nothing is written when a named file is
// missing.
func (s Store) Write(r WriteRequest) (WriteResult, error) {
	var res WriteResult
	if err := checkName(r.Token); err != nil {
		return res, fmt.Errorf("entry token %q: %w", r.Token, err)
	}
	if err := CheckVersion(r.Version); err != nil {
		return res, err
	}
	part, err := s.Partition()
	if err != nil {
		return res, err
	}
	pst, err := os.Stat(s.host(part))
	if err != nil {
		return res, err
	}
	e := &Entry{Title: r.Title, Version: r.Version, SortKey: r.SortKey, Options: r.Options}
	if r.MachineID != "" && r.MachineID == r.Token {
		e.MachineID = r.MachineID
	}
	keep := map[string]bool{}
	for i, p := range append([]string{r.Linux}, r.Initrd...) {
		rel, err := s.onPartition(p, part, devOf(pst))
		if err != nil {
			return res, err
		}
		if h, err := s.resolve(part, rel, false); err == nil {
			keep[h] = true
		}
		if i == 0 {
			e.Linux = rel
		} else {
			e.Initrd = append(e.Initrd, rel)
		}
	}
	if err := e.Validate(); err != nil {
		return res, fmt.Errorf("entry for %s: %w", r.Version, err)
	}
	if err := s.own(r.Token); err != nil {
		return res, err
	}
	dir := s.EntriesDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	res.File, res.Entry = filepath.Join(dir, EntryName(r.Token, r.Version)), e
	f, err := atomicfile.Create(res.File, 0o644)
	if err != nil {
		return res, fmt.Errorf("%s: %w", res.File, err)
	}
	defer f.Abort()
	if _, err := f.Write(e.Marshal()); err != nil {
		return res, fmt.Errorf("%s: %w", res.File, err)
	}
	if err := f.Commit(); err != nil {
		return res, fmt.Errorf("%s: %w", res.File, err)
	}
	others, err := s.List(r.Version)
	if err != nil {
		return res, err
	}
	for _, o := range others {
		if o.File == res.File || o.Entry == nil || !o.Owned {
			continue
		}
		removed, err := s.remove(o, part, true, keep)
		res.Removed = append(res.Removed, removed...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// onPartition checks that p (inside Root) is a non-empty regular file on the
// partition mounted at part and returns its path relative to that partition.
func (s Store) onPartition(p, part string, dev uint64) (string, error) {
	clean := path.Clean("/" + p)
	st, err := os.Stat(s.host(clean))
	if err != nil {
		return "", fmt.Errorf("an entry must not name a missing file: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return "", fmt.Errorf("%s: not a non-empty regular file", s.host(clean))
	}
	rel := clean
	if part != "/" {
		if !strings.HasPrefix(clean, part+"/") {
			return "", fmt.Errorf("%s is not on the boot partition %s", clean, part)
		}
		rel = clean[len(part):]
	}
	if devOf(st) != dev {
		return "", fmt.Errorf("%s is on another file system than the boot partition %s", clean, part)
	}
	if _, err := s.resolve(part, rel, true); err != nil {
		return "", err
	}
	return rel, nil
}

// resolve returns the path on this system of p, a path an entry names
// (relative to the partition mounted at part), and refuses one that leaves
// the partition: not absolute, with a ".." component, or whose directory
// (and, with follow, the file itself) resolves through symbolic links to a
// place outside the partition or on another file system. A missing file is
// not an error here: the caller checks what it needs.
func (s Store) resolve(part, p string, follow bool) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is not an absolute path on the boot partition", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("%q leaves the boot partition (a \"..\" component)", p)
	}
	top, err := filepath.EvalSymlinks(s.host(part))
	if err != nil {
		return "", fmt.Errorf("boot partition: %w", err)
	}
	tst, err := os.Stat(top)
	if err != nil {
		return "", fmt.Errorf("boot partition: %w", err)
	}
	h := s.host(path.Join(part, p))
	dir, err := filepath.EvalSymlinks(filepath.Dir(h))
	if err != nil {
		return h, nil // missing: nothing there to follow
	}
	h = filepath.Join(dir, filepath.Base(h))
	check := dir
	if follow {
		if real, err := filepath.EvalSymlinks(h); err == nil {
			check = real
		}
	}
	if check != top && !strings.HasPrefix(check, strings.TrimSuffix(top, "/")+"/") {
		return "", fmt.Errorf("%q leaves the boot partition through a symbolic link (to %s)", p, check)
	}
	if st, err := os.Stat(check); err == nil && devOf(st) != devOf(tst) {
		return "", fmt.Errorf("%q is on another file system than the boot partition", p)
	}
	return h, nil
}

// checkName refuses what cannot be one file name component, or would make
// the entry's name ambiguous.
func checkName(v string) error {
	switch {
	case v == "" || v == "." || v == "..":
		return errors.New("empty or a dot name")
	case len(v) > 128:
		return errors.New("longer than 128 bytes")
	case strings.ContainsAny(v, "/\\ \t\n\r\x00*?[]"):
		return errors.New("contains a slash, white space or a glob character")
	}
	return nil
}

// MaxVersion bounds a kernel version (uname's release field holds 64
// bytes).
const MaxVersion = 64

// CheckVersion refuses a kernel version that is not fit to become part of
// a file name, an entry or a boot menu id: it must be 1 to MaxVersion
// characters of A-Z, a-z, 0-9 and "._+~-", and must not start with a dot.
func CheckVersion(v string) error {
	bad := func(why string) error {
		return fmt.Errorf("kernel version %q: %s (a version is 1 to %d of A-Z a-z 0-9 . _ + ~ -, not starting with a dot)", v, why, MaxVersion)
	}
	switch {
	case v == "":
		return bad("empty")
	case len(v) > MaxVersion:
		return bad(fmt.Sprintf("%d bytes long", len(v)))
	case v[0] == '.':
		return bad("starts with a dot")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._+~-", c) >= 0) {
			return bad(fmt.Sprintf("byte %d is %q", i, c))
		}
	}
	return nil
}

// RemoveOptions selects the rescue entries Remove deletes.
type RemoveOptions struct {
	Version string // entries of this kernel version ("" with Stale: any)
	Token   string // only this token's entry ("" for every token)
	Stale   bool   // only entries that name a missing file or cannot be parsed
	Images  bool   // also delete the rescue images (ImagePrefix*) they name
}

// Remove deletes the selected rescue entries of this installation (Owned,
// or of o.Token when it is given) and returns the files it deleted. It
// never deletes a file whose name lacks Suffix or, with Images, an image
// whose name lacks ImagePrefix or that is not a regular file inside the
// boot partition.
func (s Store) Remove(o RemoveOptions) ([]string, error) {
	if o.Version == "" && !o.Stale {
		return nil, errors.New("remove needs a kernel version or the stale selection")
	}
	if o.Version != "" {
		if err := CheckVersion(o.Version); err != nil {
			return nil, err
		}
	}
	found, err := s.List(o.Version)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	part, err := s.Partition()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, f := range found {
		if (o.Token != "" && f.Token != o.Token) || (o.Token == "" && !f.Owned) {
			continue
		}
		if o.Stale && len(f.Problems) == 0 {
			continue
		}
		r, err := s.remove(f, part, o.Images, nil)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// remove deletes an entry file and, with images, the rescue images it names
// that are not in keep.
func (s Store) remove(f Found, part string, images bool, keep map[string]bool) ([]string, error) {
	var removed []string
	if images && f.Entry != nil {
		// The kernel too, when it is a rescue file: the one a rescue
		// entry made from a UKI names (the distribution's is never
		// named initrd-remix-rescue*).
		for _, p := range append([]string{f.Entry.Linux}, f.Entry.Initrd...) {
			if !strings.HasPrefix(path.Base(p), ImagePrefix) {
				continue
			}
			h, err := s.resolve(part, p, false)
			if err != nil || keep[h] {
				continue // never followed out of the partition
			}
			if st, err := os.Lstat(h); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := os.Remove(h); err == nil {
				removed = append(removed, h)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
		}
	}
	if err := os.Remove(f.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, err
	}
	return append(removed, f.File), nil
}
