package overlay

import (
	"context"
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/initrd-remix/initrd-remix/internal/ordered"
)

// Driver classes: what a rescue needs on replacement hardware, taken from
// the root's lib/modules/KVER by where the kernel's build puts a module.
// The kernel tree's directories are the same in every distribution kernel
// (Debian, Fedora, SUSE, Arch install modules at kernel/drivers/ata/...,
// kernel/fs/xfs/...), so the table below is general; a module of an
// out-of-tree package (updates/, extra/, dkms) belongs to no class and is
// added only by name (--module).
const (
	ClassStorage = "storage"
	ClassFS      = "fs"
	ClassNet     = "net"
	ClassInput   = "input"
)

// DriverClasses are the classes of --drivers, in report order.
func DriverClasses() []string { return []string{ClassStorage, ClassFS, ClassNet, ClassInput} }

// driverPrefix puts the modules whose path (relative to lib/modules/KVER)
// starts with prefix in class. A "*" segment matches one path segment
// (the architecture of arch/*/crypto/). A prefix may name a file: a
// module's path with its .ko and compression suffix starts with it.
type driverPrefix struct{ prefix, class string }

// driverTable is the class of every kernel-tree directory a rescue needs.
// Left out on purpose: wireless (drivers/net/wireless, net/wireless,
// net/mac80211), infiniband, sound, media, GPU, bluetooth, and every
// directory not listed; a module there comes only by name (--module).
func driverTable() []driverPrefix {
	return []driverPrefix{
		// storage: the disk controllers and buses of any machine a
		// backup may be restored on, the block layer's stackers, and
		// what opens them.
		{"kernel/drivers/ata/", ClassStorage},            // SATA/PATA, AHCI
		{"kernel/drivers/scsi/", ClassStorage},           // sd, sr, sg, SAS/RAID HBAs (megaraid_sas, mpt3sas, aacraid, smartpqi, hpsa), FC, virtio_scsi, hv_storvsc, vmw_pvscsi, xen-scsifront
		{"kernel/drivers/message/fusion/", ClassStorage}, // older LSI SAS/SPI (mptsas: QEMU's mptsas1068)
		{"kernel/drivers/nvme/host/", ClassStorage},      // NVMe (not the target side)
		{"kernel/drivers/nvme/common/", ClassStorage},    // NVMe authentication and keyring
		{"kernel/drivers/block/", ClassStorage},          // virtio_blk, xen-blkfront, loop, nbd, rbd, mtip32xx
		{"kernel/drivers/mmc/", ClassStorage},            // SD/eMMC hosts and mmc_block
		{"kernel/drivers/ufs/", ClassStorage},            // UFS hosts (drivers/scsi/ufs before 6.0)
		{"kernel/drivers/usb/storage/", ClassStorage},    // usb-storage, uas
		{"kernel/drivers/cdrom/", ClassStorage},          // cdrom (sr's, for ISO media)
		{"kernel/drivers/md/", ClassStorage},             // md personalities, device-mapper targets (crypt, raid, thin, multipath)
		{"kernel/drivers/nvdimm/", ClassStorage},         // persistent memory
		{"kernel/drivers/virtio/", ClassStorage},         // virtio transports (virtio_pci, virtio_mmio): no module links them
		{"kernel/drivers/pci/controller/", ClassStorage}, // Intel VMD (NVMe behind it), Hyper-V PCI passthrough
		{"kernel/drivers/s390/block/", ClassStorage},     // DASD
		{"kernel/drivers/s390/scsi/", ClassStorage},      // zfcp
		{"kernel/block/", ClassStorage},                  // I/O schedulers, partition and integrity helpers
		{"kernel/crypto/", ClassStorage},                 // ciphers and modes dm-crypt asks for by name: LUKS opens
		{"kernel/arch/*/crypto/", ClassStorage},          // their accelerated versions
		{"kernel/fs/ext4/", ClassFS},                     // ext2/3/4
		{"kernel/fs/jbd2/", ClassFS},                     //
		{"kernel/fs/xfs/", ClassFS},                      //
		{"kernel/fs/btrfs/", ClassFS},                    //
		{"kernel/fs/fat/", ClassFS},                      // vfat, msdos (the EFI system partition)
		{"kernel/fs/exfat/", ClassFS},                    // USB media
		{"kernel/fs/ntfs3/", ClassFS},                    // backups on a Windows-formatted disk
		{"kernel/fs/isofs/", ClassFS},                    // iso9660
		{"kernel/fs/udf/", ClassFS},                      // DVD media
		{"kernel/fs/squashfs/", ClassFS},                 // live media
		{"kernel/fs/nls/", ClassFS},                      // codepages vfat mounts with (cp437, iso8859-1, utf8)
		{"kernel/fs/efivarfs/", ClassFS},                 // EFI variables, for reinstalling a boot loader
		{"kernel/fs/fuse/", ClassFS},                     //
		{"kernel/fs/nfs/", ClassFS},                      // NFS client (ReaR's default BACKUP_URL is nfs)
		{"kernel/fs/nfs_common/", ClassFS},               //
		{"kernel/fs/lockd/", ClassFS},                    //
		{"kernel/net/sunrpc/", ClassFS},                  // NFS's RPC, with Kerberos
		{"kernel/fs/cifs/", ClassFS},                     // SMB client (before 6.4)
		{"kernel/fs/smb/client/", ClassFS},               // SMB client
		{"kernel/fs/smb/common/", ClassFS},               //
		{"kernel/fs/netfs/", ClassFS},                    //
		{"kernel/fs/fscache/", ClassFS},                  //
		{"kernel/drivers/net/ethernet/", ClassNet},       // every wired NIC (e1000e, igb, ixgbe, i40e, ice, bnxt, tg3, mlx5, ena, gve, ...)
		{"kernel/drivers/net/phy/", ClassNet},            // PHYs the NIC drivers attach
		{"kernel/drivers/net/mdio/", ClassNet},           //
		{"kernel/drivers/net/pcs/", ClassNet},            //
		{"kernel/drivers/net/usb/", ClassNet},            // USB ethernet adapters (r8152, asix, ax88179, cdc_ether)
		{"kernel/drivers/net/hyperv/", ClassNet},         // hv_netvsc
		{"kernel/drivers/net/vmxnet3/", ClassNet},        // VMware
		{"kernel/drivers/net/virtio_net.ko", ClassNet},   //
		{"kernel/drivers/net/xen-netfront.ko", ClassNet}, //
		{"kernel/drivers/net/net_failover.ko", ClassNet}, //
		{"kernel/drivers/net/mii.ko", ClassNet},          //
		{"kernel/drivers/net/mdio.ko", ClassNet},         //
		{"kernel/drivers/net/bonding/", ClassNet},        // bonded server links
		{"kernel/net/8021q/", ClassNet},                  // VLANs
		{"kernel/net/packet/", ClassNet},                 // AF_PACKET, for DHCP clients
		{"kernel/drivers/usb/host/", ClassInput},         // xHCI, EHCI, OHCI, UHCI (USB storage needs them too)
		{"kernel/drivers/usb/core/", ClassInput},         //
		{"kernel/drivers/usb/common/", ClassInput},       //
		{"kernel/drivers/usb/dwc2/", ClassInput},         // SoC USB controllers
		{"kernel/drivers/usb/dwc3/", ClassInput},         //
		{"kernel/drivers/hid/", ClassInput},              // hid-generic, usbhid, i2c-hid, vendor quirks, hid-hyperv
		{"kernel/drivers/input/keyboard/", ClassInput},   // atkbd and others where modular
		{"kernel/drivers/input/serio/", ClassInput},      // i8042, hyperv-keyboard
		{"kernel/drivers/tty/serial/", ClassInput},       // serial consoles
		{"kernel/drivers/char/virtio_console.ko", ClassInput},
	}
}

