package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/overlay"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

// TestDriversLab builds, for every release of the lab, the initramfs-tools
// image with its own root and the default driver classes: each class adds
// what the image lacks, the must-have modules are in the result (added,
// already there, or built in), verify passes, and the kernel's own
// modprobe, reading the result's rewritten indexes, resolves device
// aliases to the same modules as from the root. The dracut image with
// systemd goes through --dry-run --json, which must list every class with
// its size; a root of another release adds no drivers and says so once.
func TestDriversLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	modprobe := testtool.Require(t, "modprobe")
	// Device aliases udev asks modprobe for, and the module the image's
	// indexes must resolve each to (as the root's do).
	aliases := map[string]string{
		"pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02": "nvme",   // QEMU's NVMe controller, class 0108 prog-if 02
		"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01": "ahci",   // ICH9 AHCI (QEMU q35)
		"pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00": "e1000e", // 82574L (QEMU's e1000e)
	}
	labs := labReleases(t)
	for _, l := range labs {
		t.Run(l.release, func(t *testing.T) {
			t.Parallel()
			root, kver := l.env["LAB_ROOT"], l.env["LAB_KVER"]
			itools := l.rel.ImagesOf("initramfs-tools")
			if len(itools) == 0 {
				t.Fatalf("the %s lab has no initramfs-tools image", l.release)
			}
			out := filepath.Join(t.TempDir(), "rescue.img")
			code, stdout, errs := cli(t, "build", "--json", "--root", root, "--input", itools[0].Path, "--output", out, "--kver", kver)
			if code != exitOK {
				t.Fatalf("build: exit %d: %s", code, errs)
			}
			var rep buildReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatal(err)
			}
			checkDriverReport(t, rep.Overlay, root, kver)
			in, _ := os.Stat(itools[0].Path)
			t.Logf("%s: %d -> %d bytes", itools[0].Name, in.Size(), rep.Bytes)
			if code, vout, _ := cli(t, "verify", out); code != exitOK {
				t.Errorf("verify: exit %d\n%s", code, vout)
			}
			img, err := remix.Open(context.Background(), out, remix.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			base := filepath.Join(t.TempDir(), "image")
			// modprobe -R reads only the indexes.
			treetest.Unpack(t, img.Tree, "lib/modules/"+kver, filepath.Join(base, "lib/modules", kver),
				func(rel string) bool { return !strings.Contains(rel, ".ko") })
			for alias, want := range aliases {
				resolve := func(dir string) string {
					o, err := exec.Command(modprobe, "-d", dir, "-S", kver, "-R", alias).CombinedOutput()
					if err != nil {
						t.Errorf("modprobe -d %s -R %s: %v\n%s", dir, alias, err, o)
					}
					return strings.TrimSpace(string(o))
				}
				got, fromRoot := resolve(base), resolve(root)
				if !slices.Contains(strings.Fields(got), want) || got != fromRoot {
					t.Errorf("%s resolves to %q in the image, %q in the root; want %s", alias, got, fromRoot, want)
				}
			}

			for _, im := range l.rel.ImagesOf("dracut-systemd") {
				code, stdout, errs := cli(t, "build", "--dry-run", "--json", "--root", root, "--input", im.Path, "--kver", kver)
				if code != exitOK {
					t.Fatalf("%s: build --dry-run: exit %d: %s", im.Name, code, errs)
				}
				var rep buildReport
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatal(err)
				}
				checkDriverReport(t, rep.Overlay, root, kver)
				code, text, _ := cli(t, "build", "--dry-run", "--root", root, "--input", im.Path, "--kver", kver, "--drivers", "net", "--omit-module", "e1000e")
				if code != exitOK || !strings.Contains(text, "drivers of kernel "+kver) || !strings.Contains(text, "omitted e1000e (--omit-module e1000e)") {
					t.Errorf("%s: build --dry-run --drivers net --omit-module e1000e: exit %d\n%s", im.Name, code, text)
				}
				break
			}
			// A root of another release: no drivers, one warning; asked
			// for explicitly, an error naming the kernel and the root.
			if l != labs[0] {
				other := labs[0].env["LAB_ROOT"]
				code, stdout, errs := cli(t, "build", "--dry-run", "--json", "--preset", "none", "--root", other, "--input", itools[0].Path, "--kver", kver)
				var rep buildReport
				if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Overlay.Drivers) != 0 ||
					!slices.ContainsFunc(rep.Overlay.Warnings, func(w string) bool { return strings.Contains(w, "no driver classes added") }) {
					t.Errorf("root of %s: exit %d, warnings %q, drivers %v: %s", labs[0].release, code, rep.Overlay.Warnings, rep.Overlay.Drivers, errs)
				}
				code, _, errs = cli(t, "build", "--dry-run", "--preset", "none", "--drivers", "storage", "--root", other, "--input", itools[0].Path, "--kver", kver)
				if code != exitFailed || !strings.Contains(errs, "--drivers storage: no modules of kernel "+kver+" in "+other) {
					t.Errorf("explicit --drivers with a root of %s: exit %d: %s", labs[0].release, code, errs)
				}
			}
		})
	}
}

// checkDriverReport: every class is reported with a size, and the modules
// of must are in the result.
func checkDriverReport(t *testing.T, rep *overlay.Report, root, kver string) {
	t.Helper()
	if rep == nil || len(rep.Drivers) != len(overlay.DriverClasses()) {
		t.Fatalf("drivers report: %+v", rep)
	}
	// One of each group a rescue for replacement hardware must have
	// (mptsas: the older LSI driver of QEMU's mptsas1068), unless the
	// kernel has it built in.
	must := [][]string{{"nvme"}, {"ahci"}, {"megaraid_sas"}, {"mpt3sas", "mptsas"}, {"virtio_scsi"}, {"uas"},
		{"xfs"}, {"e1000e"}, {"usbhid"}, {"xhci_hcd", "xhci_pci"}}
	have := map[string]bool{}
	for _, d := range rep.Drivers {
		if len(d.Added) > 0 && d.Bytes <= 0 {
			t.Errorf("%s: %d modules added in %d bytes", d.Class, len(d.Added), d.Bytes)
		}
		for _, list := range [][]string{d.Added, d.Present, d.Builtin} {
			for _, m := range list {
				have[m] = true
			}
		}
		t.Logf("%-7s %4d added (%.1f MiB), %4d present, %3d built in, firmware %d added %d missing",
			d.Class, len(d.Added), float64(d.Bytes)/(1<<20), len(d.Present), len(d.Builtin), len(d.Firmware), len(d.MissingFirmware))
	}
	builtin, _ := os.ReadFile(filepath.Join(root, "lib/modules", kver, "modules.builtin"))
	for _, group := range must {
		ok := false
		for _, m := range group {
			ok = ok || have[m] || strings.Contains(string(builtin), "/"+strings.ReplaceAll(m, "_", "-")+".ko") ||
				strings.Contains(string(builtin), "/"+m+".ko")
		}
		if !ok {
			t.Errorf("none of %q in the rescue image or built into kernel %s", group, kver)
		}
	}
}
