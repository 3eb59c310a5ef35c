package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/overlay/config"
	"github.com/spf13/pflag"
)

// overlayFlags holds build's overlay flags until they are merged with the
// configuration file.
type overlayFlags struct {
	fs           *pflag.FlagSet
	root         *string
	add          *[]string
	include      *[]string
	module       *[]string
	kver         *string
	preset       *string
	allowMissing *bool
	drivers      *string
	omitModule   *[]string
	configFile   *string
	configDir    *string
}

// addOverlayFlags registers --add, --include, --module, --preset,
// --allow-missing, --config and --config-dir on fs, and --root and --kver
// unless the command has them already (build does: the same root and
// kernel serve its other steps). build calls it, then (after parsing)
// options.
func addOverlayFlags(fs *pflag.FlagSet) *overlayFlags {
	o := &overlayFlags{fs: fs}
	if fs.Lookup("root") == nil {
		o.root = fs.String("root", "/", "source root: programs, libraries, files and modules are taken from it, resolved inside it (nothing is run)")
	}
	if fs.Lookup("kver") == nil {
		o.kver = fs.String("kver", "", "kernel version for --module (default: the only one in the image)")
	}
	o.add = fs.StringArray("add", nil, "add PROG (looked up on the PATH of --root, or an absolute path in it) with its interpreter and every library; repeatable")
	o.include = fs.StringArray("include", nil, "copy SRC[:DEST] from --root as it is: a file, a symlink with its whole chain and target, or a whole tree; "+
		"ELF files and scripts in it bring what they need; repeatable")
	o.module = fs.StringArray("module", nil, "add kernel module NAME (or alias) of --kver with its dependencies, soft dependencies and firmware; repeatable")
	o.preset = fs.String("preset", "rescue", "program set to add, of what --root has: "+strings.Join(overlay.PresetNames(), ", "))
	o.allowMissing = fs.Bool("allow-missing", false, "warn instead of failing when a library cannot be found")
	o.drivers = fs.String("drivers", "all", "driver classes to add from --root's lib/modules/KVER for replacement hardware, with dependencies and firmware: "+
		"a comma-separated list of storage, fs, net, input, or all, or none (see above); "+
		"left at the default, a --root without the image's kernel's modules adds none, with a warning")
	o.omitModule = fs.StringArray("omit-module", nil, "leave module NAME or shell PATTERN (- and _ alike) out of the driver classes, with every module that needs it; repeatable")
	o.configFile = fs.String("config", config.DefaultFile, "configuration file (read first if it exists; \"\" for none); flags override it")
	o.configDir = fs.String("config-dir", config.DefaultDropIn, "drop-in directory: its *.conf files are read after --config, in lexical order")
	return o
}

// stringFlag is the value of a flag registered by the command itself.
func stringFlag(fs *pflag.FlagSet, own *string, name string) string {
	if own != nil {
		return *own
	}
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// options merges the configuration file and drop-ins with the flags:
// list keys accumulate (configuration first, then flags), a flag given on
// the command line overrides a single-valued key. Keys that are not
// flags of fs are refused, naming the file and line; "hooks" is for the
// kernel hooks and ignored. Other build flags set in the configuration
// (compress, mode, ...) are applied to fs too, unless given as flags.
func (o *overlayFlags) options() (overlay.Options, error) {
	cfg, err := config.Load(*o.configFile, *o.configDir)
	if err != nil {
		return overlay.Options{}, err
	}
	if err := cfg.Check(func(k string) bool { return o.fs.Lookup(k) != nil && k != "config" && k != "config-dir" }); err != nil {
		return overlay.Options{}, err
	}
	// --drivers was asked for when given on the command line or set in
	// a file; only the built-in default is lenient.
	driversCfg, driversSet := cfg.Value("drivers")
	driversFlag := o.fs.Lookup("drivers").Changed
	driversSet = driversSet || driversFlag
	lists := map[string]*[]string{"add": o.add, "include": o.include, "module": o.module, "omit-module": o.omitModule}
	for key, dst := range lists {
		if vals := cfg.Values(key); len(vals) > 0 {
			*dst = append(vals, *dst...)
		}
	}
	for _, s := range cfg.Settings {
		if _, list := lists[s.Key]; list || s.Key == "hooks" {
			continue
		}
		f := o.fs.Lookup(s.Key)
		if f.Changed {
			continue
		}
		last, _ := cfg.Value(s.Key)
		if last != s {
			continue
		}
		if f.Value.Type() == "bool" {
			if _, err := strconv.ParseBool(s.Value); err != nil {
				return overlay.Options{}, fmt.Errorf("%s:%d: %s wants true or false, got %q", s.File, s.Line, s.Key, s.Value)
			}
		}
		if err := f.Value.Set(s.Value); err != nil {
			return overlay.Options{}, fmt.Errorf("%s:%d: %s: %w", s.File, s.Line, s.Key, err)
		}
	}
	var drivers []string
	if driversSet {
		if drivers, err = overlay.ParseDrivers(*o.drivers); err != nil {
			if !driversFlag {
				return overlay.Options{}, fmt.Errorf("%s:%d: %w", driversCfg.File, driversCfg.Line, err)
			}
			return overlay.Options{}, usageError{err.Error()}
		}
	}
	return overlay.Options{
		Drivers:      drivers,
		OmitModules:  *o.omitModule,
		Root:         stringFlag(o.fs, o.root, "root"),
		Add:          *o.add,
		Include:      *o.include,
		Modules:      *o.module,
		KVer:         stringFlag(o.fs, o.kver, "kver"),
		Preset:       *o.preset,
		AllowMissing: *o.allowMissing,
	}, nil
}
