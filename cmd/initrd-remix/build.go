package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/rescueuki"
	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/overlay/verify"
	"github.com/initrd-remix/initrd-remix/pipeline"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/uki"
)

const buildAbout = `Build a rescue initrd from the initrd your distribution generated: the same
kernel modules, firmware, udev, console and keymap, but no md assembly, no LVM
activation, no LUKS unlock or passphrase prompt, no multipath, iSCSI, NVMe-oF
or zfs, no resume, no fsck, no root mount and no switch_root, whatever the
kernel command line or the image's baked configuration says. Instead the boot
ends in a rescue shell on the console (after running the --run payload).

The generator is detected (supported: %s);
anything else is refused with the evidence that identified it. The result
must pass its own checks (nothing left that would touch storage, the written
segment decoded and compared) before it is renamed into place; the input is
only read.

--mode append (the default) keeps the input byte for byte and adds one small
segment with the edits: fast, nothing is recompressed. It falls back to
rewrite, and says so, for inputs whose entries the kernel would partly drop
(appending would keep the mess); --mode rewrite writes one new archive of the
whole tree after the early microcode archives.

In the rescue boot: the payload runs with /proc, /sys, /dev and /run mounted,
output on the console, its exit status printed; the kernel argument
initrd_remix.payload=0 skips it. Then a shell with a banner; leaving it starts
a new one, never the normal boot; poweroff and reboot work.

Examples:
  initrd-remix build                              # running kernel, /boot/initrd-remix-rescue-$(uname -r).img
  initrd-remix build --dry-run                    # what would be disabled, changed and added
  initrd-remix build --kver 6.1.0-28-amd64 --run /root/recover.sh
  initrd-remix build --input /boot/initramfs-6.8.9.img --output /tmp/rescue.img --json
  initrd-remix build --root /mnt/sysimage --kver 6.1.0-28-amd64   # another system's /boot and programs
  initrd-remix build --add smartctl --include /etc/rear --module nvme --module fs-xfs
  initrd-remix build --preset none --add busybox   # nothing but what is asked for

Recovery programs: --preset rescue (the default) adds, of what --root has, the
shell and core tools, mount, blkid, lsblk, parted, sfdisk, sgdisk, wipefs,
mkfs/fsck for ext4, xfs, btrfs and vfat, mdadm, lvm, cryptsetup, dmsetup, ip,
ping, ssh, scp, rsync, tar and the compressors, less and vi. Every program
and every ELF file or script that --add, --include or --module bring comes
with its interpreter and all its libraries, resolved inside --root without
running anything; a library that cannot be found is an error naming the
program (--allow-missing: a warning). Paths are resolved against the image's
own symlinks, so a usr-merged image stays usr-merged.

Drivers for replacement hardware: --drivers all (the default) adds, of the
modules --root's lib/modules/KVER has for the image's kernel and the image
lacks, every class a recovery needs, by where the kernel's build puts them:
  storage  drivers/ata, scsi (SAS/RAID HBAs: megaraid_sas, mpt3sas, aacraid,
           smartpqi, hpsa; FC; virtio_scsi, hv_storvsc, vmw_pvscsi),
           message/fusion, nvme/host, block (virtio_blk, xen-blkfront, loop,
           nbd), mmc, ufs, usb/storage (usb-storage, uas), cdrom, md (md
           personalities, device-mapper targets), nvdimm, virtio transports,
           pci/controller (vmd), block/, crypto/ and arch/*/crypto (dm-crypt's
           ciphers, so LUKS opens)
  fs       ext4, xfs, btrfs, vfat/msdos, exfat, ntfs3, iso9660, udf, squashfs,
           nls codepages, efivarfs, fuse, NFS and SMB clients (sunrpc)
  net      drivers/net/ethernet (every wired NIC: e1000e, igb, ixgbe, i40e,
           bnxt, tg3, mlx5, ena, gve, ...), phy, mdio, USB ethernet adapters,
           virtio_net, hv_netvsc, vmxnet3, xen-netfront, bonding, 802.1q, AF_PACKET
  input    USB host controllers (xhci, ehci, ohci, uhci, dwc2/3), HID (usbhid,
           hid-generic, i2c-hid), keyboards, serio (i8042), serial consoles
Never: wireless, infiniband, sound, media, GPU. Each module comes with its
dependencies, soft dependencies and the firmware it names that --root has
(a class's missing firmware is one warning); udev finds them by alias (the
image's module indexes are rewritten). Modules the image has, and those
built into the kernel, are not added. --omit-module PATTERN leaves modules
out, with every module that needs one. --dry-run and --json say what each
class added and how many MiB. Left at the default, a --root without the
image's kernel's modules (another release) adds none, with a warning; an
explicit --drivers is then an error. The build warns when the image passes
200 MiB, where boot loaders (GRUB) start failing to load an initrd.

SSH: --ssh puts OpenSSH's sshd from --root into the image (with sshd-session
and sshd-auth where its version runs them; Dropbear where the root has only
that) with the project's own
sshd_config: public keys only, root by key, no passwords, UsePAM no. The host
key is made once in ROOT/etc/initrd-remix/ssh (--ssh-host-keys) and reused by
every build; build prints its fingerprint and the rescue banner shows it with
the addresses. Authorized keys: --ssh-authorized-keys, else the first of
ROOT/etc/initrd-remix/authorized_keys, ROOT/root/.ssh/authorized_keys. The
network: DHCP on every wired NIC, or --ip in the kernel's ip= syntax;
initrd_remix.ip= on the rescue's kernel command line replaces it at boot.

Configuration: /etc/initrd-remix/initrd-remix.conf, then
/etc/initrd-remix/conf.d/*.conf, hold "key = value # comment" lines whose keys
are the long names of the flags that make sense for every build (add, include,
module, drivers, omit-module, preset, allow-missing, compress, level,
threads, mode, max-size, max-metadata, spool-dir, run, sign-key, sign-cert,
ssh, ssh-authorized-keys, ssh-host-keys, ip; add, include,
module, omit-module accumulate); flags override them. "initrd-remix config
check" shows every setting and where it comes from.
`

