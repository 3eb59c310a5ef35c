package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
)

// The boot integration (issue 5) tested with the real tools of a Debian 12
// root: systemd's kernel-install and its plugins, run-parts over the
// kernel hook directories, update-initramfs, grub-mkconfig and
// grub-script-check. Each test works on a throwaway copy of the lab root:
// an overlay mount whose lower layer is the cached lab (never written) and
// whose upper layer is a temporary directory, with initrd-remix installed by
// `make install DESTDIR=`.

// makeBinary builds the static binary once per test with the Makefile.
func makeBinary(t *testing.T) string {
	t.Helper()
	testtool.Require(t, "make")
	bin := filepath.Join(t.TempDir(), "initrd-remix")
	cmd := exec.Command("make", "-s", "-C", "../..", "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make: %v\n%s", err, out)
	}
	return bin
}

// labCopy is a throwaway copy of the lab root with initrd-remix installed.
type labCopy struct {
	t    *testing.T
	dir  string // the merged root
	kver string
	env  []string // extra environment for commands in the root
}

func mountOrFail(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func unmount(t *testing.T, dir string) {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		// A process of the test may still hold it: detach, never leave
		// the lab's lower layer mounted forever.
		if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
			t.Errorf("umount %s: %v: %s / %s", dir, err, out, out2)
		}
	}
}

func newLabCopy(t *testing.T, l *lab, bin string) *labCopy {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "the lab root tests mount an overlay and chroot: they need root")
	}
	testtool.Require(t, "chroot")
	root := l.env["LAB_ROOT"]
	if _, err := os.Stat(filepath.Join(root, "usr/bin/kernel-install")); err != nil {
		t.Fatalf("the lab root has no kernel-install: %v", err)
	}
	tmp := t.TempDir()
	c := &labCopy{t: t, dir: filepath.Join(tmp, "root"), kver: l.env["LAB_KVER"]}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mountOrFail(t, "-t", "overlay", "overlay", "-o",
		fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", root, filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")), c.dir)
	t.Cleanup(func() { unmount(t, c.dir) })
	for _, m := range [][]string{{"-t", "proc", "proc"}, {"-t", "sysfs", "sysfs"}, {"--bind", "/dev"}} {
		target := filepath.Join(c.dir, map[string]string{"proc": "proc", "sysfs": "sys", "/dev": "dev"}[m[len(m)-1]])
		mountOrFail(t, append(m, target)...)
		t.Cleanup(func() { unmount(t, target) })
	}
	cmd := exec.Command("make", "-s", "-C", "../..", "install", "BIN="+bin, "DESTDIR="+c.dir, "PREFIX=/usr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	return c
}

func (c *labCopy) path(p string) string { return filepath.Join(c.dir, p) }

