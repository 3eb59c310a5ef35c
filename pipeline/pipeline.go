// Package pipeline builds a rescue initrd from a distribution's initrd in
// one call: open → strip → overlay → write → verify → commit. It is what
// the command line, the kernel hooks (through it) and other integrations
// call; it hides how the stages share the input (the copy of the input
// made while it is read, the bodies an append never reads again) and
// writes nothing in place unless every check passed.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/overlay/sshd"
	"github.com/initrd-remix/initrd-remix/overlay/verify"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/remix/newc"
	"github.com/initrd-remix/initrd-remix/strip"
)

// Options control Build.
type Options struct {
	// Input is the distribution's initrd, a regular file; it is only read.
	Input string
	// Output is where the rescue initrd goes, written privately and
	// renamed into place once every check passed. "" asks NameOutput once
	// the kernel version is known (from Kver or the image).
	Output     string
	NameOutput func(kver string) (string, error)
	// Kver is the kernel the image is for; "" means the only kernel whose
	// modules the image holds, vetted by CheckKver before it names
	// anything (a crafted image must not choose file names or write to the
	// terminal).
	Kver      string
	CheckKver func(kver string) error
	// DryRun plans everything and writes nothing.
	DryRun bool
	// Mode is "" (append where safe, else rewrite, said in
	// Result.ModeNote), remix.Append or remix.Rewrite.
	Mode        remix.WriteMode
	Compression codec.Codec // of the new segment; "" means zstd
	Level       int         // codec level; 0 is the codec's default
	Threads     int         // encoder threads; 0 is GOMAXPROCS
	Scan        remix.ScanOptions
	SpoolDir    string
	// Payload is run in the rescue boot before the shell (nil: none).
	Payload remix.Content
	// Overlay says what is added from Overlay.Root; Build sets its KVer.
	Overlay overlay.Options
	// SSH, when set, puts its SSH server and network bring-up into the
	// image: its programs through the overlay, its files after it.
	SSH *sshd.Setup
	// Progress hears of each stage; nil is silent.
	Progress Progress
	// MemoryLimit, when positive, is a soft limit on the Go heap
	// (runtime/debug.SetMemoryLimit) while an append is read, edited and
	// written, the previous one restored when Build returns. It is the
	// process's: set it only where no other work shares the process. It
	// is a backstop: an append's memory is bounded by how it holds the
	// input's bodies and the frames it writes, and the limit only makes
	// the collector return garbage sooner. Rewrites, which hold every
	// body, are not limited. See AppendMemoryLimit.
	MemoryLimit int64
	// LargeImage is the size in bytes past which Result.Warnings says
	// the image may not load; 0 means the package's LargeImage.
	LargeImage int64
}

// Progress is told what Build is doing.
type Progress interface {
	// Reading: the input, of size bytes, is about to be read.
	Reading(path string, size int64)
	// Read: n bytes of the input are read.
	Read(n int64)
	// Step: a later stage starts.
	Step(what string)
}

// Result is what Build did or, with DryRun, would do.
type Result struct {
	Input, Output, Kver string
	Plan                *strip.Plan
	// Mode is the mode written in; ModeNote says why it differs from the
	// one asked for.
	Mode     remix.WriteMode
	ModeNote string
	Overlay  *overlay.Report
	// DHCP is the SSH rescue's DHCP client and why (nil without SSH).
	DHCP *sshd.DHCP
	// Findings are the checks' warnings (errors stop the build).
	Findings []verify.Finding
	// Write describes the file written; nil with DryRun.
	Write *remix.WriteResult
	// Warnings are about the result as a whole (its size).
	Warnings []string
}

// LargeImage is the size past which a rescue image is reported as too
// large for some boot loaders to load. The evidence, 2026-12:
//   - GRUB's x86 Linux loader never places an initrd above
//     GRUB_LINUX_INITRD_MAX_ADDRESS, 0x37FFFFFF (896 MiB; GRUB's
//     include/grub/i386/linux.h), and on i386-pc (BIOS) it needs one
//     contiguous free range between the kernel (loaded at 1 MiB, plus its
//     init_size) and that address; before that it keeps a quarter of the
//     largest free block for itself (debirf's notes on GRUB's source: "it
//     refuses to load a 57MB initrd in a 128MB system"). So BIOS GRUB can
//     never load an initrd near 896 MiB, and less on small or fragmented
//     memory maps.
//   - GRUB's "out of memory" on real firmware starts far lower: a 241 MiB
//     initramfs (omacom/omarchy-iso#128: "kern/mm.c:grub_memalign:552:
//     out of memory", the kernel then boots without it) and a 246 MB one
//     (QubesOS/qubes-issues#11093, GRUB 2.06), and ReaR's users cut their
//     rescue initrd's modules to boot at all (rear/rear#3324, citing Red
//     Hat's KB 7010813: "the initrd file [must be] as small as possible").
//
// 200 MiB stays below the smallest failure reported; the lab's generic
// rescue images are far below it.
const LargeImage = 200 << 20