// buildFlags are build's own flags on top of outputFlags.
type buildFlags struct {
	input, output, root, kver, run string
	signKey, signCert              string
	format, linuxOutput            string
	dryRun                         bool
	ssh                            bool
	sshKeys, sshHostKeys, ip       string
}

// buildReport is what --json prints.
type buildReport struct {
	Input     string          `json:"input"`
	Output    string          `json:"output"`
	Kver      string          `json:"kver"`
	DryRun    bool            `json:"dry_run"`
	Generator strip.Generator `json:"generator"`
	Evidence  []string        `json:"evidence"`
	Items     []strip.Item    `json:"items"`
	Kept      []strip.Item    `json:"kept"`
	// ModeNote says why the mode differs from the one asked for.
	ModeNote string `json:"mode_note,omitempty"`
	// Overlay lists what was added from --root and why.
	Overlay *overlay.Report `json:"overlay"`
	// Findings are verify's warnings (errors stop the build).
	Findings []verify.Finding `json:"findings"`
	// SSH is the SSH server put into the image (--ssh).
	SSH *sshReport `json:"ssh,omitempty"`
	// Warnings are about the image as a whole (its size).
	Warnings []string `json:"warnings,omitempty"`
	// UKI describes the rescue UKI when the input is a unified kernel image.
	UKI *ukiBuild `json:"uki,omitempty"`
	*remix.WriteResult
}

