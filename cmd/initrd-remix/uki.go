package main

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
	"text/tabwriter"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/uki"
	"github.com/spf13/pflag"
)

// ukiReport is the "uki" object of inspect --json for a unified kernel
// image: its PE sections, and the texts systemd-stub passes on. The
// segments' offsets are then offsets in the initrd the kernel receives
// (.ucode, then .initrd).
type ukiReport struct {
	Sections  []uki.Section `json:"sections"`
	Profiles  int           `json:"profiles"`
	Signed    bool          `json:"signed"`
	Cmdline   string        `json:"cmdline"`
	Uname     string        `json:"uname"`
	OSRelease string        `json:"os_release_pretty_name"`
}

// ukiInput is an input file that is a unified kernel image.
type ukiInput struct {
	path string
	f    *os.File
	u    *uki.File
}

// openUKI opens path and, when it is a PE image, parses it as a UKI; (nil,
// nil) for anything else (an initrd). A PE that is not a usable UKI is an
// error naming the file.
func openUKI(path string) (*ukiInput, error) {
	f, st, err := remix.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 2)
	if n, _ := f.ReadAt(head, 0); n < 2 || !uki.IsPE(head) {
		f.Close()
		return nil, nil
	}
	u, err := uki.Parse(f, st.Size())
	if errors.Is(err, uki.ErrNotPE) {
		// MZ without a PE header: not an EFI program at all; the initrd
		// reader says what it is not.
		f.Close()
		return nil, nil
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: unified kernel image: %w", path, err)
	}
	return &ukiInput{path: path, f: f, u: u}, nil
}

func (in *ukiInput) Close() error { return in.f.Close() }

func (in *ukiInput) report() (*ukiReport, error) {
	r := &ukiReport{Sections: in.u.Sections, Profiles: in.u.Profiles(), Signed: in.u.Signed()}
	var err error
	if r.Cmdline, _, err = in.u.ReadText(uki.Cmdline); err != nil {
		return nil, fmt.Errorf("%s: %w", in.path, err)
	}
	if r.Uname, _, err = in.u.ReadText(uki.Uname); err != nil {
		return nil, fmt.Errorf("%s: %w", in.path, err)
	}
	osrel, _, err := in.u.ReadText(uki.OSRel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.path, err)
	}
	r.OSRelease = prettyName(bootentry.ParseOSRelease([]byte(osrel)))
	return r, nil
}

func prettyName(osrel map[string]string) string {
	if p := osrel["PRETTY_NAME"]; p != "" {
		return p
	}
	if n := osrel["NAME"]; n != "" {
		return n
	}
	return "Linux"
}

// initrd returns the initrd the kernel would receive, or an error naming
// the file when the UKI has none.
func (in *ukiInput) initrd() (io.Reader, int64, error) {
	r, n, err := in.u.Initrd()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", in.path, err)
	}
	return r, n, nil
}

