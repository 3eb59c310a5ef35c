package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

// hostOnlyImage is one image of scripts/hostonly.sh.
type hostOnlyImage struct{ name, family, path string }

// hostOnlyImages builds (or finds cached) the host-only images of
// scripts/hostonly.sh for the main lab's kernel: one per generator family,
// each holding the drivers of a virtio machine and none of the others.
func hostOnlyImages(t *testing.T, l *lab) ([]hostOnlyImage, map[string]string) {
	t.Helper()
	for _, p := range []string{"unshare", "chroot", "flock"} {
		testtool.Require(t, p)
	}
	dir, env := cachedStage(t, "hostonly.sh", l.dir, "hostonly.env")
	if env["HOSTONLY_KVER"] != l.env["LAB_KVER"] || env["HOSTONLY_ROOT_UUID"] != l.env["LAB_MARKER_UUID"] {
		t.Fatalf("hostonly.env: kernel %q, root %q; the lab's are %q, %q", env["HOSTONLY_KVER"], env["HOSTONLY_ROOT_UUID"],
			l.env["LAB_KVER"], l.env["LAB_MARKER_UUID"])
	}
	var out []hostOnlyImage
	for _, f := range strings.Fields(env["HOSTONLY_IMAGES"]) {
		name, family, _ := strings.Cut(f, ":")
		out = append(out, hostOnlyImage{name, family, filepath.Join(dir, name+".img")})
	}
	if len(out) != 3 {
		t.Fatalf("hostonly.env lists %d images, want one per family: %q", len(out), env["HOSTONLY_IMAGES"])
	}
	return out, env
}

// hostOnlyArgs name the root by its UUID, whatever bus its disk is on.
// rd.retry= shortens dracut's wait for a root that never comes, from 180 s
// to 20 s after udev settles, with and without systemd (rd.timeout= would
// count from the start of the boot, which under TCG can come before the
// disk's driver loads); initramfs-tools gives up after 30 s by itself.
// noresume skips the wait for the swap device the lab's root names.
func hostOnlyArgs(l *lab) string {
	return "root=UUID=" + l.env["LAB_MARKER_UUID"] + " rootfstype=ext4 ro noresume rd.retry=20"
}

// rootNotFound is what each family prints when the root never shows up:
// initramfs-tools "Gave up waiting for root file system device", dracut's
// initqueue (with or without systemd) "Could not boot.", and its emergency
// hook's "/dev/disk/by-uuid/... does not exist".
const rootNotFound = `Gave up waiting for root|Could not boot|does not exist`

// nvmeClass is the PCI class of an NVMe controller as the kernel logs it at
// enumeration: the device was there for a driver to take.
var nvmeClass = regexp.MustCompile(`pci [0-9a-f:.]+: \[[0-9a-f]{4}:[0-9a-f]{4}\] type 00 class 0x010802`)

// TestHostOnlyLab is issue 11 point 2: host-only images of every family
// (scripts/hostonly.sh: initramfs-tools MODULES=list, dracut with and
// without systemd given their drivers) hold the drivers of a virtio machine
// and none of the others, so they are real host-only images: with the
// root's disk on virtio-blk each mounts the root and reaches the marker
// (positive control), and the same image, arguments and disk behind an
// NVMe controller never find the root (negative control). Boots run two at
// a time.
func TestHostOnlyLab(t *testing.T) {
	l := openLab(t)
	testtool.Require(t, "qemu-system-x86_64")
	images, env := hostOnlyImages(t, l)
	if slices.Contains(strings.Fields(env["HOSTONLY_BUILTIN"]), "nvme") {
		t.Fatalf("the lab kernel has nvme built in: no image can lack it")
	}
	for _, im := range images {
		mods, err := os.ReadFile(filepath.Join(filepath.Dir(im.path), im.name+".modules"))
		if err != nil {
			t.Fatal(err)
		}
		have := strings.Fields(string(mods))
		for _, m := range strings.Fields(env["HOSTONLY_ABSENT"]) {
			if slices.Contains(have, m) {
				t.Errorf("%s holds %s", im.name, m)
			}
		}
		if !slices.Contains(have, "virtio_blk") {
			t.Errorf("%s holds no virtio_blk", im.name)
		}
		for _, bus := range []string{"virtio", "nvme"} {
			t.Run(im.name+"/"+bus, func(t *testing.T) {
				t.Parallel()
				m := vm{initrd: im.path, args: hostOnlyArgs(l), disks: []vmDisk{{path: l.env["LAB_MARKER_DISK"], bus: bus}}}
				if bus == "virtio" {
					m.expect = l.env["LAB_MARKER"]
					bootVM(t, l, m)
					return
				}
				m.expect, m.fails = rootNotFound, []string{l.env["LAB_MARKER"]}
				log, _ := bootVM(t, l, m)
				if !nvmeClass.MatchString(log) {
					t.Error("the console shows no NVMe controller on the PCI bus")
				}
				t.Logf("%s", regexp.MustCompile(rootNotFound).FindString(log))
			})
		}
	}
}
