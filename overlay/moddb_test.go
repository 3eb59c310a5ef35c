package overlay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestIndexesEqualDepmod rebuilds the lab kernel's binary indexes from
// depmod's text files: they must equal depmod's byte for byte.
func TestIndexesEqualDepmod(t *testing.T) {
	dir := filepath.Join(labEnv(t, "LAB_ROOT"), "lib/modules", labEnv(t, "LAB_KVER"))
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	db := newModDB()
	if err := db.parseDep("modules.dep", read("modules.dep")); err != nil {
		t.Fatal(err)
	}
	var err error
	if db.aliases, err = parseAliasLike("modules.alias", read("modules.alias")); err != nil {
		t.Fatal(err)
	}
	if db.symbols, err = parseAliasLike("modules.symbols", read("modules.symbols")); err != nil {
		t.Fatal(err)
	}
	bins, err := db.indexes()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range bins {
		want := read(name)
		if !bytes.Equal(got, want) {
			n := 0
			for n < len(got) && n < len(want) && got[n] == want[n] {
				n++
			}
			t.Errorf("%s: %d bytes, depmod's %d; first difference at %d", name, len(got), len(want), n)
		}
	}
	t.Logf("%d modules, %d aliases, %d symbols", len(db.deps), len(db.aliases), len(db.symbols))
}