func printUKI(w io.Writer, r *ukiReport) {
	fmt.Fprintf(w, "unified kernel image: %s, kernel %s, %d extra profiles", termSafe(r.OSRelease), termSafe(r.Uname), r.Profiles)
	if r.Signed {
		fmt.Fprint(w, ", signed (certificate table)")
	}
	fmt.Fprintf(w, "\ncmdline: %s\n\n", termSafe(r.Cmdline))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  section\taddress\tsize\tfile offset\tfile size\tprofile")
	for _, s := range r.Sections {
		fmt.Fprintf(tw, "  %s\t%#x\t%d\t%d\t%d\t%d\n", termSafe(s.Name), s.VirtualAddress, s.VirtualSize, s.Offset, s.RawSize, s.Profile)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nthe initrd the kernel receives (.ucode, then .initrd):")
}

// extract copies the UKI's initrd into a private temporary file in dir
// (the pipeline's input). It is an uncommitted atomicfile: locked while
// this process lives, removed by Abort, and by the next build's
// atomicfile.Create in dir should this process be killed.
func (in *ukiInput) extract(dir string) (*atomicfile.File, error) {
	r, _, err := in.initrd()
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.Create(filepath.Join(dir, "initrd-remix-uki-initrd.img"), 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Abort()
		return nil, fmt.Errorf("%s: reading the initrd: %w", in.path, err)
	}
	return f, nil
}

// rescueArgs are the arguments a rescue UKI's command line must not keep:
// those that name or mount the installed root, resume from it, or unlock
// and assemble storage (the rescue initrd ignores them; they are dropped
// so that the command line says what the image does).
var rescueArgs = []string{"root=", "rootflags=", "rootfstype=", "ro", "rw", "resume=", "resume_offset=", "mount.usr=",
	"mount.usrflags=", "mount.usrfstype=", "rd.luks.", "rd.lvm.", "rd.md.", "rd.dm.", "luks.", "rd.auto", "rd.auto=", "systemd.mount-extra=",
	"systemd.swap-extra=", "systemd.volatile="}

// rescueCmdline is the command line of a rescue UKI: the original, less
// what a rescue entry must not inherit (bootentry.SanitizeOptions) and
// what would point at the installed root or its storage, plus dracut's and
// systemd's switches that turn storage activation off.
func rescueCmdline(orig string) string {
	var keep []string
	for _, a := range strings.Fields(bootentry.SanitizeOptions(orig)) {
		drop := false
		for _, d := range rescueArgs {
			if a == d || (strings.HasSuffix(d, "=") || strings.HasSuffix(d, ".")) && strings.HasPrefix(a, d) {
				drop = true
				break
			}
		}
		if !drop {
			keep = append(keep, a)
		}
	}
	return strings.Join(append(keep, strings.Fields(strip.StorageOffArgs)...), " ")
}

// rescueOSRelease marks os-release as the rescue's: PRETTY_NAME (what
// systemd-boot shows, with the version) says "initrd-remix rescue", and
// IMAGE_ID (systemd-boot's sort key for a type #2 entry) is ID-rescue, so
// the rescue sorts after the distribution's entries, as the type #1 rescue
// entries do (bootentry.DefaultSortKey).
func rescueOSRelease(orig string) string {
	m := bootentry.ParseOSRelease([]byte(orig))
	var b strings.Builder
	for _, line := range strings.Split(orig, "\n") {
		k, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if k == "PRETTY_NAME" || k == "IMAGE_ID" || strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "PRETTY_NAME=%s\n", osrelQuote(prettyName(m)+" (initrd-remix rescue)"))
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

// rescueEdit is what a rescue UKI changes in the distribution's: the
// rescue initrd (early microcode included: it is the input's first
// archive, kept byte for byte, so .ucode is folded into .initrd), the
// command line and os-release; gone are .pcrsig and .pcrpkey (the rescue
// must never satisfy a TPM policy signed for the distribution's UKI), the
// profiles other than the base one (their command lines are not the
// rescue's) and the signature.
func (in *ukiInput) rescueEdit(initrd *os.File, size int64) (uki.Edit, error) {
	cmd, _, err := in.u.ReadText(uki.Cmdline)
	if err != nil {
		return uki.Edit{}, fmt.Errorf("%s: %w", in.path, err)
	}
	osrel, _, err := in.u.ReadText(uki.OSRel)
	if err != nil {
		return uki.Edit{}, fmt.Errorf("%s: %w", in.path, err)
	}
	return uki.Edit{
		Set: []uki.Set{
			{Name: uki.OSRel, Content: uki.Bytes([]byte(rescueOSRelease(osrel)))},
			{Name: uki.Cmdline, Content: uki.Bytes([]byte(rescueCmdline(cmd)))},
			{Name: uki.Initrd, Content: uki.Content{R: initrd, Size: size}},
		},
		Drop:     []string{uki.PCRSig, uki.PCRPKey, uki.Ucode},
		BaseOnly: true,
	}, nil
}

// signer signs a rescue UKI for Secure Boot with the administrator's key.
type signer struct{ key, cert string }

// writeRescue writes the rescue UKI to output: the input's stub and kernel
// with the rescue initrd ri, read back with uki.Parse and
// compared (the initrd's bytes, the command line, no .pcrsig) before it is
// renamed into place; signed with sbsign first when s is set.
func (in *ukiInput) writeRescue(ctx context.Context, ri *os.File, output string, s *signer, root string) (int64, error) {
	st, err := ri.Stat()
	if err != nil {
		return 0, err
	}
	edit, err := in.rescueEdit(ri, st.Size())
	if err != nil {
		return 0, err
	}
	af, err := atomicfile.Create(output, 0o600)
	if err != nil {
		return 0, err
	}
	defer af.Abort()
	bw := bufio.NewWriterSize(af, 1<<20)
	n, err := in.u.Write(bw, edit)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", output, err)
	}
	if s != nil {
		if n, err = s.sign(ctx, af.File, root); err != nil {
			return 0, fmt.Errorf("sign %s: %w", output, err)
		}
	}
	if err := checkRescueUKI(af.File, n, ri, edit); err != nil {
		return 0, &remix.VerifyError{Err: fmt.Errorf("%s: %w", output, err)}
	}
	return n, af.Commit()
}

// checkRescueUKI reads the written UKI back with the project's reader and
// compares what matters: the initrd's bytes, the command line, and that
// nothing would satisfy the distribution's TPM policy.
func checkRescueUKI(f *os.File, size int64, initrd *os.File, edit uki.Edit) error {
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
		set.R.ReadAt(want, 0)
		if c, _, _ := g.ReadText(uki.Cmdline); c != string(want) {
			return fmt.Errorf("reading it back: .cmdline is %q", c)
		}
	}
	return nil
}

