// Command initrd-remix turns the initrd a distribution generated for a
// kernel into a rescue initrd, and inspects and rewrites initrds.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/initrd-remix/initrd-remix/pipeline"
	"github.com/spf13/pflag"
)

// Exit codes: scripts and kernel hooks branch on them.
const (
	exitOK        = 0   // done
	exitFailed    = 1   // bad input, I/O error, refused operation
	exitUsage     = 2   // wrong flags or arguments
	exitVerify    = 3   // the result failed its checks; nothing was written
	exitInterrupt = 130 // SIGINT/SIGTERM
)

// usageError marks errors that are the caller's words, not the input's.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// verifyError marks a result that failed its own checks.
type verifyError struct{ err error }

func (e verifyError) Error() string { return "verification failed: " + e.err.Error() }
func (e verifyError) Unwrap() error { return e.err }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what commands share: streams, so tests can run the CLI in-process.
type env struct {
	stdout, stderr io.Writer
	stderrTTY      bool
	// memoryLimit is build's soft limit on the Go heap in append mode
	// (pipeline.Options.MemoryLimit); set by main only, since the limit
	// is the process's: tests running builds in parallel in one process
	// leave it alone.
	memoryLimit int64
}

func commands() []command {
	return []command{
		{"build", "build a rescue initrd from the distribution's initrd (the default command)", runBuild},
		{"inspect", "show an initrd's segments, generator, usr-merge state, kernel and microcode", runInspect},
		{"repack", "rewrite an initrd with no change to any entry (other compression or layout)", runRepack},
		{"entry", "write, list and remove boot loader entries (BLS type #1) for rescue images", runEntry},
		{"verify", "check an initrd: libraries of every program, dangling links, format rules", runVerify},
		{"config", "print the effective configuration (what the kernel hooks ask)", runConfig},
		{"version", "print the version", runVersion},
	}
}

const version = "0.1.0-dev"

func main() {
	ctx, stop := notifyContext(context.Background(), os.Stderr, os.Exit)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stderrTTY: isTerminal(os.Stderr)}
	if os.Getenv("GOMEMLIMIT") == "" { // the user's own limit wins
		e.memoryLimit = pipeline.AppendMemoryLimit
	}
	// For benchmarks: INITRD_REMIX_MEMPROFILE=FILE writes a pprof heap
	// profile (allocations sampled every 4 KiB) when the command ends.
	if p := os.Getenv("INITRD_REMIX_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			runtime.MemProfileRate = 4 << 10
			code := run(ctx, e, os.Args[1:])
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
			os.Exit(code)
		}
	}
	// For benchmarks: INITRD_REMIX_CPUPROFILE=FILE writes a pprof profile.
	if p := os.Getenv("INITRD_REMIX_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			code := run(ctx, e, os.Args[1:])
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// notifyContext returns a context that the first SIGINT or SIGTERM
// cancels: the command stops, removes its temporary files and exits 130.
// A second signal ends the process at once through exit, whatever it was
// waiting for (a temporary file it leaves is removed by the next run; see
// package atomicfile).
func notifyContext(parent context.Context, stderr io.Writer, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "initrd-remix: %v again: stopping at once\n", s)
			exit(exitInterrupt)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func run(ctx context.Context, e *env, args []string) int {
	// No command, or flags first: build, the tool's purpose.
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help") {
		return report(ctx, e, "build", runBuild(ctx, e, args))
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			return run(ctx, e, []string{args[1], "--help"})
		}
		printUsage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			return report(ctx, e, c.name, err)
		}
	}
	fmt.Fprintf(e.stderr, "initrd-remix: unknown command %q\nRun 'initrd-remix --help' for the list of commands.\n", args[0])
	return exitUsage
}

func report(ctx context.Context, e *env, name string, err error) int {
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	var ve verifyError
	// Messages may quote names from an image: no escape sequence in them
	// reaches the terminal.
	msg := termMessage(err.Error())
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(e.stderr, "initrd-remix %s: interrupted; nothing was written\n", name)
		return exitInterrupt
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "initrd-remix %s: %s\nRun 'initrd-remix %s --help' for usage.\n", name, msg, name)
		return exitUsage
	case errors.As(err, &ve):
		fmt.Fprintf(e.stderr, "initrd-remix %s: %s\n", name, msg)
		return exitVerify
	}
	fmt.Fprintf(e.stderr, "initrd-remix %s: %s%s\n", name, msg, limitHint(err))
	return exitFailed
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `initrd-remix turns the initrd your distribution generated for a kernel into a
rescue initrd: the same drivers, firmware and udev, but no storage activation
and no switch to the installed root.

Usage:
  initrd-remix [build flags]                 (same as: initrd-remix build ...)
  initrd-remix <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Examples:
  initrd-remix                                   # rescue image for the running kernel
  initrd-remix build --dry-run --run /root/recover.sh
  initrd-remix inspect /boot/initrd.img-$(uname -r)
  initrd-remix inspect --json --files /boot/initramfs-$(uname -r).img
  initrd-remix repack --compress xz in.img out.img

Run 'initrd-remix <command> --help' for a command's flags.
Exit status: 0 done, 1 failed (bad input or I/O), 2 usage error,
3 the result failed verification (nothing written), 130 interrupted.
`)
}

func newFlagSet(e *env, name, args, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: initrd-remix %s [flags] %s\n\n%s\nFlags:\n%s", name, args, about, fs.FlagUsages())
	}
	return fs
}

// parse turns pflag's errors into usage errors (help is not an error).
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "", "Print the version of initrd-remix.\n")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "initrd-remix", version)
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
