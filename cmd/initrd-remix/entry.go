package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/overlay/config"
	"github.com/spf13/pflag"
)

const entryAbout = `Write, list and remove Boot Loader Specification type #1 entries
($BOOT/loader/entries/<token>-<version>-initrd-remix-rescue.conf) for rescue
images, for systemd-boot and other loaders that read them. The kernel-install
plugin runs it; you rarely need to.

  write   write the rescue entry of a kernel. Every file it names must exist on
          the boot partition, or nothing is written. Rescue entries of the same
          kernel under another token of this installation (an older machine
          ID) are removed, with the rescue images they named. With --uki it
          records the rescue UKI that build wrote to $BOOT/EFI/Linux
          (<token>-<version>_initrd-remix-rescue.efi) as this installation's
          and removes its rescue UKIs of the same kernel under older tokens.
  list    list the rescue entries, with what is wrong with each (a missing
          file, a path that leaves the boot partition) and whose they are,
          and the rescue UKIs (type #2 entries) in $BOOT/EFI/Linux
          (<token>-<version>_initrd-remix-rescue.efi), with what is wrong
          with each (not a UKI, no initrd, not a rescue initrd, a .pcrsig,
          and, as for a type #1 entry whose kernel is gone, a kernel version
          no longer installed or a distribution's <token>-<version>.efi gone);
          --check exits 1 when any entry is broken.
  remove  remove the rescue entries and rescue UKIs of a kernel (--kver), or
          the broken ones (--stale); --images also deletes the rescue images
          the type #1 entries name (only regular files named
          initrd-remix-rescue* inside the boot partition, never a
          distribution's initrd). A rescue UKI is its own image.

Entries are owned by their entry token: this installation's are those of
its machine ID and of every token entry write used here before (recorded in
/var/lib/initrd-remix/entry-tokens). On a $BOOT shared with other
installations, write and remove touch only those (remove --token names
another token explicitly); list shows every rescue entry.

Paths given to write are paths on this system (inside --root); the entry
stores them relative to the partition that holds $BOOT, as the specification
requires.

Examples:
  initrd-remix entry write --kver 6.1.0-50-amd64 \
      --linux /boot/$(cat /etc/machine-id)/6.1.0-50-amd64/linux \
      --initrd /boot/$(cat /etc/machine-id)/6.1.0-50-amd64/initrd-remix-rescue.img
  initrd-remix entry list --check
  initrd-remix entry remove --kver 6.1.0-50-amd64 --images
  initrd-remix entry remove --stale --json
`

type entryFlags struct {
	root, bootRoot string
	json           bool
}

func runEntry(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("entry needs a subcommand: write, list or remove")
	}
	switch args[0] {
	case "write":
		return runEntryWrite(e, args[1:])
	case "list":
		return runEntryList(e, args[1:])
	case "remove":
		return runEntryRemove(e, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "Usage: initrd-remix entry write|list|remove [flags]\n\n%s\nRun 'initrd-remix entry SUBCOMMAND --help' for its flags.\n", entryAbout)
		return nil
	}
	return usagef("unknown entry subcommand %q (write, list or remove)", args[0])
}

func (f *entryFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&f.root, "root", "/", "the root directory the paths are inside (a chroot, a mounted image)")
	fs.StringVar(&f.bootRoot, "boot-root", "", "$BOOT, the directory holding loader/entries (default: the first of /efi, /boot, /boot/efi that has loader/entries, else /boot)")
	fs.BoolVar(&f.json, "json", false, "print the result as JSON")
}

func (f *entryFlags) store() bootentry.Store {
	b := f.bootRoot
	if b == "" {
		b = bootentry.FindBootRoot(f.root)
	}
	return bootentry.Store{Root: f.root, BootRoot: b}
}

// entryJSON is how entries are printed with --json.
type entryJSON struct {
	File      string   `json:"file"`
	Title     string   `json:"title"`
	Version   string   `json:"version"`
	MachineID string   `json:"machine_id,omitempty"`
	SortKey   string   `json:"sort_key,omitempty"`
	Options   string   `json:"options"`
	Linux     string   `json:"linux"`
	Initrd    []string `json:"initrd"`
	Token     string   `json:"token,omitempty"`
	Owned     bool     `json:"owned"`
	Problems  []string `json:"problems"`
	Removed   []string `json:"removed,omitempty"`
	// Type is 2 for a unified kernel image in $BOOT/EFI/Linux (Boot
	// Loader Specification type #2), absent for a type #1 entry.
	Type int `json:"type,omitempty"`
}