// sign runs sbsign (from root's /usr/bin, else PATH) over the unsigned
// image in f, and replaces f's content with the signed one.
func (s *signer) sign(ctx context.Context, f *os.File, root string) (int64, error) {
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
	cmd := exec.CommandContext(ctx, tool, "--key", s.key, "--cert", s.cert, "--output", out, in)
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

// secureBootVar is the UEFI global variable that says whether Secure Boot
// is on (efivarfs: 4 bytes of attributes, then the value).
const secureBootVar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// secureBootOn reports whether root's firmware has Secure Boot enabled.
func secureBootOn(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, secureBootVar))
	return err == nil && len(b) >= 5 && b[4] == 1
}

// defaultUKIOutput names the rescue UKI beside the input.
func defaultUKIOutput(input, kver string) string {
	return filepath.Join(filepath.Dir(input), bootentry.ImagePrefix+"-"+kver+".efi")
}

// isRescueUKI reports whether p is a UKI whose initrd is a rescue image.
func isRescueUKI(p string) bool {
	in, err := openUKI(p)
	if err != nil || in == nil {
		return false
	}
	defer in.Close()
	r, _, err := in.initrd()
	if err != nil {
		return false
	}
	img, err := remix.Read(context.Background(), r, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		return false
	}
	defer img.Close()
	return img.Tree.Lookup(strip.Marker) != nil
}

// readInitrd decodes the UKI's initrd in place (no copy), as inspect does.
func (in *ukiInput) readInitrd(ctx context.Context, opt remix.OpenOptions) (*remix.Image, error) {
	r, _, err := in.initrd()
	if err != nil {
		return nil, err
	}
	img, err := remix.Read(ctx, r, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: the initrd in %s: %w", in.path, uki.Initrd, err)
	}
	return img, nil
}

// ukiBuild is the "uki" object of build --json: what a build from a UKI
// wrote.
type ukiBuild struct {
	Format  string `json:"format"` // uki or initrd
	Output  string `json:"output,omitempty"`
	Linux   string `json:"linux_output,omitempty"`
	Bytes   int64  `json:"bytes"`
	Cmdline string `json:"cmdline"`
	Signed  bool   `json:"signed"`
	// Initrd is the size of the rescue initrd in its .initrd section.
	Initrd int64 `json:"initrd_bytes"`
}

// signer returns the Secure Boot signer of --sign-key and --sign-cert, or
// nil when neither is set.
func (b *buildFlags) signer() (*signer, error) {
	if b.signKey == "" && b.signCert == "" {
		return nil, nil
	}
	if b.signKey == "" || b.signCert == "" {
		return nil, usagef("--sign-key and --sign-cert go together (the private key and its certificate)")
	}
	for _, p := range []string{b.signKey, b.signCert} {
		if st, err := os.Stat(p); err != nil {
			return nil, err
		} else if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
	}
	return &signer{key: b.signKey, cert: b.signCert}, nil
}

// spoolDir is where build keeps its private copies of a UKI's initrd.
func spoolDir(flag string) string {
	if flag != "" {
		return flag
	}
	return remix.DefaultSpoolDir()
}