// driverClass returns the class of a module path ("" for none).
func driverClass(table []driverPrefix, modPath string) string {
	best, class := -1, ""
	for _, d := range table {
		if n := prefixMatch(d.prefix, modPath); n > best {
			best, class = n, d.class
		}
	}
	return class
}

// prefixMatch is the length of prefix if modPath starts with it (a "*"
// segment standing for any one segment), or -1.
func prefixMatch(prefix, modPath string) int {
	if !strings.Contains(prefix, "*") {
		if strings.HasPrefix(modPath, prefix) {
			return len(prefix)
		}
		return -1
	}
	ps, ms := strings.Split(strings.TrimSuffix(prefix, "/"), "/"), strings.Split(modPath, "/")
	if len(ms) <= len(ps) {
		return -1
	}
	for i, p := range ps {
		if ok, _ := path.Match(p, ms[i]); !ok {
			return -1
		}
	}
	return len(prefix)
}

// ParseDrivers reads --drivers: a comma-separated list of classes, "all"
// (every class) or "none". The result is never nil, so it is an explicit
// choice in Options.Drivers.
func ParseDrivers(s string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		var add []string
		switch f {
		case "all":
			add = DriverClasses()
		case "none":
			if len(strings.Split(s, ",")) != 1 {
				return nil, fmt.Errorf("--drivers %q: none cannot be combined with classes", s)
			}
		case ClassStorage, ClassFS, ClassNet, ClassInput:
			add = []string{f}
		default:
			return nil, fmt.Errorf("--drivers %q: unknown class %q (want a comma-separated list of %s, or all, or none)", s, f, strings.Join(DriverClasses(), ", "))
		}
		for _, c := range add {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	// Report order, whatever the order given.
	sort.SliceStable(out, func(i, j int) bool { return classIndex(out[i]) < classIndex(out[j]) })
	return out, nil
}

func classIndex(c string) int {
	for i, x := range DriverClasses() {
		if x == c {
			return i
		}
	}
	return len(DriverClasses())
}

// DriverReport is what one driver class added.
type DriverReport struct {
	Class string `json:"class"`
	// Added are the modules written into the image because of this class,
	// its members and their dependencies, in load order.
	Added []string `json:"added"`
	// Present are members the image already had (not added again).
	Present []string `json:"present,omitempty"`
	// Builtin are members built into the kernel (modules.builtin).
	Builtin []string `json:"builtin,omitempty"`
	// Omitted are members left out by --omit-module, each with why:
	// "NAME (--omit-module PATTERN)" or "NAME (needs omitted DEP)".
	Omitted []string `json:"omitted,omitempty"`
	// Firmware lists the firmware files added (paths in the image);
	// MissingFirmware what added modules name and the root lacks.
	Firmware        []string `json:"firmware,omitempty"`
	MissingFirmware []string `json:"missing_firmware,omitempty"`
	// Bytes is what the modules and firmware added take, as in the root
	// (before the image's compression).
	Bytes int64 `json:"bytes"`
}

// omitter matches module names against --omit-module patterns.
type omitter struct{ patterns, norm []string }

func newOmitter(patterns []string) (*omitter, error) {
	o := &omitter{}
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("--omit-module %q: %w", p, err)
		}
		n, ok := aliasNormalize(strings.TrimSpace(p))
		if n == "" || strings.Contains(n, "/") || !ok {
			return nil, fmt.Errorf("--omit-module %q: not a module name or shell pattern", p)
		}
		o.patterns, o.norm = append(o.patterns, p), append(o.norm, n)
	}
	return o, nil
}

