package overlay

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

// fakeKO is a minimal ELF64 relocatable object with a .modinfo section
// holding the given key=value strings, which is all of a module the
// overlay reads.
func fakeKO(modinfo ...string) []byte {
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := uint64(ehsize)
	strOff := infoOff + uint64(len(info))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{uint16(1), uint16(62), uint32(1), uint64(0), uint64(0), shOff, uint32(0),
		uint16(ehsize), uint16(0), uint16(0), uint16(shentsize), uint16(3), uint16(2)} {
		binary.Write(&b, le, v)
	}
	b.Write(info)
	b.Write(shstr)
	for uint64(b.Len()) < shOff {
		b.WriteByte(0)
	}
	sh := func(name, typ uint32, off, size uint64) {
		for _, v := range []any{name, typ, uint64(0), uint64(0), off, size, uint32(0), uint32(0), uint64(1), uint64(0)} {
			binary.Write(&b, le, v)
		}
	}
	sh(0, 0, 0, 0)
	sh(1, 1, infoOff, uint64(len(info)))  // .modinfo, PROGBITS
	sh(10, 3, strOff, uint64(len(shstr))) // .shstrtab, STRTAB
	return b.Bytes()
}

const testKver = "6.1.0-test"

// driverRoot is a root with a kernel's modules in every class and one
// outside them: dependencies, a soft dependency, a built-in module,
// firmware the root has and firmware it lacks.
func driverRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", testKver)
	mods := []struct {
		path string
		deps []string
		info []string
	}{
		{"kernel/drivers/ata/libata.ko", nil, nil},
		{"kernel/drivers/ata/libahci.ko", []string{"kernel/drivers/ata/libata.ko"}, nil},
		{"kernel/drivers/ata/ahci.ko", []string{"kernel/drivers/ata/libahci.ko", "kernel/drivers/ata/libata.ko"}, []string{"alias=pci:v*d*sv*sd*bc01sc06i01*"}},
		{"kernel/drivers/scsi/scsi_transport_sas.ko", nil, nil},
		{"kernel/drivers/scsi/mpt3sas/mpt3sas.ko", []string{"kernel/drivers/scsi/scsi_transport_sas.ko"}, nil},
		{"kernel/drivers/scsi/megaraid/megaraid_sas.ko", nil, nil},
		{"kernel/drivers/nvme/host/nvme-core.ko", nil, nil},
		{"kernel/drivers/nvme/host/nvme.ko", []string{"kernel/drivers/nvme/host/nvme-core.ko"}, nil},
		{"kernel/crypto/crc32c_generic.ko", nil, nil},
		{"kernel/arch/x86/crypto/aesni-intel.ko", nil, nil},
		{"kernel/fs/xfs/xfs.ko", nil, nil},
		{"kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko", nil, nil},
		{"kernel/drivers/net/ethernet/broadcom/bnx2x/bnx2x.ko", nil, []string{"firmware=bnx2x/bnx2x-e2-7.13.21.0.fw"}},
		{"kernel/drivers/net/ethernet/broadcom/tg3.ko", nil, []string{"firmware=tigon/tg3_tso5.bin", "firmware=tigon/tg3.bin"}},
		{"kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko", nil, []string{"firmware=iwlwifi-9000-pu-b0-jf-b0-46.ucode"}},
		{"kernel/drivers/hid/hid.ko", nil, nil},
		{"kernel/drivers/hid/usbhid/usbhid.ko", []string{"kernel/drivers/hid/hid.ko"}, nil},
		{"kernel/sound/core/snd.ko", nil, nil},
	}
	var dep, alias bytes.Buffer
	for _, m := range mods {
		p := filepath.Join(dir, m.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, fakeKO(append([]string{"license=GPL"}, m.info...)...), 0o644); err != nil {
			t.Fatal(err)
		}
		dep.WriteString(m.path + ":")
		for _, d := range m.deps {
			dep.WriteString(" " + d)
		}
		dep.WriteString("\n")
		for _, i := range m.info {
			if a, ok := strings.CutPrefix(i, "alias="); ok {
				alias.WriteString("alias " + a + " " + modName(m.path) + "\n")
			}
		}
	}
	alias.WriteString("alias crc32c crc32c_generic\n")
	files := map[string]string{
		"modules.dep":     dep.String(),
		"modules.alias":   alias.String(),
		"modules.softdep": "softdep xfs pre: crc32c\n",
		"modules.builtin": "kernel/drivers/usb/host/xhci-hcd.ko\nkernel/drivers/input/keyboard/atkbd.ko\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fw := filepath.Join(root, "lib/firmware/bnx2x/bnx2x-e2-7.13.21.0.fw")
	if err := os.MkdirAll(filepath.Dir(fw), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fw, bytes.Repeat([]byte{1}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// driverImage is an image that already holds libata and libahci (and
// modules.dep lines for them) for testKver.
func driverImage(t *testing.T) *remix.Tree {
	t.Helper()
	d := "lib/modules/" + testKver
	ko := remix.BytesContent(fakeKO("license=GPL"))
	tr := treetest.Of(t,
		remix.Dir("lib", 0o755), remix.Dir("lib/modules", 0o755), remix.Dir(d, 0o755),
		remix.Dir(d+"/kernel", 0o755), remix.Dir(d+"/kernel/drivers", 0o755), remix.Dir(d+"/kernel/drivers/ata", 0o755),
		remix.File(d+"/kernel/drivers/ata/libata.ko", 0o644, ko),
		remix.File(d+"/kernel/drivers/ata/libahci.ko", 0o644, ko),
		remix.File(d+"/modules.dep", 0o644, remix.BytesContent([]byte("kernel/drivers/ata/libata.ko:\nkernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko\n"))),
	)
	tr.SetGeneration(1)
	return tr
}

func treeFileText(t *testing.T, tr *remix.Tree, p string) string { return string(treeFile(t, tr, p)) }

// TestDrivers builds crafted module trees into a crafted image: class
// selection, omit with dependants, builtin and present skips, firmware
// present and missing, the default against an explicit choice without
// modules, a class that adds nothing, bad patterns.
func TestDrivers(t *testing.T) {
	root := driverRoot(t)
	type want struct {
		added     map[string][]string // class -> modules added
		present   map[string][]string
		builtin   map[string][]string
		omitted   map[string][]string
		firmware  map[string][]string
		missingFW map[string][]string
		warnings  []string // substrings, each in some warning
		err       string   // substring of the error
	}
	for _, c := range []struct {
		name string
		opts Options
		want want
	}{
		{"default adds every class", Options{}, want{
			added: map[string][]string{
				ClassStorage: {"ahci", "scsi_transport_sas", "mpt3sas", "megaraid_sas", "nvme_core", "nvme", "crc32c_generic", "aesni_intel"},
				ClassFS:      {"xfs"},
				ClassNet:     {"e1000e", "bnx2x", "tg3"},
				ClassInput:   {"hid", "usbhid"},
			},
			present:   map[string][]string{ClassStorage: {"libata", "libahci"}},
			builtin:   map[string][]string{ClassInput: {"xhci_hcd", "atkbd"}},
			firmware:  map[string][]string{ClassNet: {"/lib/firmware/bnx2x/bnx2x-e2-7.13.21.0.fw"}},
			missingFW: map[string][]string{ClassNet: {"tigon/tg3_tso5.bin", "tigon/tg3.bin"}},
			warnings:  []string{"driver class net: 2 firmware files its modules name are not in"},
		}},
		{"one class; soft dependency", Options{Drivers: []string{ClassFS}}, want{
			added: map[string][]string{ClassFS: {"crc32c_generic", "xfs"}},
		}},
		{"omit a dependency leaves its dependants out", Options{Drivers: []string{ClassStorage}, OmitModules: []string{"scsi-transport-sas", "nvme_core"}}, want{
			added:   map[string][]string{ClassStorage: {"ahci", "megaraid_sas", "crc32c_generic", "aesni_intel"}},
			present: map[string][]string{ClassStorage: {"libata", "libahci"}},
			omitted: map[string][]string{ClassStorage: {"scsi_transport_sas (--omit-module scsi-transport-sas)", "mpt3sas (needs omitted scsi_transport_sas)",
				"nvme_core (--omit-module nvme_core)", "nvme (needs omitted nvme_core)"}},
		}},
		{"omit by glob; a pattern matching nothing", Options{Drivers: []string{ClassNet}, OmitModules: []string{"b*", "nosuch*"}}, want{
			added:     map[string][]string{ClassNet: {"e1000e", "tg3"}},
			omitted:   map[string][]string{ClassNet: {"bnx2x (--omit-module b*)"}},
			missingFW: map[string][]string{ClassNet: {"tigon/tg3_tso5.bin", "tigon/tg3.bin"}},
			warnings:  []string{"--omit-module nosuch*: matches no module of kernel " + testKver, "driver class net: 2 firmware files"},
		}},
		{"none", Options{Drivers: []string{}}, want{}},
		{"explicit class that adds nothing", Options{Drivers: []string{ClassInput}, OmitModules: []string{"hid"}},
			want{err: "--drivers input: class input adds nothing: 2 left out by --omit-module, 2 built into the kernel"}},
		{"default class that adds nothing", Options{OmitModules: []string{"*hid"}}, want{
			added: map[string][]string{
				ClassStorage: {"ahci", "scsi_transport_sas", "mpt3sas", "megaraid_sas", "nvme_core", "nvme", "crc32c_generic", "aesni_intel"},
				ClassFS:      {"xfs"},
				ClassNet:     {"e1000e", "bnx2x", "tg3"},
			},
			present:   map[string][]string{ClassStorage: {"libata", "libahci"}},
			builtin:   map[string][]string{ClassInput: {"xhci_hcd", "atkbd"}},
			omitted:   map[string][]string{ClassInput: {"hid (--omit-module *hid)", "usbhid (--omit-module *hid)"}},
			firmware:  map[string][]string{ClassNet: {"/lib/firmware/bnx2x/bnx2x-e2-7.13.21.0.fw"}},
			missingFW: map[string][]string{ClassNet: {"tigon/tg3_tso5.bin", "tigon/tg3.bin"}},
			warnings:  []string{"driver class input adds nothing: 2 left out by --omit-module, 2 built into the kernel", "driver class net: 2 firmware files"},
		}},
		{"bad pattern", Options{OmitModules: []string{"[a-"}}, want{err: `--omit-module "[a-": syntax error in pattern`}},
		{"pattern with a slash", Options{OmitModules: []string{"kernel/x"}}, want{err: `--omit-module "kernel/x": not a module name or shell pattern`}},
		{"bad pattern without classes", Options{Drivers: []string{}, OmitModules: []string{"x["}}, want{err: `--omit-module "x[": syntax error in pattern`}},
		{"bad pattern without the kernel's modules", Options{KVer: "9.9.9", OmitModules: []string{"x["}}, want{err: `--omit-module "x[": syntax error in pattern`}},
		{"explicit without the kernel's modules", Options{Drivers: []string{ClassFS}, KVer: "9.9.9"},
			want{err: "--drivers fs: no modules of kernel 9.9.9 in " + root + " (/lib/modules/9.9.9)"}},
		{"default without the kernel's modules", Options{KVer: "9.9.9"},
			want{warnings: []string{"no driver classes added (--drivers storage,fs,net,input was not asked for): no modules of kernel 9.9.9 in " + root}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Root, c.opts.Preset = root, "none"
			tr := driverImage(t)
			rep, err := Apply(context.Background(), tr, c.opts)
			if c.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.want.err) {
					t.Fatalf("got %v, want an error containing %q", err, c.want.err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := func(f func(*DriverReport) []string) map[string][]string {
				m := map[string][]string{}
				for _, d := range rep.Drivers {
					if v := f(d); len(v) > 0 {
						m[d.Class] = v
					}
				}
				return m
			}
			check := func(what string, got, want map[string][]string) {
				if len(got) == 0 && len(want) == 0 {
					return
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %q, want %q", what, got, want)
				}
			}
			check("added", got(func(d *DriverReport) []string { return d.Added }), c.want.added)
			check("present", got(func(d *DriverReport) []string { return d.Present }), c.want.present)
			check("builtin", got(func(d *DriverReport) []string { return d.Builtin }), c.want.builtin)
			check("omitted", got(func(d *DriverReport) []string { return d.Omitted }), c.want.omitted)
			check("firmware", got(func(d *DriverReport) []string { return d.Firmware }), c.want.firmware)
			check("missing firmware", got(func(d *DriverReport) []string { return d.MissingFirmware }), c.want.missingFW)
			all := strings.Join(rep.Warnings, "\n")
			for _, w := range c.want.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("no warning %q in\n%s", w, all)
				}
			}
			if len(rep.Warnings) != len(c.want.warnings) {
				t.Errorf("warnings %q, want %d", rep.Warnings, len(c.want.warnings))
			}
			// What a class added is in the image and its module index;
			// nothing outside the classes is.
			var added []string
			for _, d := range rep.Drivers {
				added = append(added, d.Added...)
				if size := int64(len(d.Added) * len(fakeKO("license=GPL"))); d.Bytes < size {
					t.Errorf("%s: %d bytes for %d modules", d.Class, d.Bytes, len(d.Added))
				}
			}
			if len(added) == 0 {
				if n := tr.Lookup("lib/modules/" + testKver + "/modules.alias"); n != nil {
					t.Error("module indexes rewritten with nothing added")
				}
				return
			}
			dep := treeFileText(t, tr, "lib/modules/"+testKver+"/modules.dep")
			for _, m := range added {
				if !strings.Contains(dep, "/"+strings.ReplaceAll(m, "_", "")) && !strings.Contains(dep, "/"+m+".ko") && !strings.Contains(dep, "/"+strings.ReplaceAll(m, "_", "-")+".ko") {
					t.Errorf("%s not in the image's modules.dep:\n%s", m, dep)
				}
			}
			for _, m := range []string{"iwlwifi", "snd"} {
				if strings.Contains(dep, "/"+m+".ko") {
					t.Errorf("%s (no class) added", m)
				}
			}
			if strings.Count(dep, "libata.ko:") != 1 {
				t.Errorf("libata (present) listed again:\n%s", dep)
			}
			if slices.Contains(added, "ahci") {
				if alias := treeFileText(t, tr, "lib/modules/"+testKver+"/modules.alias"); !strings.Contains(alias, "alias pci:v*d*sv*sd*bc01sc06i01* ahci") {
					t.Errorf("ahci's alias not in the image:\n%s", alias)
				}
				if _, n, _ := tr.Resolve("lib/modules/"+testKver+"/modules.alias.bin", true); n == nil {
					t.Error("modules.alias.bin not written")
				}
			}
		})
	}
}

// TestDriversExplicitModulePresent: --module of a module the image has
// is not copied again, and says so.
func TestDriversExplicitModulePresent(t *testing.T) {
	root := driverRoot(t)
	tr := driverImage(t)
	rep, err := Apply(context.Background(), tr, Options{Root: root, Preset: "none", Drivers: []string{}, Modules: []string{"ahci"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Skipped, "module libata (already in the image)") || !slices.Contains(rep.Skipped, "module libahci (already in the image)") {
		t.Errorf("skipped: %q", rep.Skipped)
	}
	for _, a := range rep.Added {
		if strings.HasSuffix(a.Path, "libata.ko") {
			t.Errorf("libata copied again: %+v", a)
		}
	}
	if len(rep.Drivers) != 0 {
		t.Errorf("drivers with --drivers none: %+v", rep.Drivers)
	}
}

func TestParseDrivers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  string
	}{
		{"all", []string{"storage", "fs", "net", "input"}, ""},
		{"none", []string{}, ""},
		{"net,storage", []string{"storage", "net"}, ""},
		{" fs , fs", []string{"fs"}, ""},
		{"all,net", []string{"storage", "fs", "net", "input"}, ""},
		{"gpu", nil, `unknown class "gpu"`},
		{"", nil, `unknown class ""`},
		{"none,net", nil, "none cannot be combined"},
	} {
		got, err := ParseDrivers(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %v, want error %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, %v, want %q", c.in, got, err, c.want)
		}
	}
}

// TestDriverClass checks the table on kernel-tree paths of several
// distributions' kernels.
func TestDriverClass(t *testing.T) {
	table := driverTable()
	for p, want := range map[string]string{
		"kernel/drivers/scsi/megaraid/megaraid_sas.ko.xz":       ClassStorage,
		"kernel/drivers/scsi/mpt3sas/mpt3sas.ko.zst":            ClassStorage,
		"kernel/drivers/message/fusion/mptsas.ko":               ClassStorage,
		"kernel/drivers/nvme/host/nvme.ko.xz":                   ClassStorage,
		"kernel/drivers/nvme/target/nvmet.ko.xz":                "",
		"kernel/arch/x86/crypto/aesni-intel.ko":                 ClassStorage,
		"kernel/arch/arm64/crypto/aes-ce-blk.ko.zst":            ClassStorage,
		"kernel/arch/x86/kvm/kvm.ko":                            "",
		"kernel/fs/xfs/xfs.ko.xz":                               ClassFS,
		"kernel/fs/nls/nls_cp437.ko":                            ClassFS,
		"kernel/fs/ocfs2/ocfs2.ko":                              "",
		"kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz": ClassNet,
		"kernel/drivers/net/virtio_net.ko.xz":                   ClassNet,
		"kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko":  "",
		"kernel/drivers/net/vxlan/vxlan.ko":                     "",
		"kernel/drivers/hid/usbhid/usbhid.ko":                   ClassInput,
		"kernel/drivers/usb/host/xhci-pci.ko.zst":               ClassInput,
		"kernel/drivers/usb/storage/uas.ko":                     ClassStorage,
		"kernel/drivers/gpu/drm/i915/i915.ko":                   "",
		"kernel/sound/pci/hda/snd-hda-intel.ko":                 "",
		"updates/dkms/zfs.ko":                                   "",
	} {
		if got := driverClass(table, p); got != want {
			t.Errorf("%s: class %q, want %q", p, got, want)
		}
	}
}

// TestPrepareKernel: the root's modules Prepare reads for the kernel it is
// given are used only by an Apply for that kernel; an Apply for another
// reads that one's, and a name that is no kernel version is refused where
// modules are added, whatever Prepare was given.
func TestPrepareKernel(t *testing.T) {
	root := driverRoot(t)
	want, err := Apply(context.Background(), driverImage(t), Options{Root: root, Preset: "none", KVer: testKver})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		prepare, kver string
		err           string // substring of Apply's error; "" for want's report
	}{
		{"same kernel", testKver, testKver, ""},
		{"unknown at Prepare", "", testKver, ""},
		{"another kernel at Apply", "9.9.9", testKver, ""},
		{"Apply for a kernel the root lacks", testKver, "9.9.9", "no modules of kernel 9.9.9"},
		{"no kernel version", "../" + testKver, "../" + testKver, `"../` + testKver + `": not a kernel version`},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Root: root, Preset: "none", KVer: c.prepare}
			if c.err != "" {
				opts.Drivers = []string{ClassFS} // asked for: errors are not warnings
			}
			p, err := Prepare(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := p.Apply(context.Background(), driverImage(t), c.kver)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep, want) {
				t.Fatalf("report differs from Apply's:\n got %+v\nwant %+v", rep, want)
			}
			if _, err := p.Apply(context.Background(), driverImage(t), c.kver); err == nil {
				t.Fatal("a Prepared applied twice")
			}
		})
	}
}