// AppendMemoryLimit is the command line's Options.MemoryLimit. Measured on
// the lab's bookworm itools-zstd image with the rescue preset and
// --drivers none (alternating runs, medians of 5): peak RSS 75-80 MiB
// without a limit (garbage between collections), 58-60 MiB with this one,
// for about 3% more CPU time; 48 MiB saved no more RSS and cost 10-15%.
const AppendMemoryLimit = 56 << 20

// appendDecodeMemory bounds what an append's decoders hold to decode the
// input on several cores: xz blocks of 1 MiB dictionaries (dracut's) are
// still decoded two at a time, those of 8 MiB (xz -6, initramfs-tools')
// one after the other. Two of those held 50 MiB: the build on the lab's
// itools-xz image peaked at 73 MiB with them.
const appendDecodeMemory = 24 << 20

// KernelError says that the kernel modules in the image do not settle the
// kernel version: none, several, or not the one asked for.
type KernelError struct {
	Input string
	Found []string // the versions whose modules the image holds
	Kver  string   // the version asked for; "" if none
}

// Usage reports whether the caller must name the kernel (Options.Kver).
func (e *KernelError) Usage() bool { return e.Kver == "" }

func (e *KernelError) Error() string { return e.Message(func(s string) string { return s }) }

// Message is the error's text with the versions read from the image passed
// through quote (a terminal wants them escaped).
func (e *KernelError) Message(quote func(string) string) string {
	found := quote(strings.Join(e.Found, ", "))
	switch {
	case e.Kver != "":
		return fmt.Sprintf("%s holds modules for %s, not for --kver %s", e.Input, found, e.Kver)
	case len(e.Found) == 0:
		return fmt.Sprintf("%s holds no kernel modules: name the kernel with --kver", e.Input)
	}
	return fmt.Sprintf("%s holds modules for %d kernels (%s): name one with --kver", e.Input, len(e.Found), found)
}

// VerifyError is a result that failed its own checks: the written segment
// did not read back as written, or the rescue tree would touch storage or
// cannot run a program. Nothing was put in place.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// prepareResult is what overlay.Prepare returned, and the compression of
// the root's files it started (nil: none).
type prepareResult struct {
	p   *overlay.Prepared
	pre *precompressor
	err error
}

// silent is the Progress of a nil Options.Progress.
type silent struct{}

func (silent) Reading(string, int64) {}
func (silent) Read(int64)            {}
func (silent) Step(string)           {}