// match returns the pattern that omits a module, or "".
func (o *omitter) match(name string) string {
	for i, n := range o.norm {
		if ok, _ := path.Match(n, name); ok {
			return o.patterns[i]
		}
	}
	return ""
}

// why says why a module is left out ("" if it is not): its own name, or
// one of its hard dependencies (modules.dep lists them all, transitively).
func (o *omitter) why(db *modDB, name string) string {
	if p := o.match(name); p != "" {
		return "--omit-module " + p
	}
	i, ok := db.byName[name]
	if !ok {
		return ""
	}
	for _, d := range db.deps[i].deps {
		if p := o.match(modName(d)); p != "" {
			return "needs omitted " + modName(d)
		}
	}
	return ""
}

// drivers queues the members of the asked-for classes that the image
// lacks, with their dependencies; firmware comes with them in
// moduleFirmware.
func (a *applier) drivers(plan *modulePlan, classes []string, explicit bool, visit func(name, why string, required bool, cls *DriverReport) error) error {
	om := plan.omit
	table := driverTable()
	db := plan.rootDB
	want := map[string]*DriverReport{}
	for _, c := range classes {
		r := &DriverReport{Class: c, Added: []string{}}
		want[c] = r
		a.report.Drivers = append(a.report.Drivers, r)
	}
	for _, l := range plan.builtinPaths {
		if r := want[driverClass(table, l)]; r != nil {
			r.Builtin = append(r.Builtin, modName(l))
		}
	}
	used := make([]bool, len(om.patterns))
	for _, d := range db.deps {
		m := modName(d.path)
		for i, n := range om.norm {
			if ok, _ := path.Match(n, m); ok {
				used[i] = true
			}
		}
		r := want[driverClass(table, d.path)]
		if r == nil {
			continue
		}
		if why := om.why(db, m); why != "" {
			r.Omitted = append(r.Omitted, m+" ("+why+")")
			continue
		}
		if plan.imgHas[m] {
			r.Present = append(r.Present, m)
			continue
		}
		if err := visit(m, "driver class "+r.Class, true, r); err != nil {
			return err
		}
	}
	for i, u := range used {
		if !u {
			a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("--omit-module %s: matches no module of kernel %s in %s", om.patterns[i], plan.kver, a.root))
		}
	}
	for _, c := range classes {
		r := want[c]
		if len(r.Added) > 0 {
			continue
		}
		switch {
		case len(r.Present) > 0 && len(r.Omitted) == 0:
			a.report.Skipped = append(a.report.Skipped, fmt.Sprintf("driver class %s: the image already has its %d modules", c, len(r.Present)))
		case explicit:
			return fmt.Errorf("--drivers %s: class %s adds nothing: %s", strings.Join(classes, ","), c, r.nothing(plan, a.root))
		default:
			a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("driver class %s adds nothing: %s", c, r.nothing(plan, a.root)))
		}
	}
	return nil
}

