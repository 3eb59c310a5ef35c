package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/initrd-remix/initrd-remix/overlay/verify"
	"github.com/initrd-remix/initrd-remix/remix"
)

// verifyReport is the JSON printed by verify --json.
type verifyReport struct {
	File     string           `json:"file"`
	OK       bool             `json:"ok"`
	Errors   int              `json:"errors"`
	Warnings int              `json:"warnings"`
	Findings []verify.Finding `json:"findings"`
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "verify", "IMAGE", `Check an initrd statically, on the tree the kernel builds from it, without
running or unpacking anything:
  - every ELF program and library finds its interpreter and libraries inside
    the image (what ldd in a chroot would say, with the image's ld.so.cache),
    and every executable #! script its interpreter;
  - symlinks that lead nowhere inside the image (listed as warnings; links
    into /dev, /proc, /sys, /run, /tmp are mounted at boot and not counted);
  - the kernel's format rules: segment alignment, codec constraints, each
    compressed stream ending where its archive ends, and entries the kernel
    would drop at boot;
  - the strip assertions (nothing left that activates storage or switches
    root).
Exit status 3 when a check finds an error, 1 when IMAGE cannot be read at
all (not an initrd, truncated, a layout the kernel rejects), 0 otherwise.

Examples:
  initrd-remix verify /boot/initrd.img-rescue-$(uname -r)
  initrd-remix verify --json rescue.img | jq '.findings[] | select(.severity=="error")'
`)
	asJSON := fs.Bool("json", false, "print one JSON object: file, ok, errors, warnings, findings[] {check, severity, path, message}")
	var lim limitFlags
	lim.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	scan, err := lim.options()
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("verify takes exactly one IMAGE, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	// An image that cannot be read at all (not an initrd, truncated, a
	// broken layout) is bad input, exit 1, as for every command; exit 3
	// is for an image that reads and fails the checks.
	img, err := remix.Open(ctx, path, remix.OpenOptions{ScanOptions: scan})
	if err != nil {
		return err
	}
	defer img.Close()
	findings, err := verify.Image(ctx, img)
	if err != nil {
		return err
	}
	rep := verifyReport{File: path, Findings: findings}
	if rep.Findings == nil {
		rep.Findings = []verify.Finding{}
	}
	for _, f := range findings {
		if f.Severity == verify.Error {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rep.OK = rep.Errors == 0
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(e.stdout, termSafe(f.String()))
		}
		fmt.Fprintf(e.stdout, "%s: %d errors, %d warnings\n", path, rep.Errors, rep.Warnings)
	}
	if !rep.OK {
		return verifyError{fmt.Errorf("%s: %d errors", path, rep.Errors)}
	}
	return nil
}
