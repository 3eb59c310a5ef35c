package bootentry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// UKISuffix ends the file name of every rescue UKI (a Boot Loader
// Specification type #2 entry) in $BOOT/EFI/Linux:
// <token>-<version>_initrd-remix-rescue.efi sorts after the distribution's
// <token>-<version>.efi and <token>-<version>+N.efi.
const UKISuffix = "_initrd-remix-rescue.efi"

// UKIName is the file name of the rescue UKI of a token and version.
func UKIName(token, version string) string { return token + "-" + version + UKISuffix }

// UKIDir is EFI/Linux under BootRoot, as a path on this system.
func (s Store) UKIDir() string { return s.host(path.Join(s.BootRoot, "EFI/Linux")) }

// UKIInfo is what reading a rescue UKI tells: the menu title, kernel
// version (.uname, "" when unknown) and command line, and what keeps it
// from being a working rescue (it cannot be read, it is not a rescue).
type UKIInfo struct {
	Title, Version, Options string
	Problems                []string
}

// UKIReader reads the rescue UKI at file (a path on this system). The
// store knows file names and ownership; the reader knows the image format.
type UKIReader func(file string) UKIInfo

// FoundUKI is one rescue UKI in EFI/Linux.
type FoundUKI struct {
	File, Name string
	UKIInfo
	// Token and Owned are as for Found.
	Token string
	Owned bool
}

// ListUKIs returns the rescue UKIs (file names ending in UKISuffix) for the
// kernel version, or for every version when version is "", sorted by file
// name, with the reader's problems and the store's: like a type #1 entry
// whose kernel is gone, a rescue UKI is stale when the kernel it carries
// is no longer installed, that is when the distribution's UKI it was made
// from (<token>-<version>.efi, or a +TRIES name of it, beside it) is gone.
// One whose version or token cannot be told is listed with a problem,
// never skipped silently.
func (s Store) ListUKIs(version string, read UKIReader) ([]FoundUKI, error) {
	dir := s.UKIDir()
	names, err := rescueFiles(dir, UKISuffix)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	owned, err := s.OwnedTokens()
	if err != nil {
		return nil, err
	}
	var out []FoundUKI
	for _, name := range names {
		f := FoundUKI{File: filepath.Join(dir, name), Name: name, UKIInfo: read(filepath.Join(dir, name))}
		if f.Problems == nil {
			f.Problems = []string{}
		}
		f.Token, f.Version = ukiTokenOf(name, f.Version, owned)
		if version != "" && f.Version != version && !strings.HasSuffix(name, "-"+version+UKISuffix) {
			continue
		}
		f.Owned = f.Token != "" && owned[f.Token]
		if f.Token == "" || f.Version == "" {
			f.Problems = append(f.Problems, "no entry token and kernel version in the name (<token>-<version>"+UKISuffix+")")
		} else {
			f.Problems = append(f.Problems, ukiStale(dir, f.Token, f.Version)...)
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ukiTokenOf tells the entry token and version from a rescue UKI's file
// name: with the version the image carries, the name less "-" + version +
// UKISuffix; for one that cannot be read, an owned token the name starts
// with, followed by a valid version.
func ukiTokenOf(name, version string, owned map[string]bool) (string, string) {
	if version != "" {
		if tok, ok := strings.CutSuffix(name, "-"+version+UKISuffix); ok && checkName(tok) == nil {
			return tok, version
		}
		return "", version
	}
	for tok := range owned {
		if rest, ok := strings.CutPrefix(name, tok+"-"); ok && CheckVersion(strings.TrimSuffix(rest, UKISuffix)) == nil {
			return tok, strings.TrimSuffix(rest, UKISuffix)
		}
	}
	return "", ""
}

// ukiStale says why the rescue UKI of token and version in dir outlived
// its kernel: the distribution's UKI of the same token and version
// (<token>-<version>.efi, or a +TRIES name of it) is gone from dir. With
// layout=uki that UKI is the installed kernel, as /boot/<token>/<version>/linux
// is with layout=bls: kernel-install remove deletes it. Whether
// /usr/lib/modules/<version> exists is not asked: a kernel without modules
// is installed all the same.
func ukiStale(dir, token, version string) []string {
	dist := token + "-" + version
	des, err := os.ReadDir(dir)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", dir, err)}
	}
	for _, de := range des {
		n := de.Name()
		if de.Type().IsRegular() && (n == dist+".efi" || strings.HasPrefix(n, dist+"+") && strings.HasSuffix(n, ".efi")) {
			return nil
		}
	}
	return []string{fmt.Sprintf("the distribution's unified kernel image %s.efi is gone: its kernel is no longer installed", dist)}
}

// WriteUKI records the rescue UKI of token and version, which the build
// wrote to EFI/Linux/UKIName(token, version), as this installation's, as
// Write does for a type #1 entry: it must read as a working rescue, its
// token is recorded in TokensFile, and the rescue UKIs of the same
// version under this installation's other tokens (an earlier machine ID)
// are deleted, so a machine-id change leaves one rescue UKI, not two.
func (s Store) WriteUKI(token, version string, read UKIReader) (WriteResult, error) {
	var res WriteResult
	if err := checkName(token); err != nil {
		return res, fmt.Errorf("entry token %q: %w", token, err)
	}
	if err := CheckVersion(version); err != nil {
		return res, err
	}
	res.File = filepath.Join(s.UKIDir(), UKIName(token, version))
	if st, err := os.Lstat(res.File); err != nil {
		return res, fmt.Errorf("the rescue unified kernel image: %w", err)
	} else if !st.Mode().IsRegular() {
		return res, fmt.Errorf("%s: not a regular file", res.File)
	}
	info := read(res.File)
	if len(info.Problems) > 0 {
		return res, fmt.Errorf("%s: %s", res.File, strings.Join(info.Problems, "; "))
	}
	if info.Version != version {
		return res, fmt.Errorf("%s carries kernel %q, not %s", res.File, info.Version, version)
	}
	if err := s.own(token); err != nil {
		return res, err
	}
	others, err := s.ListUKIs(version, read)
	if err != nil {
		return res, err
	}
	for _, o := range others {
		if o.File == res.File || !o.Owned || o.Version != version {
			continue
		}
		if err := os.Remove(o.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, err
		}
		res.Removed = append(res.Removed, o.File)
	}
	return res, nil
}

// removeUKIs deletes the rescue UKIs o selects (as Remove selects type #1
// entries); a rescue UKI is its own image, so Images does not matter.
func (s Store) removeUKIs(o RemoveOptions) ([]string, error) {
	found, err := s.ListUKIs(o.Version, o.UKI)
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
		if err := os.Remove(f.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, f.File)
	}
	return removed, errors.Join(errs...)
}
