// Package rescueuki makes the rescue unified kernel image of a
// distribution's and checks one. It has one job: the rescue UKI's content.
// From the distribution's UKI it keeps the stub and the kernel and sets
// the rescue initrd, a command line without the installed root and with
// the storage kill-switches, and an os-release that names the entry as
// the rescue; it drops what could satisfy the distribution's TPM policy
// (.pcrsig, .pcrpkey) and the other profiles. It reads the result back
// before it is renamed into place, signs it with the administrator's key
// (sbsign) when one is configured, tells whether the firmware has Secure
// Boot on, and says what keeps a UKI from being a working rescue. The PE
// layout itself is package uki's; flags, output and exit codes are the
// CLI's.
package rescueuki

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/uki"
)

// rescueArgs are the arguments a rescue UKI's command line must not keep:
// those that name or mount the installed root, resume from it, or unlock
// and assemble storage (the rescue initrd ignores them; they are dropped
// so that the command line says what the image does).
var rescueArgs = []string{"root=", "rootflags=", "rootfstype=", "ro", "rw", "resume=", "resume_offset=", "mount.usr=",
	"mount.usrflags=", "mount.usrfstype=", "rd.luks.", "rd.lvm.", "rd.md.", "rd.dm.", "luks.", "rd.auto", "rd.auto=", "systemd.mount-extra=",
	"systemd.swap-extra=", "systemd.volatile="}

// Cmdline is the command line of a rescue UKI: the original, less what a
// rescue entry must not inherit (bootentry.SanitizeOptions) and what would
// point at the installed root or its storage, plus dracut's and systemd's
// switches that turn storage activation off.
func Cmdline(orig string) string {
	keep := strings.Fields(bootentry.DropOptions(bootentry.SanitizeOptions(orig), rescueArgs))
	return strings.Join(append(keep, strings.Fields(strip.StorageOffArgs)...), " ")
}

// PrettyName is what systemd-boot calls an os-release: PRETTY_NAME, else
// NAME, else "Linux".
func PrettyName(osrel map[string]string) string {
	if p := osrel["PRETTY_NAME"]; p != "" {
		return p
	}
	if n := osrel["NAME"]; n != "" {
		return n
	}
	return "Linux"
}

// OSRelease marks os-release as the rescue's: PRETTY_NAME (what
// systemd-boot shows, with the version) says "initrd-remix rescue", and
// IMAGE_ID (systemd-boot's sort key for a type #2 entry) is ID-rescue, so
// the rescue sorts after the distribution's entries, as the type #1 rescue
// entries do (bootentry.DefaultSortKey).
func OSRelease(orig string) string {
	m := bootentry.ParseOSRelease([]byte(orig))
	var b strings.Builder
	for _, line := range strings.Split(orig, "\n") {
		k, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if k == "PRETTY_NAME" || k == "IMAGE_ID" || strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "PRETTY_NAME=%s\n", osrelQuote(PrettyName(m)+" (initrd-remix rescue)"))
	fmt.Fprintf(&b, "IMAGE_ID=%s\n", osrelQuote(bootentry.DefaultSortKey(m)))
	return b.String()
}

// osrelQuote quotes a value the way os-release(5) reads it: double quotes,
// with backslash before ", \, $ and `.
func osrelQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if strings.ContainsRune("\"\\$`", r) {
			b.WriteByte('\\')
		}
		if r == '\n' {
			r = ' '
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// Edit is what a rescue UKI changes in the distribution's u: the rescue
// initrd (early microcode included: it is the input's first archive, kept
// byte for byte, so .ucode is folded into .initrd), the command line and
// os-release; gone are .pcrsig and .pcrpkey (the rescue must never satisfy
// a TPM policy signed for the distribution's UKI), the profiles other than
// the base one (their command lines are not the rescue's) and the
// signature.
func Edit(u *uki.File, initrd io.ReaderAt, size int64) (uki.Edit, error) {
	cmd, _, err := u.ReadText(uki.Cmdline)
	if err != nil {
		return uki.Edit{}, err
	}
	osrel, _, err := u.ReadText(uki.OSRel)
	if err != nil {
		return uki.Edit{}, err
	}
	return uki.Edit{
		Set: []uki.Set{
			{Name: uki.OSRel, Content: uki.Bytes([]byte(OSRelease(osrel)))},
			{Name: uki.Cmdline, Content: uki.Bytes([]byte(Cmdline(cmd)))},
			{Name: uki.Initrd, Content: uki.Content{R: initrd, Size: size}},
		},
		Drop:     []string{uki.PCRSig, uki.PCRPKey, uki.Ucode},
		BaseOnly: true,
	}, nil
}

// Write writes the rescue UKI of u to output: u's stub and kernel with the
// rescue initrd ri, signed with s first when s is set (sbsign from root),
// read back with Check before it is renamed into place (private, atomic;
// nothing is left at output on error). A result that does not read back
// is a *remix.VerifyError.
func Write(ctx context.Context, u *uki.File, ri *os.File, output string, s *Signer, root string) (int64, error) {
	st, err := ri.Stat()
	if err != nil {
		return 0, err
	}
	edit, err := Edit(u, ri, st.Size())
	if err != nil {
		return 0, err
	}
	af, err := atomicfile.Create(output, 0o600)
	if err != nil {
		return 0, err
	}
	defer af.Abort()
	bw := bufio.NewWriterSize(af, 1<<20)
	n, err := u.Write(bw, edit)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", output, err)
	}
	if s != nil {
		if n, err = s.Sign(ctx, af.File, root); err != nil {
			return 0, fmt.Errorf("sign %s: %w", output, err)
		}
	}
	if err := Check(af.File, n, ri, edit); err != nil {
		return 0, &remix.VerifyError{Err: fmt.Errorf("%s: %w", output, err)}
	}
	return n, af.Commit()
}