// Build turns the initrd at opt.Input into a rescue initrd at opt.Output:
// open, strip, overlay, write (verified as it is written), check the tree,
// sync and rename into place. On any error nothing is left at Output.
func Build(ctx context.Context, opt Options) (*Result, error) {
	if opt.Kver == "" && opt.CheckKver == nil {
		return nil, errors.New("pipeline: Options.CheckKver is required when Kver is empty")
	}
	if opt.Output == "" && opt.NameOutput == nil {
		return nil, errors.New("pipeline: Options.NameOutput is required when Output is empty")
	}
	p := opt.Progress
	if p == nil {
		p = silent{}
	}
	res := &Result{Input: opt.Input, Output: opt.Output, Kver: opt.Kver, Mode: opt.Mode}
	st, err := os.Stat(opt.Input)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", opt.Input)
	}
	// Fail on an unwritable output directory before reading anything.
	var out *atomicfile.File
	if !opt.DryRun && opt.Output != "" {
		if out, err = atomicfile.Create(opt.Output, RescueMode(st.Mode())); err != nil {
			return nil, err
		}
		defer out.Abort()
	}
	// The overlay's work in the root (finding the programs, resolving
	// their libraries) needs no image: it runs while the input is
	// decoded, and its result, or error, is taken where the overlay
	// starts. The SSH server's programs depend on the image (its DHCP
	// client), so with SSH the overlay starts from scratch there.
	var prepared chan prepareResult
	var pre *precompressor
	var names *imageNames // for the precompressor: what the image holds
	if opt.SSH == nil {
		prepared = make(chan prepareResult, 1)
		pctx, cancel := context.WithCancel(ctx)
		defer func() {
			cancel()
			// The root is no longer read once Build returns.
			if pr := <-prepared; pr.pre != nil {
				pr.pre.wait()
			}
		}()
		// With the new segment's options known up front, the root's
		// large files are compressed while the input is decoded (see
		// precompressor); a rewrite compresses the whole tree anyway.
		var preOpt *codec.WriterOptions
		if w := appendWriteOptions(opt); !opt.DryRun && opt.Mode != remix.Rewrite && w.Compression == codec.Zstd {
			preOpt = &codec.WriterOptions{Level: w.Level, Window: w.Window}
			names = &imageNames{}
		}
		go func() {
			po := opt.Overlay
			if po.KVer == "" {
				po.KVer = opt.Kver // "": the image's, known later
			}
			pr, err := overlay.Prepare(pctx, po)
			var pre *precompressor
			if err == nil && preOpt != nil {
				if pre, err = newPrecompressor(pctx, pr.Files(), *preOpt, opt.SpoolDir); err == nil {
					names.attach(pre)
					pre.start()
				}
			}
			prepared <- prepareResult{pr, pre, err}
		}()
	}
	p.Reading(opt.Input, st.Size())
	// The limit holds from the start of an append: decoding is when the
	// overlay's preparation, the precompressor and the decoders all
	// allocate at once. It is lifted again if the input turns out to need
	// a rewrite.
	limited := opt.MemoryLimit > 0 && opt.Mode != remix.Rewrite
	var prevLimit int64
	if limited {
		prevLimit = debug.SetMemoryLimit(opt.MemoryLimit)
		defer debug.SetMemoryLimit(prevLimit)
	}
	img, err := open(ctx, opt, out, p, res, names)
	copied := out != nil // the output holds a copy of the input
	if err != nil {
		return nil, err
	}
	defer func() { img.Close() }()
	if limited && res.Mode != remix.Append {
		debug.SetMemoryLimit(prevLimit) // the caller's, for a rewrite
	}
	// In append mode the copy of the input is all of the output but the
	// new segment: it is synced while the tree is edited and written.
	prefixSynced := make(chan error, 1)
	if out != nil && res.Mode == remix.Append {
		go func() { prefixSynced <- out.Sync() }()
	} else {
		prefixSynced <- nil
	}
	img.Tree.SetGeneration(img.EditGeneration())
	plan, err := strip.Apply(img.Tree, strip.Options{Payload: opt.Payload})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opt.Input, err)
	}
	res.Plan = plan
	if err := kernelOf(img, opt, res); err != nil {
		return nil, err
	}
	if res.Output == "" {
		if res.Output, err = opt.NameOutput(res.Kver); err != nil {
			return nil, err
		}
		if !opt.DryRun {
			if out, err = atomicfile.Create(res.Output, RescueMode(st.Mode())); err != nil {
				return nil, err
			}
			defer out.Abort()
		}
	}

	p.Step("adding programs, files and modules from " + opt.Overlay.Root)
	ovOpts := opt.Overlay
	ovOpts.KVer = res.Kver
	if opt.SSH != nil {
		// The DHCP client: the image's own, else one from the root.
		if res.DHCP, err = opt.SSH.ChooseDHCP(img.Tree); err != nil {
			return nil, err
		}
		ovOpts.Add = append(slices.Concat(ovOpts.Add, opt.SSH.Programs), res.DHCP.Programs...)
	}
	if prepared != nil {
		pr := <-prepared
		prepared <- prepareResult{} // for the deferred wait; the Prepared is not kept
		if pr.pre != nil {
			pre = pr.pre
			defer pre.wait()
		}
		if pr.err != nil {
			return nil, pr.err
		}
		res.Overlay, err = pr.p.Apply(ctx, img.Tree, ovOpts.KVer)
	} else {
		res.Overlay, err = overlay.Apply(ctx, img.Tree, ovOpts)
	}
	if err != nil {
		return nil, err
	}
	if pre != nil {
		// What is left to compress is known, and a second core is free.
		pre.prune(img.Tree)
		pre.afterDecode()
	}
	if opt.SSH != nil {
		if err := opt.SSH.Install(img.Tree, res.DHCP); err != nil {
			return nil, err
		}
	}
	// Write, and meanwhile run the same checks as the verify command on
	// the tree being written (strip's assertions, every program's
	// libraries inside the image, dangling links); both only read the
	// tree, which no longer changes. The file is synced to disk while the
	// checks finish: nothing is renamed into place unless they pass. A
	// write error is reported before the checks' findings.
	type checked struct {
		findings []verify.Finding
		err      error
	}
	checks := make(chan checked, 1)
	cctx, cancelChecks := context.WithCancel(ctx)
	defer cancelChecks()
	go func() {
		f, err := verify.Tree(cctx, img.Tree)
		checks <- checked{f, err}
	}()
	synced := make(chan error, 1)
	if !opt.DryRun {
		p.Step("writing " + res.Output)
		wopt := remix.WriteOptions{Mode: res.Mode, Compression: opt.Compression, Level: opt.Level,
			Concurrency: opt.Threads, Verify: true, Copied: copied}
		if res.Mode == remix.Append {
			wopt = appendWriteOptions(opt)
			wopt.Verify, wopt.Copied = true, copied
			if pre != nil {
				wopt.Splice = pre.splice
			}
		}
		res.Write, err = img.WriteTo(ctx, out, wopt)
		if err != nil {
			cancelChecks()
			<-checks // the tree and its bodies are not read once Build returns
			if errors.As(err, new(*remix.VerifyError)) {
				return nil, &VerifyError{err}
			}
			return nil, fmt.Errorf("write %s: %w", res.Output, err)
		}
		go func() {
			if err := <-prefixSynced; err != nil {
				synced <- err
				return
			}
			synced <- out.Sync()
		}()
	}
	p.Step("checking the result")
	c := <-checks
	res.Findings, err = c.findings, c.err
	if opt.Overlay.AllowMissing {
		// The overlay warned about what it could not find; the check of
		// the finished tree finds the same libraries missing.
		res.Findings = verify.AllowMissing(res.Findings)
	}
	if !opt.DryRun {
		if serr := <-synced; err == nil && serr != nil {
			err = fmt.Errorf("write %s: %w", res.Output, serr)
		}
	}
	if err != nil {
		return nil, err
	}
	if verify.Failed(res.Findings) {
		var lines []string
		for _, f := range res.Findings {
			if f.Severity == verify.Error {
				lines = append(lines, f.String())
			}
		}
		return nil, &VerifyError{fmt.Errorf("the rescue tree of %s has %d problems:\n  %s", opt.Input, len(lines), strings.Join(lines, "\n  "))}
	}
	if opt.DryRun {
		return res, nil
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	large := opt.LargeImage
	if large <= 0 {
		large = LargeImage
	}
	if res.Write.Bytes > large {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is %.1f MiB: boot loaders often fail to load an initrd past %.0f MiB (GRUB: \"out of memory\"); "+
			"leave driver classes or modules out (--drivers, --omit-module) or use a smaller --preset", res.Output, float64(res.Write.Bytes)/(1<<20), float64(large)/(1<<20)))
	}
	return res, nil
}