// prepareUKI readies a build from a UKI: the signer, the kernel version
// from .uname, the initrd extracted into a private temporary file (the
// pipeline's input), and with --format uki the rescue initrd's place beside
// it (the pipeline's output) and the rescue UKI's path. cleanup removes
// the temporary files.
func (b *buildFlags) prepareUKI(fs *pflag.FlagSet, in *ukiInput, o *outputFlags) (ukiOutput string, cleanup func(), s *signer, err error) {
	fail := func(err error) (string, func(), *signer, error) { return "", nil, nil, err }
	switch b.format {
	case "", "uki":
		b.format = "uki"
		if s, err = b.signer(); err != nil {
			return fail(err)
		}
	case "initrd":
		if fs.Changed("sign-key") || fs.Changed("sign-cert") {
			return fail(usagef("--sign-key and --sign-cert sign a rescue UKI; --format initrd writes an initrd"))
		}
	default:
		return fail(usagef("--format %q: uki or initrd", b.format))
	}
	if b.kver == "" {
		if un, _, _ := in.u.ReadText(uki.Uname); bootentry.CheckVersion(un) == nil {
			b.kver = un
		}
	}
	if b.linuxOutput != "" {
		if err := checkLinuxOutput(in.path, b.linuxOutput, o.force); err != nil {
			return fail(err)
		}
	}
	if b.format == "uki" {
		if ukiOutput = b.output; ukiOutput == "" && b.kver != "" {
			ukiOutput = defaultUKIOutput(in.path, b.kver)
		}
		if ukiOutput != "" {
			if err := checkBuildOutput(in.path, ukiOutput, o.force); err != nil {
				return fail(err)
			}
		}
	}
	ex, err := in.extract(spoolDir(o.spoolDir))
	if err != nil {
		return fail(err)
	}
	b.input = ex.Name()
	cleanup = ex.Abort
	if b.format == "uki" {
		// Named like an atomicfile temporary file (of another target) and
		// unlinked as soon as it is opened after the pipeline: left by a
		// killed build, the next build's atomicfile.Create removes it.
		b.output = filepath.Join(filepath.Dir(ex.Name()), ".initrd-remix-uki-rescue.img.initrd-remix-"+ex.Name()[strings.LastIndex(ex.Name(), "-")+1:])
		cleanup = func() { ex.Abort(); os.Remove(b.output) }
	}
	return ukiOutput, cleanup, s, nil
}

// checkNotUKI refuses the UKI-only flags given on the command line for an
// initrd input (set in the configuration, they are for the UKIs among the
// builds).
func (b *buildFlags) checkNotUKI(fs *pflag.FlagSet) error {
	for _, f := range []string{"sign-key", "sign-cert", "format", "linux-output"} {
		if fs.Changed(f) && !(f == "format" && b.format == "initrd") {
			return usagef("--%s is for a unified kernel image; %s is not one", f, b.input)
		}
	}
	return nil
}

// checkLinuxOutput: never the input, nothing but a regular file, and
// replaced without --force only when its name is a rescue file's.
func checkLinuxOutput(input, output string, force bool) error {
	if err := checkOutputPath(input, output, false); err != nil {
		return usagef("--linux-output %s is the input file", output)
	}
	if err := atomicfile.CheckTarget(output); err != nil {
		return err
	}
	if _, err := os.Lstat(output); err == nil && !force && !strings.HasPrefix(filepath.Base(output), bootentry.ImagePrefix) {
		return usagef("--linux-output %s exists and is not named %s*; pass --force to replace it", output, bootentry.ImagePrefix)
	}
	return nil
}

// finishUKI completes a build from a UKI: with --format uki it writes the
// rescue UKI from the rescue initrd the pipeline wrote (rep.Output, in the
// private directory); with --linux-output it writes the kernel. rep is
// made to describe what was written.
func (b *buildFlags) finishUKI(ctx context.Context, in *ukiInput, output string, s *signer, force bool, rep *buildReport) error {
	cmd, _, _ := in.u.ReadText(uki.Cmdline)
	rep.Input = in.path
	rep.UKI = &ukiBuild{Format: b.format, Cmdline: rescueCmdline(cmd), Signed: s != nil, Linux: b.linuxOutput}
	if b.format == "uki" {
		if output == "" {
			output = defaultUKIOutput(in.path, rep.Kver)
			if err := checkBuildOutput(in.path, output, force); err != nil {
				return err
			}
		}
		rep.UKI.Output = output
		if s == nil && secureBootOn(b.root) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("Secure Boot is enabled on %s and no signing key is configured: the firmware will refuse to start the rescue UKI %s "+
				"(its signature, if the input had one, cannot cover the new content). Configure the key and certificate of a db (or MOK) entry "+
				"the firmware trusts, with --sign-key/--sign-cert or sign-key/sign-cert in /etc/initrd-remix/initrd-remix.conf, and build again", b.root, output))
		}
	}
	if rep.DryRun {
		if output != "" {
			rep.Output = output
		}
		return nil
	}
	if b.linuxOutput != "" {
		if err := in.writeLinux(b.linuxOutput); err != nil {
			return err
		}
	}
	if b.format != "uki" {
		return nil
	}
	if st, err := os.Stat(rep.Output); err == nil {
		rep.UKI.Initrd = st.Size()
	}
	ri, err := os.Open(rep.Output)
	if err != nil {
		return err
	}
	defer ri.Close()
	os.Remove(rep.Output)
	n, err := in.writeRescue(ctx, ri, output, s, b.root)
	if err != nil {
		var ve *remix.VerifyError
		if errors.As(err, &ve) {
			return verifyError{ve.Err}
		}
		return err
	}
	rep.Output, rep.UKI.Bytes = output, n
	if rep.WriteResult != nil {
		rep.Bytes = n
	}
	return nil
}