func toJSON(file string, en *bootentry.Entry, problems []string) entryJSON {
	j := entryJSON{File: file, Problems: problems, Initrd: []string{}, Owned: true}
	if j.Problems == nil {
		j.Problems = []string{}
	}
	if en != nil {
		j.Title, j.Version, j.MachineID, j.SortKey, j.Options, j.Linux = en.Title, en.Version, en.MachineID, en.SortKey, en.Options, en.Linux
		j.Initrd = append(j.Initrd, en.Initrd...)
	}
	return j
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runEntryWrite(e *env, args []string) error {
	fs := newFlagSet(e, "entry write", "", entryAbout)
	var f entryFlags
	f.register(fs)
	var r bootentry.WriteRequest
	var initrd string
	fs.StringVar(&r.Version, "kver", "", "kernel version (required)")
	fs.StringVar(&r.Linux, "linux", "", "the kernel image, on the boot partition (required)")
	fs.StringVar(&initrd, "initrd", "", "the rescue image, on the boot partition (required)")
	fs.StringVar(&r.Token, "token", "", "entry token (default: the machine ID)")
	fs.StringVar(&r.MachineID, "machine-id", "", "machine ID (default: /etc/machine-id of --root)")
	fs.StringVar(&r.Title, "title", "", "menu title (default: os-release's PRETTY_NAME, the kernel version and \"rescue\")")
	fs.StringVar(&r.Options, "options", "", "kernel arguments (default: /etc/kernel/cmdline, else /usr/lib/kernel/cmdline, else the running kernel's); initrd=, BOOT_IMAGE=, init=, rdinit= and the like are always dropped")
	fs.StringVar(&r.SortKey, "sort-key", "", "sort key (default: os-release's IMAGE_ID or ID plus \"-rescue\", after the normal entries)")
	cfgFile := fs.String("config", "", "configuration file whose ssh and ip keys add initrd_remix.ip=SPEC to the options (default: ROOT"+config.DefaultFile+"; \"\" for none)")
	cfgDir := fs.String("config-dir", "", "its drop-in directory (default: ROOT"+config.DefaultDropIn+")")
	var ukiEntry bool
	fs.BoolVar(&ukiEntry, "uki", false, "instead of a type #1 entry: record the rescue UKI build wrote to $BOOT/EFI/Linux/<token>-KVER"+bootentry.UKISuffix+" as this installation's (with --kver and --token or --machine-id), removing its rescue UKIs of KVER under older tokens")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("entry write takes no arguments, got %q", fs.Args())
	}
	if ukiEntry {
		return runEntryWriteUKI(e, &f, fs, r)
	}
	if !fs.Changed("config") {
		*cfgFile = filepath.Join(f.root, config.DefaultFile)
	}
	if !fs.Changed("config-dir") {
		*cfgDir = filepath.Join(f.root, config.DefaultDropIn)
	}
	netArg, err := entryNetwork(*cfgFile, *cfgDir)
	if err != nil {
		return err
	}
	if r.Version == "" || r.Linux == "" || initrd == "" {
		return usagef("entry write needs --kver, --linux and --initrd")
	}
	r.Initrd = []string{initrd}
	osr := bootentry.OSRelease(f.root)
	if r.MachineID == "" {
		r.MachineID = bootentry.MachineID(f.root)
	}
	if r.Token == "" {
		r.Token = r.MachineID
	}
	if r.Token == "" {
		return fmt.Errorf("no entry token: %s/etc/machine-id is missing or uninitialized; pass --token", strings.TrimSuffix(f.root, "/"))
	}
	if r.Title == "" {
		r.Title = bootentry.DefaultTitle(osr, r.Version)
	}
	if fs.Changed("options") {
		r.Options = bootentry.SanitizeOptions(r.Options)
	} else {
		r.Options = bootentry.DefaultOptions(f.root)
	}
	if netArg != "" && !strings.Contains(" "+r.Options, " initrd_remix.ip=") {
		r.Options = strings.TrimSpace(r.Options + " " + netArg)
	}
	if r.SortKey == "" {
		r.SortKey = bootentry.DefaultSortKey(osr)
	}
	res, err := f.store().Write(r)
	if err != nil {
		return err
	}
	if f.json {
		j := toJSON(res.File, res.Entry, nil)
		j.Removed = res.Removed
		return printJSON(e, j)
	}
	for _, rm := range res.Removed {
		fmt.Fprintf(e.stderr, "removed %s (rescue entry or image of the same kernel under an older machine ID or entry token of this installation)\n", termSafe(rm))
	}
	return nil
}