// open reads the input, copying it to out (nil: no copy) as it is decoded,
// and settles res.Mode. An append writes only the edits, so it keeps the
// bodies strip, overlay and the checks read and no others. names, when
// set, hears the names of the regular files as they are read.
func open(ctx context.Context, opt Options, out *atomicfile.File, p Progress, res *Result, names *imageNames) (*remix.Image, error) {
	openOpt := remix.OpenOptions{ScanOptions: opt.Scan, SpoolDir: opt.SpoolDir, Progress: p.Read}
	if res.Mode != remix.Rewrite {
		openOpt.KeepContent, openOpt.SpoolFrom = keepForAppend, appendSpoolFrom
		if openOpt.ParallelDecodeMemory == 0 {
			openOpt.ParallelDecodeMemory = appendDecodeMemory
		}
		if names != nil {
			openOpt.KeepContent = func(name string, size int64) bool {
				names.add(name)
				return keepForAppend(name, size)
			}
			var last codec.Codec
			openOpt.OnEntry = func(seg *remix.Segment, _ *newc.Header, _ string) {
				if seg.Compression != last {
					last = seg.Compression
					names.segment(last)
				}
			}
		}
	}
	if out != nil {
		// The input's bytes go to the output while they are decoded: both
		// modes keep a prefix of them, and they are exactly the bytes
		// parsed even if the input is replaced meanwhile.
		openOpt.CopyTo = out
	}
	img, err := remix.Open(ctx, opt.Input, openOpt)
	if err != nil {
		return nil, err
	}
	if res.Mode != "" {
		return img, nil
	}
	if res.Mode, res.ModeNote = chooseMode(img); res.Mode == remix.Append {
		return img, nil
	}
	// Rare: read again, keeping every body for the rewrite.
	img.Close()
	openOpt.KeepContent, openOpt.SpoolFrom = nil, 0
	if out != nil {
		if err := rewind(out); err != nil {
			return nil, err
		}
	}
	return remix.Open(ctx, opt.Input, openOpt)
}