func runBuild(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "build", "", fmt.Sprintf(buildAbout, strings.Join(strip.Supported(), ", ")))
	var b buildFlags
	fs.StringVar(&b.input, "input", "", "the distribution's initrd (default: the kernel's initrd in ROOT/boot, by each distribution's naming)")
	fs.StringVar(&b.output, "output", "", "where to write the rescue initrd (default: initrd-remix-rescue-KVER.img beside the input)")
	fs.StringVar(&b.root, "root", "/", "the system whose /boot is searched and whose programs, libraries, files and modules are added (resolved inside it, nothing run)")
	fs.StringVar(&b.kver, "kver", "", "kernel version (default: uname -r, or with --input the only kernel in the image)")
	fs.StringVar(&b.run, "run", "", "executable payload to embed and run in the rescue boot before the shell")
	fs.StringVar(&b.signKey, "sign-key", "", "with a unified kernel image: sign the rescue UKI for Secure Boot with this private key (PEM, with --sign-cert; sbsign from --root or PATH)")
	fs.StringVar(&b.signCert, "sign-cert", "", "with a unified kernel image: the certificate of --sign-key (PEM)")
	fs.StringVar(&b.format, "format", "", "with a unified kernel image: uki (the default) writes a rescue UKI, initrd the rescue initrd alone (for a type #1 entry, with --linux-output)")
	fs.StringVar(&b.linuxOutput, "linux-output", "", "with a unified kernel image: also write the kernel it carries (.linux) to this file")
	fs.BoolVar(&b.dryRun, "dry-run", false, "print the plan (generator, every unit, rule, script and file changed) and write nothing")
	fs.BoolVar(&b.ssh, "ssh", false, "put an SSH server into the rescue: OpenSSH's sshd from --root, public-key login as root only, "+
		"the network up by DHCP on every wired NIC (or --ip); see \"Reach the rescue over SSH\" in the README")
	fs.StringVar(&b.sshKeys, "ssh-authorized-keys", "", "with --ssh: the public keys that may log in (default: the first of ROOT/etc/initrd-remix/authorized_keys, ROOT/root/.ssh/authorized_keys)")
	fs.StringVar(&b.sshHostKeys, "ssh-host-keys", "", "with --ssh: directory of the rescue's host key, made once and reused by every build (default: ROOT/etc/initrd-remix/ssh)")
	fs.StringVar(&b.ip, "ip", "", "with --ssh: the network in the kernel's ip= syntax, e.g. 192.0.2.10::192.0.2.1:255.255.255.0::eth0:off (default: dhcp on every wired NIC; off: none)")
	ovf := addOverlayFlags(fs)
	var o outputFlags
	o.register(fs, "")
	// The result is always verified before it is renamed into place.
	fs.MarkHidden("no-verify")
	fs.Lookup("force").Usage = "replace an existing OUTPUT that is not an initrd-remix rescue image (the input is never replaced)"
	fs.Lookup("mode").Usage = "append (default where safe): input bytes + one segment of edits; rewrite: early archives + one new archive of the merged tree"
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("build takes no arguments, got %q (use --input and --output)", fs.Args())
	}
	// The configuration file fills in what the command line left unset.
	ovOpts, err := ovf.options()
	if err != nil {
		return err
	}
	c, err := codec.Parse(o.compress)
	if err != nil {
		return usagef("--compress: %v", err)
	}
	var mode remix.WriteMode
	if o.mode != "" {
		if mode, err = remix.ParseWriteMode(o.mode); err != nil {
			return usagef("--mode: %v", err)
		}
	}
	scan, err := o.limits.options()
	if err != nil {
		return err
	}
	var payload remix.Content
	if b.run != "" {
		if payload, err = payloadContent(b.run); err != nil {
			return err
		}
	}
	if b.input == "" {
		if b.kver == "" {
			if b.kver, err = runningKernel(); err != nil {
				return err
			}
		}
		if b.input, err = findInitrd(b.root, b.kver); err != nil {
			return err
		}
	}
	// A unified kernel image: its initrd is remixed and the output is a
	// rescue UKI (uki.go); the pipeline works on private copies.
	ukiIn, err := openUKI(b.input)
	if err != nil {
		return err
	}
	var ukiOutput string
	var sign *rescueuki.Signer
	beside := b.input // the default output goes beside it
	if ukiIn != nil {
		defer ukiIn.Close()
		beside = ukiIn.path
		var cleanup func()
		if ukiOutput, cleanup, sign, err = b.prepareUKI(fs, ukiIn, &o); err != nil {
			return err
		}
		defer cleanup()
	} else if err := b.checkNotUKI(fs); err != nil {
		return err
	}
	// Without --kver the default output is named after the image's only
	// kernel, found once it is open.
	if b.output == "" && b.kver != "" {
		if err := bootentry.CheckVersion(b.kver); err != nil {
			return usagef("--kver: %v", err)
		}
		b.output = defaultOutput(beside, b.kver)
	}
	if b.output != "" {
		if err := checkBuildOutput(beside, b.output, o.force); err != nil {
			return err
		}
	}
	var p *progress
	defer func() {
		if p != nil {
			p.done()
		}
	}()
	ovOpts.Root = b.root
	sshSetup, err := prepareSSH(e, fs, &b, o.quiet || o.json)
	if err != nil {
		return err
	}
	res, err := pipeline.Build(ctx, pipeline.Options{
		Input: b.input, Output: b.output, Kver: b.kver, DryRun: b.dryRun,
		NameOutput: func(kver string) (string, error) {
			out := defaultOutput(beside, kver)
			return out, checkBuildOutput(beside, out, o.force)
		},
		CheckKver: bootentry.CheckVersion,
		Mode:      mode, Compression: c, Level: o.level, Threads: o.threads,
		Scan: scan, SpoolDir: o.spoolDir, Payload: payload, Overlay: ovOpts, SSH: sshSetup,
		Progress:    buildProgress{e: e, quiet: o.quiet || o.json, p: &p},
		MemoryLimit: e.memoryLimit,
	})
	if err != nil && ukiIn != nil {
		err = fmt.Errorf("%s: the initrd in %s: %w", ukiIn.path, uki.Initrd, err)
	}
	var ke *pipeline.KernelError
	var ve *pipeline.VerifyError
	switch {
	case errors.As(err, &ke) && ke.Usage():
		return usageError{ke.Message(termSafe)}
	case errors.As(err, &ke):
		return errors.New(ke.Message(termSafe))
	case errors.As(err, &ve):
		return verifyError{ve.Err}
	case err != nil:
		return err
	}
	rep := &buildReport{Input: res.Input, Output: res.Output, Kver: res.Kver, DryRun: b.dryRun, Generator: res.Plan.Generator,
		Evidence: res.Plan.Evidence, Items: res.Plan.Items, Kept: res.Plan.Kept, ModeNote: res.ModeNote,
		Overlay: res.Overlay, Findings: res.Findings, Warnings: res.Warnings, WriteResult: res.Write, SSH: newSSHReport(sshSetup, res.DHCP)}
	if ukiIn != nil {
		if err := b.finishUKI(ctx, ukiIn, ukiOutput, sign, o.force, rep); err != nil {
			return err
		}
	}
	return printBuild(e, &o, rep, res.Mode)
}

