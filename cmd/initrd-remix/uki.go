package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/rescueuki"
	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/remix"
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
	r.OSRelease = rescueuki.PrettyName(bootentry.ParseOSRelease([]byte(osrel)))
	return r, nil
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
// (the pipeline's input): rescueuki.ExtractInitrd.
func (in *ukiInput) extract(dir string) (*atomicfile.File, error) {
	f, err := rescueuki.ExtractInitrd(in.u, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.path, err)
	}
	return f, nil
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
	return rescueuki.IsRescue(context.Background(), in.u)
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
func (b *buildFlags) signer() (*rescueuki.Signer, error) {
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
	return &rescueuki.Signer{Key: b.signKey, Cert: b.signCert}, nil
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
func (b *buildFlags) prepareUKI(fs *pflag.FlagSet, in *ukiInput, o *outputFlags) (ukiOutput string, cleanup func(), s *rescueuki.Signer, err error) {
	fail := func(err error) (string, func(), *rescueuki.Signer, error) { return "", nil, nil, err }
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
func (b *buildFlags) finishUKI(ctx context.Context, in *ukiInput, output string, s *rescueuki.Signer, force bool, rep *buildReport) error {
	cmd, _, _ := in.u.ReadText(uki.Cmdline)
	rep.Input = in.path
	rep.UKI = &ukiBuild{Format: b.format, Cmdline: rescueuki.Cmdline(cmd), Signed: s != nil, Linux: b.linuxOutput}
	if b.format == "uki" {
		if output == "" {
			output = defaultUKIOutput(in.path, rep.Kver)
			if err := checkBuildOutput(in.path, output, force); err != nil {
				return err
			}
		}
		rep.UKI.Output = output
		if s == nil && rescueuki.SecureBootOn(b.root) {
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
		if err := rescueuki.WriteLinux(in.u, b.linuxOutput); err != nil {
			return cliVerify(err)
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
	n, err := rescueuki.Write(ctx, in.u, ri, output, s, b.root)
	if err != nil {
		return cliVerify(fmt.Errorf("%s: %w", in.path, err))
	}
	rep.Output, rep.UKI.Bytes = output, n
	if rep.WriteResult != nil {
		rep.Bytes = n
	}
	return nil
}

// cliVerify turns a result that did not read back (*remix.VerifyError)
// into the CLI's verification failure, with its exit code.
func cliVerify(err error) error {
	var ve *remix.VerifyError
	if errors.As(err, &ve) {
		return verifyError{ve.Err}
	}
	return err
}

// readRescueUKI reads a rescue UKI in $BOOT/EFI/Linux for the entry
// store: its title, version and command line, and what keeps it from
// being a working rescue (rescueuki.Problems).
func readRescueUKI(p string) bootentry.UKIInfo {
	in, err := openUKI(p)
	if err == nil && in == nil {
		err = fmt.Errorf("%s: %w", p, uki.ErrNotPE)
	}
	if err != nil {
		return bootentry.UKIInfo{Problems: []string{err.Error()}}
	}
	defer in.Close()
	rep, err := in.report()
	if err != nil {
		return bootentry.UKIInfo{Problems: []string{err.Error()}}
	}
	return bootentry.UKIInfo{Title: rep.OSRelease, Version: rep.Uname, Options: rep.Cmdline, Problems: rescueuki.Problems(context.Background(), in.u)}
}