// kernelOf settles res.Kver against the kernel modules the image holds.
func kernelOf(img *remix.Image, opt Options, res *Result) error {
	kvers := remix.KernelVersions(img.Tree)
	switch {
	case res.Kver == "" && len(kvers) == 1:
		// It names the output and the report: a crafted image must not
		// choose file names or write to the terminal.
		if err := opt.CheckKver(kvers[0]); err != nil {
			return fmt.Errorf("%s: refusing the version of its kernel modules: %w; name the kernel with --kver", opt.Input, err)
		}
		res.Kver = kvers[0]
	case res.Kver == "" || (len(kvers) > 0 && !slices.Contains(kvers, res.Kver)):
		return &KernelError{Input: opt.Input, Found: kvers, Kver: res.Kver}
	}
	return nil
}

// RescueMode is the permission of a rescue image: 0600, or the input's
// bits where they are stricter, never wider. An initrd can hold secrets (a
// LUKS keyfile, host keys); a copy of it in /boot is readable by root only,
// whatever the input's mode or the umask.
func RescueMode(input os.FileMode) os.FileMode { return input.Perm() & 0o600 }

// rewind empties a file for a second copy of the input.
func rewind(f *atomicfile.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// keepForAppend keeps every body but those of kernel modules, firmware and
// early CPU microcode, which no profile, overlay step or check reads from
// the image (an append keeps their bytes as they are in the input).
func keepForAppend(name string, size int64) bool {
	name = remix.Canonical(name)
	if strings.Contains(name, "lib/firmware/") || strings.HasPrefix(name, "kernel/x86/microcode/") {
		return false
	}
	if strings.Contains(name, "lib/modules/") {
		for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if strings.HasSuffix(name, ext) {
				return false
			}
		}
	}
	return true
}

// appendSpoolFrom is the body size from which an append keeps the input's
// bodies in the spool file rather than in memory: it writes none of them
// again, and of the large ones (programs, libraries) the checks read only
// an ELF's headers and a few sections. The small ones (the scripts and
// configuration strip reads and edits) stay in memory. Measured on the
// lab's Debian images: 24-37 MiB of bodies kept, under 3 MiB of them
// below 64 KiB.
const appendSpoolFrom = 64 << 10

// appendFrameSize is the frame size, and the zstd window, of an append's
// new segment. That segment holds a few MiB to some tens, so frames of
// 2 MiB still keep every core busy, and the frames in flight (workers+1,
// input and output) and the encoders' history take a quarter of the
// memory of codec.DefaultFrameSize's and an 8 MiB window. Measured on the
// lab's bookworm itools-zstd image with the rescue preset: the new
// segment 4% larger than with 8 MiB frames, the output 0.8%.
const appendFrameSize = 2 << 20

// appendZstdLevel is the zstd level of an append's new segment when none
// is asked for: the encoder's fastest. Compressing the segment is the
// largest part of a rescue build's CPU after decoding the input, and the
// default level (3) costs about 1.7 times as much for a segment 7% smaller:
// measured on the lab's bookworm itools-zstd image with the rescue preset
// (33 MB of new entries), 15.0 MB against 14.0 MB, the output 1.6% larger
// (65.04 MB against 64.02 MB).
const appendZstdLevel = 1

// appendWriteOptions are the options of an append's new segment.
func appendWriteOptions(opt Options) remix.WriteOptions {
	w := remix.WriteOptions{Mode: remix.Append, Compression: opt.Compression, Level: opt.Level,
		Concurrency: opt.Threads, FrameSize: appendFrameSize, Window: appendFrameSize}
	if w.Compression == "" {
		w.Compression = codec.Zstd
	}
	if w.Level == 0 && w.Compression == codec.Zstd {
		w.Level = appendZstdLevel
	}
	return w
}

// chooseMode picks append unless appending is unsafe for this input.
func chooseMode(img *remix.Image) (remix.WriteMode, string) {
	if len(img.Dropped) > 0 {
		return remix.Rewrite, fmt.Sprintf("rewrite instead of append: the kernel drops %d entries of the input (e.g. %s); a rewrite writes the tree it actually builds", len(img.Dropped), img.Dropped[0])
	}
	return remix.Append, ""
}