// buildProgress shows Build's stages on the terminal: the progress line
// starts when the input is read.
type buildProgress struct {
	e     *env
	quiet bool
	p     **progress
}

func (b buildProgress) Reading(path string, size int64) {
	*b.p = newProgress(b.e, b.quiet, "reading "+path, size)
}
func (b buildProgress) Read(n int64)     { (*b.p).update(n) }
func (b buildProgress) Step(what string) { (*b.p).step(what) }

func printBuild(e *env, o *outputFlags, rep *buildReport, mode remix.WriteMode) error {
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	w := e.stdout
	if rep.Overlay != nil && !o.quiet {
		for _, warning := range rep.Overlay.Warnings {
			fmt.Fprintln(e.stderr, "warning:", warning)
		}
	}
	if !rep.DryRun {
		if !o.quiet {
			if rep.ModeNote != "" {
				fmt.Fprintln(e.stderr, "note:", rep.ModeNote)
			}
			printDrivers(e.stderr, rep)
			printSSHNetwork(e.stderr, rep)
			fmt.Fprintf(e.stderr, "wrote %s: %s rescue image of %s (%s, %s mode, %d edits)\n", rep.Output, rep.Generator, rep.Input,
				humanBytes(rep.Bytes), rep.Mode, len(rep.Items))
		}
		// A size a boot loader may not load is said even with --quiet:
		// the kernel hooks run quiet, and that image would not boot.
		for _, w := range rep.Warnings {
			fmt.Fprintln(e.stderr, "warning:", w)
		}
		return nil
	}
	fmt.Fprintf(w, "input:     %s\noutput:    %s (not written: --dry-run)\nkernel:    %s\n", rep.Input, rep.Output, rep.Kver)
	fmt.Fprintf(w, "generator: %s (%s)\nmode:      %s", rep.Generator, termSafe(strings.Join(rep.Evidence, "; ")), mode)
	if rep.ModeNote != "" {
		fmt.Fprintf(w, " (%s)", rep.ModeNote)
	}
	fmt.Fprintf(w, "\n\n%d edits:\n", len(rep.Items))
	for _, it := range rep.Items {
		fmt.Fprintf(w, "  %-17s %s\n  %17s   %s\n", it.Kind, termSafe(it.Path), "", termSafe(it.Why))
	}
	fmt.Fprintf(w, "\n%d kept by the allow-list (everything else that would run is disabled above):\n", len(rep.Kept))
	for _, it := range rep.Kept {
		fmt.Fprintf(w, "  %-17s %s\n  %17s   %s\n", it.Kind, termSafe(it.Path), "", termSafe(it.Why))
	}
	if rep.Overlay != nil && len(rep.Overlay.Drivers) > 0 {
		fmt.Fprintln(w)
		printDrivers(w, rep)
	}
	if rep.SSH != nil {
		fmt.Fprintln(w)
		printSSHNetwork(w, rep)
	}
	return nil
}