// runEntryWriteUKI records a rescue UKI (a type #2 entry) as
// bootentry.Store.WriteUKI does.
func runEntryWriteUKI(e *env, f *entryFlags, fs *pflag.FlagSet, r bootentry.WriteRequest) error {
	for _, n := range []string{"linux", "initrd", "title", "options", "sort-key", "config", "config-dir"} {
		if fs.Changed(n) {
			return usagef("entry write --uki takes no --%s: the rescue UKI carries its own command line and title", n)
		}
	}
	if r.Version == "" {
		return usagef("entry write --uki needs --kver")
	}
	if r.Token == "" {
		r.Token = r.MachineID
	}
	if r.Token == "" {
		r.Token = bootentry.MachineID(f.root)
	}
	if r.Token == "" {
		return fmt.Errorf("no entry token: %s/etc/machine-id is missing or uninitialized; pass --token", strings.TrimSuffix(f.root, "/"))
	}
	res, err := f.store().WriteUKI(r.Token, r.Version, readRescueUKI)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e, entryJSON{File: res.File, Version: r.Version, Linux: res.File, Initrd: []string{}, Token: r.Token, Owned: true,
			Problems: []string{}, Removed: res.Removed, Type: 2})
	}
	for _, rm := range res.Removed {
		fmt.Fprintf(e.stderr, "removed %s (rescue UKI of the same kernel under an older machine ID or entry token of this installation)\n", termSafe(rm))
	}
	return nil
}

func runEntryList(e *env, args []string) error {
	fs := newFlagSet(e, "entry list", "", entryAbout)
	var f entryFlags
	f.register(fs)
	var kver string
	var check bool
	fs.StringVar(&kver, "kver", "", "only the entries of this kernel version")
	fs.BoolVar(&check, "check", false, "exit 1 when an entry names a missing file or cannot be parsed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("entry list takes no arguments, got %q", fs.Args())
	}
	found, err := f.store().List(kver)
	if err != nil {
		return err
	}
	broken := 0
	out := []entryJSON{}
	for _, fd := range found {
		if len(fd.Problems) > 0 {
			broken++
		}
		j := toJSON(fd.File, fd.Entry, fd.Problems)
		j.Token, j.Owned = fd.Token, fd.Owned
		out = append(out, j)
	}
	ukis, err := f.store().ListUKIs(kver, readRescueUKI)
	if err != nil {
		return err
	}
	for _, u := range ukis {
		if len(u.Problems) > 0 {
			broken++
		}
		out = append(out, entryJSON{File: u.File, Title: u.Title, Version: u.Version, Options: u.Options, Linux: u.File, Initrd: []string{},
			Token: u.Token, Owned: u.Owned, Problems: u.Problems, Type: 2})
	}
	if f.json {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		// Entries are files anyone with access to $BOOT may have written:
		// what they say is escaped before it reaches a terminal.
		for _, j := range out {
			status := "ok"
			if len(j.Problems) > 0 {
				status = "BROKEN: " + strings.Join(j.Problems, "; ")
			}
			if !j.Owned {
				status += " (another installation's)"
			}
			what := strings.Join(j.Initrd, " ")
			if j.Type == 2 {
				what = "(unified kernel image: " + j.Title + ")"
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\n", termSafe(j.File), termSafe(j.Version), termSafe(what), termSafe(status))
		}
	}
	if check && broken > 0 {
		return fmt.Errorf("%d of %d rescue entries are broken (initrd-remix entry remove --stale removes them)", broken, len(out))
	}
	return nil
}

func runEntryRemove(e *env, args []string) error {
	fs := newFlagSet(e, "entry remove", "", entryAbout)
	var f entryFlags
	f.register(fs)
	var o bootentry.RemoveOptions
	fs.StringVar(&o.Version, "kver", "", "remove the rescue entries of this kernel version")
	fs.StringVar(&o.Token, "token", "", "only the entries under this token, even another installation's (default: this installation's tokens)")
	fs.BoolVar(&o.Stale, "stale", false, "remove only entries that name a missing file or cannot be parsed")
	fs.BoolVar(&o.Images, "images", false, "also delete the rescue images (initrd-remix-rescue*) the entries name")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("entry remove takes no arguments, got %q", fs.Args())
	}
	if o.Version == "" && !o.Stale {
		return usagef("entry remove needs --kver or --stale")
	}
	o.UKI = readRescueUKI
	removed, err := f.store().Remove(o)
	if f.json {
		if removed == nil {
			removed = []string{}
		}
		if jerr := printJSON(e, map[string][]string{"removed": removed}); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}