// nothing explains an empty class.
func (r *DriverReport) nothing(plan *modulePlan, root string) string {
	var parts []string
	if len(r.Present) > 0 {
		parts = append(parts, fmt.Sprintf("%d of its modules already in the image", len(r.Present)))
	}
	if len(r.Omitted) > 0 {
		parts = append(parts, fmt.Sprintf("%d left out by --omit-module", len(r.Omitted)))
	}
	if len(r.Builtin) > 0 {
		parts = append(parts, fmt.Sprintf("%d built into the kernel", len(r.Builtin)))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("kernel %s in %s has no module of it (%s)", plan.kver, root, plan.modDir)
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (kernel %s in %s)", plan.kver, root)
}

// moduleFirmware reads the firmware names of every queued module, in
// parallel (decompressing hundreds of .ko.xz takes seconds on one core),
// and queues what the root has. A class's missing firmware is one
// warning; a module asked for by name gets one per file, as before.
func (a *applier) moduleFirmware(plan *modulePlan) error {
	mods := plan.queued
	workers := runtime.GOMAXPROCS(0)
	pool := ordered.New[[]string](a.ctx, workers)
	defer pool.Close()
	i := 0
	take := func() error {
		fw, err := pool.Next()
		if err != nil {
			return err
		}
		q := mods[i]
		i++
		for _, f := range fw {
			phys, size, ok := a.firmware(f, plan.kver, q.name)
			switch {
			case q.class == nil && !ok:
				a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("module %s: firmware %s not found in %s", q.name, f, a.root))
			case q.class == nil:
			case !ok:
				if !slices.Contains(q.class.MissingFirmware, f) {
					q.class.MissingFirmware = append(q.class.MissingFirmware, f)
				}
			case phys != "" && !plan.fwSeen[phys]:
				plan.fwSeen[phys] = true
				q.class.Firmware = append(q.class.Firmware, phys)
				q.class.Bytes += size
			}
		}
		return nil
	}
	for _, q := range mods {
		for pool.Pending() >= 2*workers {
			if err := take(); err != nil {
				return err
			}
		}
		host := a.host(q.src)
		if err := pool.Submit(func(context.Context, int) ([]string, error) {
			fw, err := modinfoFirmware(host)
			if err != nil {
				return nil, fmt.Errorf("module %s: %s: %w", q.name, q.src, err)
			}
			return fw, nil
		}); err != nil {
			return err
		}
	}
	for pool.Pending() > 0 {
		if err := take(); err != nil {
			return err
		}
	}
	for _, r := range a.report.Drivers {
		if n := len(r.MissingFirmware); n > 0 {
			a.report.Warnings = append(a.report.Warnings, fmt.Sprintf("driver class %s: %d firmware files its modules name are not in %s (listed in --json as missing_firmware; the devices that need them may not work)", r.Class, n, a.root))
		}
	}
	return nil
}

// fileSize is the size of a file of the root, 0 if it cannot be read
// (the writer reports that).
func (a *applier) fileSize(p string) int64 {
	fi, err := os.Stat(a.host(p))
	if err != nil {
		return 0
	}
	return fi.Size()
}
