// Package verify checks an initrd statically, on the merged tree the
// kernel builds from it, for what would make a rescue boot useless: ELF
// programs whose interpreter or libraries are not inside the image (what
// Relax-and-Recover checks with ldd in a chroot, here without one and
// without running anything) or whose libraries lack a symbol version they
// need (DT_VERNEED against the DT_VERDEF of the object ld.so would load:
// "version `GLIBC_2.38' not found"), symlinks that dangle inside the image,
// entries the kernel would drop, and the strip assertions. The format
// rules of the file itself (alignment, codec constraints, archive ends
// inside each compressed stream) are remix.Open's: an image that breaks
// them does not open. The build command calls Tree before it renames its
// output into place; `initrd-remix verify` calls Image.
package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/internal/ordered"
	"github.com/initrd-remix/initrd-remix/overlay/ldso"
	"github.com/initrd-remix/initrd-remix/overlay/treefs"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/codec"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/strip/audit"
)

// Severity of a Finding: errors make verify fail, warnings are listed.
const (
	Error   = "error"
	Warning = "warning"
)

// Checks, the Check field of a Finding.
const (
	CheckLibraries = "libraries" // an ELF's interpreter or library is not in the image
	CheckDangling  = "dangling"  // a symlink leads nowhere inside the image
	CheckDropped   = "dropped"   // the kernel would skip the entry at boot
	CheckStrip     = "strip"     // storage activation or switch_root left in
	CheckRuns      = "runs"      // what the boot would run, judged against the allow-list
	CheckFormat    = "format"    // the file breaks a rule of the kernel's unpacker that reading does not enforce
	CheckELF       = "elf"       // an ELF file that cannot be read
	CheckVersions  = "versions"  // a symbol version an ELF needs is not defined by the library it gets
)

// Finding is one problem.
type Finding struct {
	Check    string `json:"check"`
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Message  string `json:"message"`
	// missing: a library (or interpreter) an ELF needs is not in the
	// image, what AllowMissing demotes.
	missing bool
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: /%s: %s", f.Severity, f.Check, f.Path, f.Message)
}

// AllowMissing returns the findings with every library an ELF needs and
// the image lacks made a warning, as the build's --allow-missing asks. A
// missing symbol version, an unreadable ELF or loader cache and the strip
// assertions stay errors.
func AllowMissing(fs []Finding) []Finding {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].missing {
			out[i].Severity = Warning
		}
	}
	return out
}

// Failed reports whether any finding is an error.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Error {
			return true
		}
	}
	return false
}

// runtimeDirs are mounted at boot (devtmpfs, proc, sysfs, tmpfs): links
// into them, such as systemd's masks (-> /dev/null), are not dangling.
func runtimeDirs() []string { return []string{"dev", "proc", "sys", "run", "tmp"} }