// writeLinux writes the kernel the UKI carries (.linux) to p, privately
// and atomically, compared with the section before it is renamed.
func (in *ukiInput) writeLinux(p string) error {
	s := in.u.Lookup(uki.Linux)
	af, err := atomicfile.Create(p, 0o600)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := io.Copy(af, in.u.Open(s)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	got, want := sha256.New(), sha256.New()
	io.Copy(got, io.NewSectionReader(af.File, 0, s.Size()+1))
	io.Copy(want, in.u.Open(s))
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		return verifyError{fmt.Errorf("%s: reading it back: differs from %s", p, uki.Linux)}
	}
	return af.Commit()
}

// UKISuffix ends the file name of every rescue UKI the kernel-install
// plugin writes to $BOOT/EFI/Linux: <token>-<kver>_initrd-remix-rescue.efi
// sorts after the distribution's <token>-<kver>.efi and <token>-<kver>+N.efi.
const UKISuffix = "_initrd-remix-rescue.efi"

// listUKIEntries lists the rescue UKIs (Boot Loader Specification type #2
// entries) in $BOOT/EFI/Linux, with what would keep each from being a
// working rescue: not a UKI, no initrd, an initrd that is not a rescue
// image, or a .pcrsig/.pcrpkey left in it.
func listUKIEntries(s bootentry.Store, kver string) ([]entryJSON, error) {
	dir := filepath.Join(s.Root, s.BootRoot, "EFI/Linux")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	owned, err := s.OwnedTokens()
	if err != nil {
		return nil, err
	}
	var out []entryJSON
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, UKISuffix) || !de.Type().IsRegular() {
			continue
		}
		j := entryJSON{File: filepath.Join(dir, name), Initrd: []string{}, Problems: []string{}, Type: 2}
		j.Problems = ukiProblems(j.File, &j)
		if kver != "" && j.Version != kver && !strings.HasSuffix(name, "-"+kver+UKISuffix) {
			continue
		}
		if tok, _, ok := strings.Cut(strings.TrimSuffix(name, UKISuffix), "-"+j.Version); ok && j.Version != "" {
			j.Token = tok
		}
		j.Owned = j.Token != "" && owned[j.Token]
		out = append(out, j)
	}
	return out, nil
}

// ukiProblems reads a rescue UKI as systemd-boot and systemd-stub would and
// returns what is wrong with it; it fills in the entry's title, version
// and command line.
func ukiProblems(p string, j *entryJSON) []string {
	in, err := openUKI(p)
	if err == nil && in == nil {
		err = uki.ErrNotPE
	}
	if err != nil {
		return []string{err.Error()}
	}
	defer in.Close()
	rep, err := in.report()
	if err != nil {
		return []string{err.Error()}
	}
	j.Title, j.Version, j.Options, j.Linux = rep.OSRelease, rep.Uname, rep.Cmdline, p
	problems := []string{}
	if j.Version == "" {
		problems = append(problems, "no .uname (kernel version)")
	}
	for _, name := range []string{uki.PCRSig, uki.PCRPKey} {
		if in.u.Lookup(name) != nil {
			problems = append(problems, name+" present: it could satisfy the distribution's TPM policy")
		}
	}
	r, _, err := in.initrd()
	if err != nil {
		return append(problems, err.Error())
	}
	img, err := remix.Read(context.Background(), r, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		return append(problems, fmt.Sprintf("%s: %v", uki.Initrd, err))
	}
	defer img.Close()
	if img.Tree.Lookup(strip.Marker) == nil {
		problems = append(problems, uki.Initrd+" is not an initrd-remix rescue image")
	}
	return problems
}
