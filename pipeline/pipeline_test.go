package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/overlay/verify"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

// steps records what Build told its Progress.
type steps struct {
	log  []string
	read int64
}

func (s *steps) Reading(path string, size int64) {
	s.log = append(s.log, "reading "+filepath.Base(path))
}
func (s *steps) Read(n int64)     { s.read = n }
func (s *steps) Step(what string) { s.log = append(s.log, strings.Fields(what)[0]) }

// TestBuildLab builds from a real image of the lab through the library,
// as the command line and the kernel hooks do, and checks what each
// option does to the file system.
func TestBuildLab(t *testing.T) {
	lab := testtool.OpenLab(t)
	im := lab.Image(t, "itools-zstd")
	root, kver := lab.Env["LAB_ROOT"], lab.Env["LAB_KVER"]
	input, err := os.ReadFile(im.Path)
	if err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	lonely := lonelyRoot(t, root)
	for _, tc := range []struct {
		name      string
		opt       func(o *Options, dir string)
		wantErr   string // "" for success
		wantMode  remix.WriteMode
		written   bool
		wantSteps []string
		check     func(t *testing.T, res *Result)
	}{
		{"append by default", func(o *Options, dir string) {}, "", remix.Append, true,
			[]string{"reading itools-zstd.img", "adding", "writing", "checking"}, nil},
		{"rewrite", func(o *Options, dir string) { o.Mode = remix.Rewrite }, "", remix.Rewrite, true, nil, nil},
		{"size warning", func(o *Options, dir string) { o.LargeImage = 1 << 20 }, "", remix.Append, true, nil, nil},
		{"dry run writes nothing", func(o *Options, dir string) { o.DryRun = true }, "", remix.Append, false,
			[]string{"reading itools-zstd.img", "adding", "checking"}, nil},
		{"output named once the kernel is known", func(o *Options, dir string) {
			o.Output, o.Kver = "", ""
			o.NameOutput = func(k string) (string, error) { return filepath.Join(dir, "named-"+k), nil }
		}, "", remix.Append, true, nil, nil},
		{"wrong kernel", func(o *Options, dir string) { o.Kver = "5.10.0-1-amd64" }, "not for --kver 5.10.0-1-amd64", "", false, nil, nil},
		{"image's kernel refused", func(o *Options, dir string) {
			o.Kver = ""
			o.CheckKver = func(string) error { return refuse }
		}, "refusing the version of its kernel modules", "", false, nil, nil},
		{"no CheckKver", func(o *Options, dir string) { o.Kver, o.CheckKver = "", nil }, "CheckKver is required", "", false, nil, nil},
		{"no NameOutput", func(o *Options, dir string) { o.Output = "" }, "NameOutput is required", "", false, nil, nil},
		{"input not regular", func(o *Options, dir string) { o.Input = dir }, "not a regular file", "", false, nil, nil},
		// The root's part of the overlay runs while the image is read;
		// its errors still come where the overlay starts, after the
		// image's and the kernel's.
		{"program not in the root", func(o *Options, dir string) { o.Overlay.Add = []string{"no-such-program"} },
			`--add no-such-program: program "no-such-program" not found`, "", false, nil, nil},
		{"wrong kernel before a missing program", func(o *Options, dir string) {
			o.Kver, o.Overlay.Add = "5.10.0-1-amd64", []string{"no-such-program"}
		}, "not for --kver 5.10.0-1-amd64", "", false, nil, nil},
		{"bad image before a missing program", func(o *Options, dir string) {
			o.Input = filepath.Join(dir, "junk.img")
			if err := os.WriteFile(o.Input, []byte("not an initrd at all"), 0o600); err != nil {
				panic(err)
			}
			o.Overlay.Add = []string{"no-such-program"}
		}, "junk.img", "", true, nil, nil}, // "written": the junk input is in the output directory
		{"memory limit", func(o *Options, dir string) { o.MemoryLimit = 1 << 40 }, "", remix.Append, true, nil, nil},
		// A program whose libraries neither the root nor the image has.
		{"missing libraries", func(o *Options, dir string) {
			o.Overlay.Root, o.Overlay.Add = lonely, []string{"parted"}
		}, "missing libraries (--allow-missing makes this a warning)", "", false, nil, nil},
		// --allow-missing: the overlay warns, and so does the check of
		// the finished tree, which finds the same libraries missing.
		{"allow missing", func(o *Options, dir string) {
			o.Overlay.Root, o.Overlay.Add, o.Overlay.AllowMissing = lonely, []string{"parted"}, true
		}, "", remix.Append, true, nil, func(t *testing.T, res *Result) {
			var missing int
			for _, f := range res.Findings {
				if f.Check == verify.CheckLibraries && f.Path == "usr/sbin/parted" {
					missing++
					if f.Severity != verify.Warning {
						t.Errorf("finding %s with --allow-missing", f)
					}
				}
			}
			if missing == 0 || !slices.ContainsFunc(res.Overlay.Warnings, func(w string) bool { return strings.Contains(w, "libparted.so.2 not found") }) {
				t.Errorf("--allow-missing: findings %v, overlay warnings %q", res.Findings, res.Overlay.Warnings)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var prog steps
			opt := Options{Input: im.Path, Output: filepath.Join(dir, "rescue.img"), Kver: kver,
				CheckKver: func(string) error { return nil },
				Overlay:   overlay.Options{Root: root, Preset: "none", Add: []string{"sh"}}, Progress: &prog}
			tc.opt(&opt, dir)
			limit := debug.SetMemoryLimit(-1)
			res, err := Build(context.Background(), opt)
			if after := debug.SetMemoryLimit(-1); after != limit {
				t.Errorf("memory limit %d after Build, %d before", after, limit)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Build error %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			left, _ := os.ReadDir(dir)
			if !tc.written {
				if len(left) != 0 {
					t.Errorf("%d files left in the output directory: %v", len(left), left[0].Name())
				}
			}
			if after, _ := os.ReadFile(im.Path); !bytes.Equal(after, input) {
				t.Fatal("the input changed")
			}
			if err != nil {
				return
			}
			if res.Mode != tc.wantMode || res.Kver != kver || res.Plan == nil || res.Overlay == nil {
				t.Errorf("result mode %q kver %q plan %v overlay %v; want %q %q", res.Mode, res.Kver, res.Plan != nil, res.Overlay != nil, tc.wantMode, kver)
			}
			if tc.wantSteps != nil && !slices.Equal(prog.log, tc.wantSteps) {
				t.Errorf("progress %q, want %q", prog.log, tc.wantSteps)
			}
			if prog.read == 0 {
				t.Error("no progress while reading")
			}
			if !tc.written {
				if res.Write != nil {
					t.Error("a dry run has a write result")
				}
				return
			}
			st, err := os.Stat(res.Output)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || st.Mode().Perm() != 0o600 || st.Size() != res.Write.Bytes || res.Write.Mode != tc.wantMode {
				t.Errorf("output %s: %d files, mode %v, %d bytes, written %d in %s", res.Output, len(left), st.Mode(), st.Size(), res.Write.Bytes, res.Write.Mode)
			}
			if err := res.Write.Verify(context.Background(), res.Output); err != nil {
				t.Error(err)
			}
			// The lab image is far below LargeImage, and above 1 MiB.
			if warned := len(res.Warnings) == 1 && strings.Contains(res.Warnings[0], "boot loaders often fail to load an initrd past 1 MiB"); warned != (opt.LargeImage != 0) {
				t.Errorf("size warnings %q with LargeImage %d", res.Warnings, opt.LargeImage)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			if tc.wantMode == remix.Append {
				out, _ := os.ReadFile(res.Output)
				if !bytes.HasPrefix(out, input) {
					t.Error("an append does not start with the input")
				}
			}
		})
	}
}

// lonelyRoot makes a root holding only the lab root's parted,
// none of its libraries nor its interpreter.
func lonelyRoot(t *testing.T, labRoot string) string {
	t.Helper()
	src, err := filepath.EvalSymlinks(filepath.Join(labRoot, "usr/sbin/parted"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/sbin/parted"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// KernelError's text and whether the caller must name the kernel.
func TestKernelError(t *testing.T) {
	upper := strings.ToUpper
	for _, tc := range []struct {
		err   KernelError
		usage bool
		want  string
	}{
		{KernelError{Input: "i", Found: nil}, true, "i holds no kernel modules: name the kernel with --kver"},
		{KernelError{Input: "i", Found: []string{"a", "b"}}, true, "i holds modules for 2 kernels (A, B): name one with --kver"},
		{KernelError{Input: "i", Found: []string{"a"}, Kver: "c"}, false, "i holds modules for A, not for --kver c"},
	} {
		if got := tc.err.Message(upper); got != tc.want {
			t.Errorf("Message = %q, want %q", got, tc.want)
		}
		if tc.err.Usage() != tc.usage {
			t.Errorf("%q: Usage = %v", tc.want, tc.err.Usage())
		}
	}
}

func TestKeepForAppend(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep bool
	}{
		{"usr/lib/modules/6.1.0/kernel/fs/ext4/ext4.ko", false},
		{"lib/modules/6.1.0/kernel/fs/ext4/ext4.ko.xz", false},
		{"./usr/lib/firmware/i915/x.bin", false},
		{"kernel/x86/microcode/GenuineIntel.bin", false},
		{"usr/lib/modules/6.1.0/modules.dep", true},
		{"init", true},
		{"etc/udev/rules.d/64-lvm.rules", true},
	} {
		if got := keepForAppend(tc.name, 1); got != tc.keep {
			t.Errorf("keepForAppend(%q) = %v, want %v", tc.name, got, tc.keep)
		}
	}
}

// TestBuildDeterministic: the rescue preset's build splices the root's
// large files, compressed while the input is decoded; the output is the
// same bytes whatever the timing and the number of cores.
func TestBuildDeterministic(t *testing.T) {
	lab := testtool.OpenLab(t)
	im := lab.Image(t, "itools-zstd")
	root, kver := lab.Env["LAB_ROOT"], lab.Env["LAB_KVER"]
	dir := t.TempDir()
	var outs [][]byte
	for i, procs := range []int{1, 2, 2} {
		prev := runtime.GOMAXPROCS(procs)
		out := filepath.Join(dir, fmt.Sprintf("rescue-%d.img", i))
		res, err := Build(context.Background(), Options{Input: im.Path, Output: out, Kver: kver,
			Overlay: overlay.Options{Root: root, Drivers: []string{}}})
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// Every body of spliceMin bytes or more is a frame of its own:
		// at least that many frames (the 2 MiB frames of 33 MB of new
		// entries alone would be fewer).
		large := 0
		segs, err := remix.Scan(context.Background(), bytes.NewReader(b[res.Write.NewSegmentOffset:]), remix.ScanOptions{},
			func(_ *remix.Segment, _ int, h *newc.Header, _ io.Reader) error {
				if h.Type() == newc.TypeReg && h.Size >= spliceMin {
					large++
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if large == 0 || len(segs) < large {
			t.Errorf("GOMAXPROCS=%d: %d frames for %d bodies of %d bytes or more: not spliced", procs, len(segs), large, spliceMin)
		}
		outs = append(outs, b)
	}
	for i := range outs {
		if !bytes.Equal(outs[i], outs[0]) {
			t.Errorf("build %d differs from the first", i)
		}
	}
}