// printDrivers says what each driver class added, one line per class.
func printDrivers(w io.Writer, rep *buildReport) {
	if rep.Overlay == nil || len(rep.Overlay.Drivers) == 0 {
		return
	}
	fmt.Fprintf(w, "drivers of kernel %s (%.1f MiB added before compression):\n", termSafe(rep.Kver), mib(rep.Overlay.DriverBytes()))
	for _, d := range rep.Overlay.Drivers {
		fmt.Fprintf(w, "  %-8s %4d modules added, %.1f MiB; %d already in the image, %d built in, %d omitted; firmware: %d added, %d missing\n",
			d.Class, len(d.Added), mib(d.Bytes), len(d.Present), len(d.Builtin), len(d.Omitted), len(d.Firmware), len(d.MissingFirmware))
		for _, om := range d.Omitted {
			fmt.Fprintf(w, "           omitted %s\n", termSafe(om))
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// payloadContent checks the --run script: an executable regular file.
func payloadContent(p string) (remix.Content, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("--run: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("--run %s: not a regular file", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("--run %s: not executable (chmod +x it; it runs as a program in the rescue boot)", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("--run: %w", err)
	}
	defer f.Close()
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("--run %s: too short to be a script or program", p)
	}
	c, err := remix.NewFileContent(p)
	if err != nil {
		return nil, fmt.Errorf("--run: %w", err)
	}
	return c, nil
}

// runningKernel is uname -r.
func runningKernel() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String(), nil
}

// initrdNames are each distribution's names for a kernel's initrd in /boot.
var initrdNames = []string{
	"initrd.img-%s",    // Debian, Ubuntu (initramfs-tools or dracut)
	"initramfs-%s.img", // Fedora, RHEL, Arch-style dracut
	"initrd-%s",        // SUSE
	"initrd-%s.img",    // older Red Hat
	"initramfs-%s",     // Gentoo genkernel
}

// findInitrd returns the initrd of kver in root's /boot.
func findInitrd(root, kver string) (string, error) {
	var tried []string
	for _, n := range initrdNames {
		p := filepath.Join(root, "boot", fmt.Sprintf(n, kver))
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("no initrd for kernel %s (tried %s); name one with --input", kver, strings.Join(tried, ", "))
}

// defaultOutput names the rescue image beside the input. The name starts
// with neither "initrd.img-", "initramfs-" nor "initrd-": update-initramfs,
// dracut and their kernel hooks regenerate and delete only their own names,
// GRUB's 10_linux pairs a kernel with initrd.img-VER / initrd-VER(.img) /
// initramfs-VER.img exactly, and kernel-install copies only the "initrd" it
// is given, so none of them takes or removes this file as its own.
func defaultOutput(input, kver string) string {
	return filepath.Join(filepath.Dir(input), "initrd-remix-rescue-"+kver+".img")
}

// checkBuildOutput refuses to write over the input (never, --force or not:
// a rescue image in place of the distribution's initrd would stop the
// machine from booting normally), and over an existing file that is not a
// rescue image unless --force.
func checkBuildOutput(input, output string, force bool) error {
	if err := checkOutputPath(input, output, false); err != nil {
		return usagef("output %s is the input file; build never replaces the distribution's initrd", output)
	}
	// Before anything opens it: a FIFO there would block the open forever.
	if err := atomicfile.CheckTarget(output); err != nil {
		return err
	}
	if _, err := os.Lstat(output); err == nil && !force && !isRescueImage(output) && !isRescueUKI(output) {
		return usagef("output %s exists and is not an initrd-remix rescue image; pass --force to replace it", output)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func isRescueImage(p string) bool {
	img, err := remix.Open(context.Background(), p, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		return false
	}
	defer img.Close()
	return img.Tree.Lookup(strip.Marker) != nil
}
