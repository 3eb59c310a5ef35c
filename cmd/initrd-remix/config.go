package main

import (
	"context"
	"fmt"

	"github.com/initrd-remix/initrd-remix/overlay/config"
)

const configAbout = `Read the configuration the way build reads it:
/etc/initrd-remix/initrd-remix.conf, then /etc/initrd-remix/conf.d/*.conf in
lexical order. The grammar is in the README ("Configuration file"); a file
that breaks it is an error naming the file and line.

  get KEY   print the effective value of KEY: the last one set (booleans as
            true or false), every value of add, include and module one per
            line, the default of hooks (true) when no file sets it, and
            nothing for a key left to build's default. The kernel hooks run
            "initrd-remix config get hooks" instead of parsing the files.
  check     print every setting with the file and line it comes from.

Examples:
  initrd-remix config get hooks
  initrd-remix config check --config-dir /mnt/etc/initrd-remix/conf.d
`

func runConfig(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("config needs a subcommand: get or check")
	}
	sub := args[0]
	switch sub {
	case "get", "check":
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "Usage: initrd-remix config get KEY | check [flags]\n\n%s", configAbout)
		return nil
	default:
		return usagef("unknown config subcommand %q (get or check)", sub)
	}
	fs := newFlagSet(e, "config "+sub, map[string]string{"get": "KEY", "check": ""}[sub], configAbout)
	file := fs.String("config", config.DefaultFile, "configuration file (\"\" for none)")
	dir := fs.String("config-dir", config.DefaultDropIn, "drop-in directory: its *.conf files are read after --config, in lexical order")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	want := map[string]int{"get": 1, "check": 0}[sub]
	if fs.NArg() != want {
		return usagef("config %s takes %d arguments, got %d", sub, want, fs.NArg())
	}
	if sub == "get" {
		if _, ok := config.Lookup(fs.Arg(0)); !ok {
			_, err := (&config.Config{}).Effective(fs.Arg(0))
			return usageError{err.Error()}
		}
	}
	cfg, err := config.Load(*file, *dir)
	if err != nil {
		return err
	}
	if sub == "check" {
		for _, s := range cfg.Settings {
			fmt.Fprintf(e.stdout, "%s = %s\t# %s:%d\n", s.Key, s.Value, s.File, s.Line)
		}
		return nil
	}
	vals, err := cfg.Effective(fs.Arg(0))
	if err != nil {
		return err
	}
	for _, v := range vals {
		fmt.Fprintln(e.stdout, v)
	}
	return nil
}