func (c *labCopy) write(p, content string) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.path(p)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.path(p), []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// run runs a command in the root with a clean environment and returns its
// combined output and error.
func (c *labCopy) run(env []string, args ...string) (string, error) {
	c.t.Helper()
	full := append([]string{c.dir, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, c.env...)
	full = append(append(full, env...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "chroot", full...).CombinedOutput()
	c.t.Logf("%s %s:\n%s", strings.Join(env, " "), strings.Join(args, " "), out)
	return string(out), err
}

// mustRun fails the test when the command fails: the hooks must never make
// a kernel installation fail.
func (c *labCopy) mustRun(env []string, args ...string) string {
	c.t.Helper()
	out, err := c.run(env, args...)
	if err != nil {
		c.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *labCopy) kernelInstall(verb string) string {
	c.t.Helper()
	args := []string{"kernel-install", verb, c.kver}
	if verb == "add" {
		args = append(args, "/boot/vmlinuz-"+c.kver)
	}
	return c.mustRun(nil, args...)
}

func (c *labCopy) runParts(dir string, env ...string) string {
	c.t.Helper()
	return c.mustRun(env, "run-parts", "--verbose", "--arg="+c.kver, "--arg=/boot/vmlinuz-"+c.kver, dir)
}

// ours lists every file under /boot whose name carries initrd-remix.
func (c *labCopy) ours() []string {
	var out []string
	filepath.WalkDir(c.path("boot"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "initrd-remix") {
			out = append(out, strings.TrimPrefix(p, c.dir))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (c *labCopy) store() bootentry.Store { return bootentry.Store{Root: c.dir, BootRoot: "/boot"} }

// checkRescueImage opens the image as the kernel would see it.
func (c *labCopy) checkRescueImage(p string) {
	c.t.Helper()
	img, err := remix.Open(context.Background(), c.path(p), remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		c.t.Fatalf("rescue image %s: %v", p, err)
	}
	defer img.Close()
	if kv := remix.KernelVersions(img.Tree); len(kv) != 1 || kv[0] != c.kver {
		c.t.Errorf("rescue image %s holds modules for %v, want %s", p, kv, c.kver)
	}
}

// checkEntry checks the one rescue entry a bls installation must have.
func (c *labCopy) checkEntry(machineID string) bootentry.Found {
	c.t.Helper()
	all, err := c.store().List("")
	if err != nil {
		c.t.Fatal(err)
	}
	var found []bootentry.Found // this installation's; another may share $BOOT
	for _, f := range all {
		if f.Owned {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		c.t.Fatalf("%d rescue entries, want 1: %+v (files %v)", len(found), found, c.ours())
	}
	f := found[0]
	if len(f.Problems) > 0 {
		c.t.Fatalf("rescue entry %s: %v", f.Name, f.Problems)
	}
	e := f.Entry
	dir := "/boot/" + machineID + "/" + c.kver
	if f.Name != machineID+"-"+c.kver+bootentry.Suffix || e.Version != c.kver || e.MachineID != machineID ||
		e.Linux != dir+"/linux" || len(e.Initrd) != 1 || e.Initrd[0] != dir+"/initrd-remix-rescue.img" {
		c.t.Errorf("rescue entry %s:\n%s", f.Name, e.Marshal())
	}
	if !strings.Contains(e.Title, "Debian GNU/Linux 12") || !strings.Contains(e.Title, c.kver) || !strings.Contains(e.Title, "rescue") {
		c.t.Errorf("title %q must name the distribution, the kernel and rescue", e.Title)
	}
	for _, bad := range []string{"rdinit=", "initrd=", "BOOT_IMAGE=", " -- "} {
		if strings.Contains(" "+e.Options+" ", bad) {
			c.t.Errorf("options %q carry %q", e.Options, bad)
		}
	}
	kernel, _ := os.ReadFile(c.path("/boot/vmlinuz-" + c.kver))
	if linux, _ := os.ReadFile(c.path(e.Linux)); !bytes.Equal(kernel, linux) || len(kernel) == 0 {
		c.t.Errorf("%s is not the kernel /boot/vmlinuz-%s", e.Linux, c.kver)
	}
	c.checkRescueImage(e.Initrd[0])
	// The installed static binary agrees, inside the root.
	c.mustRun(nil, "initrd-remix", "entry", "list", "--check")
	return f
}

// TestLabKernelInstall: with layout=bls, kernel-install add yields the
// rescue entry and files, all valid, beside systemd's own entry; a
// machine-id change leaves one rescue entry, not two; kernel-install remove
// leaves nothing of ours.
func TestLabKernelInstall(t *testing.T) {
	l := openLab(t)
	c := newLabCopy(t, l, makeBinary(t))
	c.write("/etc/kernel/install.conf", "layout=bls\n")
	// The running kernel's command line in a VM can carry rdinit= and init
	// arguments: the rescue entry must not inherit them.
	c.write("/etc/kernel/cmdline", "root=/dev/vda ro console=ttyS0 rdinit=/bin/sh -- --init-arg\n")
	mid := bootentry.MachineID(c.dir)
	if mid == "" {
		t.Fatal("the lab root has no machine-id")
	}
	c.kernelInstall("add")
	c.checkEntry(mid)
	sysEntry := c.path("/boot/loader/entries/" + mid + "-" + c.kver + ".conf")
	if _, err := os.Stat(sysEntry); err != nil {
		t.Fatalf("systemd's own entry: %v", err)
	}
	want := []string{"/boot/" + mid + "/" + c.kver + "/initrd-remix-rescue.img", "/boot/loader/entries/" + mid + "-" + c.kver + bootentry.Suffix}
	if got := c.ours(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files after add: %v, want %v", got, want)
	}

	// Another installation shares this $BOOT and has a rescue entry for
	// the same kernel: nothing here may touch it (issue 16, point 3).
	const otherID = "ffffffffffffffffffffffffffffffff"
	other := []string{"/boot/" + otherID + "/" + c.kver + "/initrd-remix-rescue.img", "/boot/loader/entries/" + otherID + "-" + c.kver + bootentry.Suffix}
	c.write(other[0], "the other installation's rescue image")
	c.write("/boot/"+otherID+"/"+c.kver+"/linux", "the other installation's kernel")
	c.write(other[1], "title other\nversion "+c.kver+"\nlinux /boot/"+otherID+"/"+c.kver+"/linux\ninitrd "+other[0]+"\n")
	notOther := func(files []string) []string {
		var out []string
		for _, f := range files {
			if !strings.Contains(f, otherID) {
				out = append(out, f)
			}
		}
		return out
	}

	// The machine ID changes (a cloned VM, a reinstalled system).
	const newID = "0123456789abcdef0123456789abcdef"
	c.write("/etc/machine-id", newID+"\n")
	c.kernelInstall("add")
	c.checkEntry(newID)
	want = []string{"/boot/" + newID + "/" + c.kver + "/initrd-remix-rescue.img", "/boot/loader/entries/" + newID + "-" + c.kver + bootentry.Suffix}
	if got := notOther(c.ours()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files after the machine-id change: %v, want %v", got, want)
	}

	c.kernelInstall("remove")
	if got := notOther(c.ours()); len(got) != 0 {
		t.Errorf("kernel-install remove left %v", got)
	}
	for _, f := range other {
		if _, err := os.Stat(c.path(f)); err != nil {
			t.Errorf("the other installation's %s: %v", f, err)
		}
	}
	if _, err := os.Stat(sysEntry); err != nil {
		t.Errorf("systemd's entry of the first machine ID (not ours) must stay: %v", err)
	}
}

// TestLabDebianHooks: run-parts over /etc/kernel/postinst.d creates the
// rescue image in /boot, update-initramfs -u refreshes it through
// /etc/initramfs/post-update.d, grub-mkconfig offers it, run-parts over
// postrm.d removes it and the regenerated menu no longer names it.
func TestLabDebianHooks(t *testing.T) {
	l := openLab(t)
	c := newLabCopy(t, l, makeBinary(t))
	rescue := "/boot/initrd-remix-rescue-" + c.kver + ".img"
	initrd := "/boot/initrd.img-" + c.kver

	// INITRD=No is how Debian tells initramfs-tools' hook to leave the
	// initrd alone (it is the lab's, made moments ago): this run shows that
	// our hook alone makes the rescue image.
	out := c.runParts("/etc/kernel/postinst.d", "INITRD=No")
	if i, j := strings.Index(out, "postinst.d/initramfs-tools"), strings.Index(out, "postinst.d/initrd-remix"); i < 0 || j < i {
		t.Errorf("run-parts order: initramfs-tools must run before initrd-remix:\n%s", out)
	}
	c.checkRescueImage(rescue)
	st1, err := os.Stat(c.path(rescue))
	if err != nil {
		t.Fatal(err)
	}

	// A real update-initramfs regenerates the initrd and runs
	// post-update.d: the rescue image follows.
	time.Sleep(1100 * time.Millisecond) // distinct mtimes on any file system
	c.mustRun(nil, "update-initramfs", "-u", "-k", c.kver)
	st2, err := os.Stat(c.path(rescue))
	if err != nil {
		t.Fatal(err)
	}
	ist, _ := os.Stat(c.path(initrd))
	if !st2.ModTime().After(st1.ModTime()) || st2.ModTime().Before(ist.ModTime()) {
		t.Errorf("update-initramfs did not refresh the rescue image (rescue %v then %v, initrd %v)", st1.ModTime(), st2.ModTime(), ist.ModTime())
	}
	c.checkRescueImage(rescue)
	// The kernel package's postinst.d runs after update-initramfs did: the
	// rescue image is already newer than the initrd, no second build.
	c.runParts("/etc/kernel/postinst.d", "INITRD=No")
	if st3, err := os.Stat(c.path(rescue)); err != nil || !st3.ModTime().Equal(st2.ModTime()) {
		t.Errorf("postinst.d rebuilt a rescue image that was up to date (%v)", err)
	}

	// GRUB: grub-mkconfig cannot run here (its grub-probe finds no block
	// device under an overlay root), so our script runs as grub-mkconfig
	// runs it, with the real grub-mkconfig_lib and /etc/default/grub, and
	// grub-script-check parses what it printed.
	if _, err := os.Stat(c.path("/usr/share/grub/grub-mkconfig_lib")); err != nil {
		testtool.Missing(t, "the lab root has no grub-mkconfig_lib (grub2-common; a newer lab has it): %v", err)
	}
	entry := c.grubRescueEntry()
	if entry == "" {
		t.Fatal("the GRUB script printed no rescue entry")
	}
	for _, want := range []string{"with Linux " + c.kver + " (initrd-remix rescue)", "linux\t'/boot/vmlinuz-" + c.kver + "' ", "initrd\t'" + rescue + "'\n"} {
		if !strings.Contains(entry, want) {
			t.Errorf("rescue menu entry lacks %q:\n%s", want, entry)
		}
	}

	// Kernel removal: initramfs-tools deletes the initrd, we delete the
	// rescue image before zz-update-grub regenerates the menu.
	out = c.runParts("/etc/kernel/postrm.d")
	if i, j, k := strings.Index(out, "postrm.d/initramfs-tools"), strings.Index(out, "postrm.d/initrd-remix"), strings.Index(out, "postrm.d/zz-update-grub"); i < 0 || j < i || k < j {
		t.Errorf("run-parts order: initramfs-tools, initrd-remix, zz-update-grub:\n%s", out)
	}
	if got := c.ours(); len(got) != 0 {
		t.Errorf("postrm.d left %v", got)
	}
	if e := c.grubRescueEntry(); e != "" {
		t.Errorf("the GRUB script still prints a rescue entry after the kernel was removed:\n%s", e)
	}
}

// grubRescueEntry runs /etc/grub.d/15_initrd-remix the way grub-mkconfig
// does (pkgdatadir and /etc/default/grub exported), checks its output with
// grub-script-check and returns the rescue menu entry in it, if any.
func (c *labCopy) grubRescueEntry() string {
	c.t.Helper()
	c.mustRun(nil, "sh", "-c", `set -e -a
[ ! -f /etc/default/grub ] || . /etc/default/grub
pkgdatadir=/usr/share/grub
/etc/grub.d/15_initrd-remix >/tmp/15_initrd-remix.cfg`)
	cfg, err := os.ReadFile(c.path("/tmp/15_initrd-remix.cfg"))
	if err != nil {
		c.t.Fatal(err)
	}
	if len(cfg) == 0 {
		return "" // grub-script-check refuses an empty script
	}
	c.mustRun(nil, "grub-script-check", "/tmp/15_initrd-remix.cfg")
	return rescueMenuEntry(string(cfg))
}

// rescueMenuEntry returns the first menuentry block of our GRUB script.
func rescueMenuEntry(cfg string) string {
	i := strings.Index(cfg, "menuentry '")
	for i >= 0 {
		block := cfg[i:]
		if end := strings.Index(block, "\n}"); end >= 0 {
			block = block[:end+2]
		}
		if strings.Contains(block, "initrd-remix rescue") {
			return block
		}
		next := strings.Index(cfg[i+1:], "menuentry '")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return ""
}

// TestLabHookBadInputs: odd hosts and bad input (issue 5 point 7). The
// kernel installation always succeeds, the message is clear, and nothing of
// ours is left half-written.
func TestLabHookBadInputs(t *testing.T) {
	l := openLab(t)
	bin := makeBinary(t)
	type tc struct {
		name  string
		setup func(c *labCopy)
		run   func(c *labCopy) string
		msg   string // in the output
		want  int    // rescue files (image or entry) expected afterwards
	}
	add := func(c *labCopy) string { return c.kernelInstall("add") }
	postinst := func(c *labCopy) string { return c.runParts("/etc/kernel/postinst.d", "INITRD=No") }
	layout := func(s string) func(c *labCopy) {
		return func(c *labCopy) { c.write("/etc/kernel/install.conf", "layout="+s+"\n") }
	}
	noInitrd := func(c *labCopy) {
		if err := os.Remove(c.path("/boot/initrd.img-" + c.kver)); err != nil {
			c.t.Fatal(err)
		}
	}
	readOnlyBoot := func(c *labCopy) {
		t, b := c.t, c.path("/boot")
		mountOrFail(t, "--bind", b, b)
		t.Cleanup(func() { unmount(t, b) })
		mountOrFail(t, "-o", "remount,bind,ro", b)
	}
	// fullBoot puts /boot on a tmpfs just large enough for what it holds.
	fullBoot := func(c *labCopy) {
		t, b := c.t, c.path("/boot")
		saved := t.TempDir()
		if out, err := exec.Command("cp", "-a", b+"/.", saved).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		var size int64
		filepath.WalkDir(saved, func(p string, d fs.DirEntry, err error) error {
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				size += (fi.Size() + 4095) &^ 4095
			}
			return nil
		})
		mountOrFail(t, "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size+(1<<20)), "tmpfs", b)
		t.Cleanup(func() { unmount(t, b) })
		if out, err := exec.Command("cp", "-a", saved+"/.", b).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	both := func(fs ...func(c *labCopy)) func(c *labCopy) {
		return func(c *labCopy) {
			for _, f := range fs {
				f(c)
			}
		}
	}
	cases := []tc{
		{"no initrd/kernel-install", both(layout("bls"), noInitrd), add, "no initrd for kernel", 0},
		{"no initrd/postinst.d", noInitrd, postinst, "no initrd for kernel", 0},
		{"read-only boot/kernel-install", both(layout("other"), readOnlyBoot), add, "WARNING: could not build the rescue image", 0},
		{"read-only boot/postinst.d", readOnlyBoot, postinst, "WARNING: could not build the rescue image", 0},
		{"full boot/kernel-install", both(layout("other"), fullBoot), add, "WARNING: could not build the rescue image", 0},
		{"full boot/postinst.d", fullBoot, postinst, "WARNING: could not build the rescue image", 0},
		{"unknown layout", layout("weird"), add, "unknown kernel-install layout 'weird'", 0},
		{"uki layout without a UKI", layout("uki"), add, "layout=uki but no unified kernel image to start from", 0},
		{"corrupt initrd", both(layout("bls"), func(c *labCopy) {
			c.write("/boot/initrd.img-"+c.kver, "this is not an initrd\n")
		}), add, "WARNING: could not build the rescue image", 0},
		{"hooks = no/kernel-install", both(layout("bls"), func(c *labCopy) {
			c.write("/etc/initrd-remix/initrd-remix.conf", "# off\nhooks = no\n")
		}), add, "", 0},
		{"hooks = no/postinst.d", func(c *labCopy) { c.write("/etc/initrd-remix/conf.d/10-off.conf", "hooks=no\n") }, postinst, "", 0},
		{"hooks = no overridden by a drop-in", func(c *labCopy) {
			c.write("/etc/initrd-remix/initrd-remix.conf", "hooks = no\n")
			c.write("/etc/initrd-remix/conf.d/90-on.conf", "hooks = yes\n")
		}, postinst, "rescue image /boot/initrd-remix-rescue-", 1},
		// Initrds on the command line (an early microcode archive and the
		// main one, say) are loaded one after the other: the rescue image
		// starts from their concatenation.
		{"initrds passed as arguments", layout("bls"), func(c *labCopy) string {
			i := "/boot/initrd.img-" + c.kver
			return c.mustRun(nil, "kernel-install", "add", c.kver, "/boot/vmlinuz-"+c.kver, i, i)
		}, "rescue image", 2},
		// No machine ID: kernel-install makes up a new one on every run,
		// the worst case of a machine-id change.
		{"missing machine-id", both(layout("bls"), func(c *labCopy) {
			if err := os.Remove(c.path("/etc/machine-id")); err != nil {
				c.t.Fatal(err)
			}
		}), func(c *labCopy) string {
			out := add(c) + add(c)
			found, err := c.store().List("")
			if err != nil || len(found) != 1 || len(found[0].Problems) > 0 {
				c.t.Errorf("after two adds without a machine-id: %+v %v (files %v)", found, err, c.ours())
			}
			return out + c.kernelInstall("remove")
		}, "rescue image", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newLabCopy(t, l, bin)
			tc.setup(c)
			before := c.ours()
			out := tc.run(c)
			if !strings.Contains(out, tc.msg) {
				t.Errorf("output lacks %q", tc.msg)
			}
			got := c.ours()
			if len(got)-len(before) != tc.want {
				t.Errorf("rescue files %v, want %d new", got, tc.want)
			}
			// Nothing half-written: no temporary files either.
			filepath.WalkDir(c.path("boot"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && (strings.Contains(d.Name(), ".tmp") || strings.HasPrefix(d.Name(), ".")) {
					t.Errorf("left behind: %s", p)
				}
				return nil
			})
		})
	}
}

// TestLabPluginRescueBoot boots the rescue image that the kernel-install
// plugin produced, with the kernel and options its boot entry names: it
// must reach the rescue shell and must not reach the root on the disk.
func TestLabPluginRescueBoot(t *testing.T) {
	t.Parallel()
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	c := newLabCopy(t, l, makeBinary(t))
	c.write("/etc/kernel/install.conf", "layout=bls\n")
	c.write("/etc/kernel/cmdline", "root=/dev/vda ro rdinit=/bin/sh\n")
	c.kernelInstall("add")
	f := c.checkEntry(bootentry.MachineID(c.dir))
	logf := filepath.Join(t.TempDir(), "console.log")
	cmd := exec.Command("../../scripts/boot.sh", "--kernel", c.path(f.Entry.Linux), "--initrd", c.path(f.Entry.Initrd[0]),
		"--disk", l.env["LAB_MARKER_DISK"], "--append", f.Entry.Options, "--expect", "initrd-remix rescue system",
		"--fail", l.env["LAB_MARKER"], "--timeout", "240", "--log", logf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		data, _ := os.ReadFile(logf)
		lines := strings.Split(string(data), "\n")
		t.Fatalf("rescue boot: %v\n%s\nlast console lines:\n%s", err, out, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	t.Logf("rescue boot: %s", strings.TrimSpace(string(out)))
}