// Image checks an opened image: entries the kernel drops, then Tree.
func Image(ctx context.Context, img *remix.Image) ([]Finding, error) {
	var out []Finding
	for _, d := range img.Dropped {
		out = append(out, Finding{Check: CheckDropped, Severity: Error, Path: "", Message: d})
	}
	f, err := format(img)
	if err != nil {
		return nil, err
	}
	out = append(out, f...)
	more, err := Tree(ctx, img.Tree)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// format checks what remix reads leniently but the kernel refuses. Opening
// the image already enforced the rest (alignment, archive ends inside each
// compressed stream, gzip header fields, dictionary and window bounds): xz
// streams may carry CRC64 or SHA-256 checks, which XZ Embedded, the kernel's
// decoder, does not implement ("CRC32 is supported for integrity checking").
func format(img *remix.Image) ([]Finding, error) {
	var out []Finding
	var f *os.File
	for _, seg := range img.Segments {
		if seg.Compression != codec.XZ {
			continue
		}
		if f == nil {
			var err error
			if f, err = os.Open(img.Path); err != nil {
				return nil, err
			}
			defer f.Close()
		}
		var h [12]byte
		if _, err := f.ReadAt(h[:], seg.Offset); err != nil {
			return nil, fmt.Errorf("%s: offset %d: %w", img.Path, seg.Offset, err)
		}
		if check := h[7] & 0x0f; check != 0x00 && check != 0x01 {
			out = append(out, Finding{Check: CheckFormat, Severity: Error, Path: "",
				Message: fmt.Sprintf("xz segment at offset %d uses check type %#x; the kernel's xz decoder accepts only CRC32 or none (xz --check=crc32)", seg.Offset, check)})
		}
	}
	return out, nil
}

// Tree checks a merged tree: libraries of every ELF, dangling links and
// the strip assertions. The error is for failures to check (interrupted,
// unreadable content), not for what is found.
func Tree(ctx context.Context, t *remix.Tree) ([]Finding, error) {
	out := dangling(t)
	libs, err := libraries(ctx, t)
	if err != nil {
		return nil, err
	}
	out = append(out, libs...)
	out = append(out, stripAssertions(t)...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Check != out[j].Check {
			return out[i].Check < out[j].Check
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

// stripAssertions runs package strip's Assert on a rescue image. An image
// without strip's marker is not one (a distribution's own initrd, which
// activates storage by design): that is said once, as a warning.
func stripAssertions(t *remix.Tree) []Finding {
	if t.Lookup(strip.Marker) == nil {
		return []Finding{{Check: CheckStrip, Severity: Warning, Path: strip.Marker,
			Message: "not an initrd-remix rescue image (no marker): storage and switch_root assertions not checked"}}
	}
	var out []Finding
	for _, f := range strip.Assert(t) {
		out = append(out, Finding{Check: CheckStrip, Severity: Error, Path: f.Path, Message: f.Problem})
	}
	// What the boot would run, evaluated on its own, not by strip's edits.
	for _, f := range audit.Check(t) {
		out = append(out, Finding{Check: CheckRuns, Severity: Error, Path: f.Path, Message: f.Problem})
	}
	return out
}

func dangling(t *remix.Tree) []Finding {
	var out []Finding
	for _, n := range t.Nodes() {
		if !n.IsSymlink() {
			continue
		}
		target := n.Inode.Target
		if runtime(target, n.Path) {
			continue
		}
		_, tn, err := t.Resolve(n.Path, true)
		switch {
		case errors.Is(err, remix.ErrLoop):
			out = append(out, Finding{Check: CheckDangling, Severity: Error, Path: n.Path, Message: "symlink loop: -> " + target})
		case err != nil || tn == nil:
			out = append(out, Finding{Check: CheckDangling, Severity: Warning, Path: n.Path, Message: "-> " + target + ": nothing there in the image"})
		}
	}
	return out
}

// runtime tells links into the directories mounted at boot.
func runtime(target, at string) bool {
	if !strings.HasPrefix(target, "/") {
		target = remix.ParentPath(at) + "/" + target
	}
	c := remix.Canonical(target)
	for _, d := range runtimeDirs() {
		if c == d || strings.HasPrefix(c, d+"/") {
			return true
		}
	}
	return false
}

// libraries resolves every ELF program and library, and the interpreter
// of every executable script, of the tree inside it.
func libraries(ctx context.Context, t *remix.Tree) ([]Finding, error) {
	fsys := treefs.New(t)
	r, err := ldso.NewResolverFS(fsys, "image", ldso.Options{})
	if err != nil {
		return []Finding{{Check: CheckLibraries, Severity: Error, Path: "etc/ld.so.cache", Message: err.Error()}}, nil
	}
	var progs, libs []string
	for _, n := range t.Nodes() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !n.IsRegular() {
			continue
		}
		// An executable script must find its interpreter (and, through
		// the resolver, the interpreter its libraries).
		if n.Inode.Mode&0o111 != 0 && isScript(n) {
			progs = append(progs, "/"+n.Path)
			continue
		}
		if n.Inode.Size() < 64 {
			continue
		}
		switch loadable, program := elfKind(fsys, n); {
		case program:
			progs = append(progs, "/"+n.Path)
		case loadable:
			libs = append(libs, "/"+n.Path)
		}
	}
	// A program that cannot start is an error. A library is checked on
	// its own as well, but what it lacks may come from the RUNPATH of the
	// program that loads it (systemd's libsystemd-core), or it may be a
	// module nothing loads (libnss_hesiod): a warning.
	// The two closures share nothing (the resolver is safe for concurrent
	// use): one core each.
	pool := ordered.New[[]Finding](ctx, 2)
	defer pool.Close()
	pool.Submit(func(ctx context.Context, _ int) ([]Finding, error) { return resolve(ctx, r, progs, Error) })
	pool.Submit(func(ctx context.Context, _ int) ([]Finding, error) { return resolve(ctx, r, libs, Warning) })
	out, err := pool.Next()
	if err != nil {
		return nil, err
	}
	more, err := pool.Next()
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

func resolve(ctx context.Context, r *ldso.Resolver, elfs []string, severity string) ([]Finding, error) {
	var out []Finding
	res, err := r.Closure(elfs...)
	if err != nil {
		// One bad file must not hide the others: resolve one at a time.
		res = &ldso.Result{}
		for _, p := range elfs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			one, err := r.Closure(p)
			if err != nil {
				out = append(out, Finding{Check: CheckELF, Severity: Error, Path: p[1:], Message: err.Error()})
				continue
			}
			res.Missing = append(res.Missing, one.Missing...)
			res.Versions = append(res.Versions, one.Versions...)
		}
	}
	// ld.so refuses to start a process whose objects need a version the
	// loaded library does not define; a dlopen() of such an object fails.
	seenVer := map[ldso.VersionMissing]bool{}
	for _, m := range res.Versions {
		if seenVer[m] {
			continue
		}
		seenVer[m] = true
		sev := severity
		if m.Dlopen {
			sev = Warning
		}
		out = append(out, Finding{Check: CheckVersions, Severity: sev, Path: strings.TrimPrefix(m.Object, "/"),
			Message: m.String()})
	}
	seen := map[string]bool{}
	for _, m := range res.Missing {
		k := m.Object + "\x00" + m.Soname
		if seen[k] {
			continue
		}
		seen[k] = true
		sev, note := severity, ""
		if m.Dlopen {
			// The program starts; only that dlopen() fails.
			sev, note = Warning, " (loaded only by dlopen(), which fails)"
		}
		out = append(out, Finding{Check: CheckLibraries, Severity: sev, Path: strings.TrimPrefix(m.Object, "/"),
			Message: fmt.Sprintf("%s not found in the image: %s%s", m.Soname, m.Reason, note), missing: true})
	}
	return out, nil
}

// isScript reports whether a file starts with "#!" and has more.
func isScript(n *remix.Node) bool {
	return n.Inode.Size() >= 3 && remix.IsScript(remix.Head(n.Inode.Content, 2))
}

// elfKind sorts a regular file of the image: program (PT_INTERP), other
// loadable object, or neither (kernel modules included).
func elfKind(fsys ldso.FS, n *remix.Node) (loadable, program bool) {
	f, err := fsys.Open("/" + n.Path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	return ldso.ELFKind(f)
}