// Check reads a written rescue UKI (f, size bytes) back with the project's
// reader and compares what matters with the edit it was written with: the
// initrd's bytes, the command line, and that nothing dropped (what would
// satisfy the distribution's TPM policy) is there.
func Check(f io.ReaderAt, size int64, initrd io.ReaderAt, edit uki.Edit) error {
	g, err := uki.Parse(f, size)
	if err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	for _, name := range edit.Drop {
		if g.Lookup(name) != nil {
			return fmt.Errorf("reading it back: %s still there", name)
		}
	}
	r, _, err := g.Initrd()
	if err != nil {
		return err
	}
	got, want := sha256.New(), sha256.New()
	if _, err := io.Copy(got, r); err != nil {
		return err
	}
	if _, err := io.Copy(want, io.NewSectionReader(initrd, 0, 1<<62)); err != nil {
		return err
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		return errors.New("reading it back: .initrd differs from the rescue initrd")
	}
	for _, set := range edit.Set {
		if set.Name != uki.Cmdline {
			continue
		}
		want := make([]byte, set.Size)
		if _, err := set.R.ReadAt(want, 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if c, _, _ := g.ReadText(uki.Cmdline); c != string(want) {
			return fmt.Errorf("reading it back: .cmdline is %q", c)
		}
	}
	return nil
}

// Signer signs a rescue UKI for Secure Boot with the administrator's key
// and certificate (PEM files).
type Signer struct{ Key, Cert string }

// Sign runs sbsign (from root's /usr/bin, else PATH) over the unsigned
// image in f, and replaces f's content with the signed one.
func (s *Signer) Sign(ctx context.Context, f *os.File, root string) (int64, error) {
	tool, err := findTool(root, "sbsign")
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp(remix.DefaultSpoolDir(), "initrd-remix-sign-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.efi"), filepath.Join(dir, "out.efi")
	if err := writePrivate(in, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, tool, "--key", s.Key, "--cert", s.Cert, "--output", out, in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(msg))
	}
	sf, err := os.Open(out)
	if err != nil {
		return 0, err
	}
	defer sf.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	return io.Copy(f, sf)
}

func writePrivate(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findTool finds a program in root's /usr/bin or /usr/sbin, else in PATH.
func findTool(root, name string) (string, error) {
	for _, d := range []string{"usr/bin", "usr/sbin", "bin", "sbin"} {
		p := filepath.Join(root, d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in %s nor in PATH (install sbsigntool)", name, root)
	}
	return p, nil
}

// SecureBootVar is the UEFI global variable that says whether Secure Boot
// is on (efivarfs: 4 bytes of attributes, then the value).
const SecureBootVar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// SecureBootOn reports whether root's firmware has Secure Boot enabled.
func SecureBootOn(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, SecureBootVar))
	return err == nil && len(b) >= 5 && b[4] == 1
}

// ExtractInitrd copies u's initrd (what the kernel receives) into a
// private temporary file in dir. It is an uncommitted atomicfile: locked
// while this process lives, removed by Abort, and by the next
// atomicfile.Create in dir should this process be killed.
func ExtractInitrd(u *uki.File, dir string) (*atomicfile.File, error) {
	r, _, err := u.Initrd()
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.Create(filepath.Join(dir, "initrd-remix-uki-initrd.img"), 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Abort()
		return nil, fmt.Errorf("reading the initrd: %w", err)
	}
	return f, nil
}

// WriteLinux writes the kernel u carries (.linux) to p, privately and
// atomically, compared with the section before it is renamed (a
// *remix.VerifyError when it differs).
func WriteLinux(u *uki.File, p string) error {
	s := u.Lookup(uki.Linux)
	af, err := atomicfile.Create(p, 0o600)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := io.Copy(af, u.Open(s)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	got, want := sha256.New(), sha256.New()
	if _, err := io.Copy(got, io.NewSectionReader(af.File, 0, s.Size()+1)); err != nil {
		return err
	}
	if _, err := io.Copy(want, u.Open(s)); err != nil {
		return err
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		return &remix.VerifyError{Err: fmt.Errorf("%s: reading it back: differs from %s", p, uki.Linux)}
	}
	return af.Commit()
}

// IsRescue reports whether u's initrd is an initrd-remix rescue image.
func IsRescue(ctx context.Context, u *uki.File) bool { return checkInitrd(ctx, u) == nil }

// checkInitrd says why u's initrd is not an initrd-remix rescue image:
// none, unreadable, or without the rescue marker.
func checkInitrd(ctx context.Context, u *uki.File) error {
	r, _, err := u.Initrd()
	if err != nil {
		return err
	}
	img, err := remix.Read(ctx, r, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		return fmt.Errorf("%s: %w", uki.Initrd, err)
	}
	defer img.Close()
	if img.Tree.Lookup(strip.Marker) == nil {
		return errors.New(uki.Initrd + " is not an initrd-remix rescue image")
	}
	return nil
}

// Problems says what keeps u from being a working rescue UKI, as
// systemd-boot and systemd-stub would read it: no kernel version, a
// .pcrsig or .pcrpkey left in it, no initrd, or an initrd that is not a
// rescue image.
func Problems(ctx context.Context, u *uki.File) []string {
	problems := []string{}
	if un, _, err := u.ReadText(uki.Uname); err != nil {
		problems = append(problems, err.Error())
	} else if un == "" {
		problems = append(problems, "no .uname (kernel version)")
	}
	for _, name := range []string{uki.PCRSig, uki.PCRPKey} {
		if u.Lookup(name) != nil {
			problems = append(problems, name+" present: it could satisfy the distribution's TPM policy")
		}
	}
	if err := checkInitrd(ctx, u); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}
