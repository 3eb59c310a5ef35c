package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/initrd-remix/initrd-remix/internal/atomicfile"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
)

// outputFlags are the flags of every command that writes an image.
type outputFlags struct {
	compress string
	level    int
	threads  int
	mode     string
	force    bool
	noVerify bool
	spoolDir string
	limits   limitFlags
	quiet    bool
	json     bool
}

func (o *outputFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
	BoolVarP(*bool, string, string, bool, string)
}, defaultMode string) {
	fs.StringVar(&o.compress, "compress", "zstd", "compression of the written segment: none, gzip, zstd, xz, lz4")
	fs.IntVar(&o.level, "level", 0, "compression level (0: the codec's default for initrds)")
	fs.IntVar(&o.threads, "threads", 0, "compression threads (0: one per CPU)")
	fs.StringVar(&o.mode, "mode", defaultMode, "rewrite: early archives + one new archive of the merged tree; append: original bytes + a segment of changes")
	fs.BoolVar(&o.force, "force", false, "allow OUTPUT to be the INPUT file (it is replaced atomically)")
	fs.BoolVar(&o.noVerify, "no-verify", false, "skip decoding the written segment and comparing it entry by entry (done on another core while writing)")
	fs.StringVar(&o.spoolDir, "spool-dir", "", "where file bodies past the first 256 MiB are kept while the image is rewritten, in an unlinked file of at most --max-size (default: $TMPDIR, else /var/tmp; never the output's directory unless named here)")
	o.limits.register(fs)
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on the terminal")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
}

func runRepack(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "repack", "INPUT OUTPUT", `Rewrite an initrd without changing any entry: the kernel builds the same
root filesystem from OUTPUT as from INPUT (same names, types, modes, owners,
times, device numbers, link targets, hard links and contents). Early
uncompressed archives (CPU microcode) are kept first and byte for byte.
OUTPUT is written to a temporary file beside it, read back and checked,
synced, and only then renamed into place; INPUT is never opened for writing.
The same INPUT gives byte-identical OUTPUT.

In rewrite mode the new archive is compressed while INPUT is still being
read. If the merged tree turns out to differ from the order INPUT listed
its entries in (a name given twice, a later segment overriding), INPUT is
read a second time and written the ordinary way: same bytes, more time.
--json says which ("streamed").
`)
	var o outputFlags
	o.register(fs, string(remix.Rewrite))
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("repack takes INPUT and OUTPUT, got %d arguments", fs.NArg())
	}
	res, err := remixImage(ctx, e, fs.Arg(0), fs.Arg(1), &o, nil)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if !o.quiet {
		fmt.Fprintf(e.stderr, "wrote %s: %s (%s, %s mode, %d entries in the new segment, %s kept as is)\n",
			res.Output, humanBytes(res.Bytes), res.Compression, res.Mode, res.NewEntries, humanBytes(res.KeptBytes))
	}
	return nil
}

// remixResult is what a writing command reports.
type remixResult struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	*remix.WriteResult
}

// remixImage reads input, lets edit change the tree, writes output
// atomically after verifying it. Nothing exists at output unless all of it
// succeeded.
func remixImage(ctx context.Context, e *env, input, output string, o *outputFlags, edit func(*remix.Image) error) (*remixResult, error) {
	c, err := codec.Parse(o.compress)
	if err != nil {
		return nil, usagef("--compress: %v", err)
	}
	mode, err := remix.ParseWriteMode(o.mode)
	if err != nil {
		return nil, usagef("--mode: %v", err)
	}
	scan, err := o.limits.options()
	if err != nil {
		return nil, err
	}
	if err := checkOutputPath(input, output, o.force); err != nil {
		return nil, err
	}
	if err := atomicfile.CheckTarget(output); err != nil {
		return nil, err
	}
	st, err := os.Stat(input)
	if err != nil {
		return nil, err
	}
	// The output exists before the input is read: its directory is checked
	// first, and the input's bytes are copied to it while they are decoded
	// (the kept early archives are then exactly the bytes parsed).
	out, err := atomicfile.Create(output, outputMode(input, st.Mode().Perm()))
	if err != nil {
		return nil, err
	}
	defer out.Abort()
	p := newProgress(e, o.quiet || o.json, "reading "+input, st.Size())
	defer p.done()
	wopt := remix.WriteOptions{Mode: mode, Compression: c, Level: o.level, Concurrency: o.threads, Verify: !o.noVerify,
		Copied: true}
	var res *remix.WriteResult
	if edit == nil && mode == remix.Rewrite {
		// Nothing to edit: the new archive is written while the input is
		// read (and, where that cannot follow the input, the ordinary way).
		res, err = remix.Repack(ctx, input, out, remix.RepackOptions{ScanOptions: scan,
			Write: wopt, SpoolDir: o.spoolDir, Progress: p.update})
	} else {
		res, err = openAndWrite(ctx, input, output, out, remix.OpenOptions{ScanOptions: scan, SpoolDir: o.spoolDir}, p, wopt, edit)
	}
	if err != nil {
		if errors.As(err, new(*remix.VerifyError)) {
			return nil, verifyError{err}
		}
		return nil, err
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	return &remixResult{Input: input, Output: output, WriteResult: res}, nil
}

// openAndWrite reads input with its bytes copied to out, lets edit change
// the tree, and writes the result after the kept bytes.
func openAndWrite(ctx context.Context, input, output string, out *atomicfile.File, opt remix.OpenOptions, p *progress,
	wopt remix.WriteOptions, edit func(*remix.Image) error) (*remix.WriteResult, error) {
	opt.Progress, opt.CopyTo = p.update, out
	img, err := remix.Open(ctx, input, opt)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if edit != nil {
		if err := edit(img); err != nil {
			return nil, err
		}
	}
	p.step("writing " + output)
	res, err := img.WriteTo(ctx, out, wopt)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", output, err)
	}
	return res, nil
}

// outputMode keeps the input's permissions (Fedora's 0600 initrds stay
// private) but never makes an output world-writable.
func outputMode(_ string, perm os.FileMode) os.FileMode {
	return perm &^ 0o022
}

// checkOutputPath refuses to overwrite the input unless forced, by path and
// by identity (hard links, symlinks, bind mounts).
func checkOutputPath(input, output string, force bool) error {
	if output == "" {
		return usagef("no output path")
	}
	if force {
		return nil
	}
	ai, err1 := filepath.Abs(input)
	ao, err2 := filepath.Abs(output)
	same := err1 == nil && err2 == nil && ai == ao
	if si, err := os.Stat(input); err == nil {
		if so, err := os.Stat(output); err == nil && os.SameFile(si, so) {
			same = true
		}
	}
	if same {
		return usagef("output %s is the input file; pass --force to replace it (atomically)", output)
	}
	return nil
}
