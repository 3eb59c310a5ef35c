package overlay

import (
	"strings"
	"testing"
)

// FuzzModFiles feeds the depmod text parsers and the .modinfo reader
// arbitrary bytes: errors are fine, panics and unbounded work are not, and
// what parses must render and index again.
func FuzzModFiles(f *testing.F) {
	f.Add([]byte("kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\n"),
		[]byte("alias fs-btrfs btrfs\nalias pci:v00008086d*sv*sd*bc*sc*i* e1000e\nalias x[-] btrfs\n"),
		[]byte("softdep btrfs pre: crc32c\n"), []byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, dep, alias, soft, modinfo []byte) {
		_, _ = parseModinfo(modinfo)
		db := newModDB()
		if err := db.parseDep("modules.dep", dep); err != nil {
			return
		}
		var err error
		if db.aliases, err = parseAliasLike("modules.alias", alias); err != nil {
			return
		}
		db.parseSoftdep(soft)
		_ = db.texts()
		for name := range db.byName {
			for _, l := range db.softdep[name] {
				_ = softdeps(l)
			}
			_ = db.lookup(name)
		}
		if _, err := db.indexes(); err != nil && !strings.Contains(err.Error(), "not allowed") && !strings.Contains(err.Error(), "NUL") {
			t.Fatalf("indexes: %v", err)
		}
	})
}

// FuzzDriverOptions feeds --drivers and --omit-module arbitrary text:
// either an error or a list of known classes, and a pattern set that
// matches without panicking.
func FuzzDriverOptions(f *testing.F) {
	f.Add("storage,net", "mpt*")
	f.Add("all", "[a-")
	f.Add("none", "scsi-transport-sas")
	f.Fuzz(func(t *testing.T, drivers, pattern string) {
		if cls, err := ParseDrivers(drivers); err == nil {
			for _, c := range cls {
				if classIndex(c) == len(DriverClasses()) {
					t.Fatalf("%q gave unknown class %q", drivers, c)
				}
			}
		}
		if o, err := newOmitter([]string{pattern}); err == nil {
			_ = o.match("scsi_transport_sas")
		}
	})
}
