// Package striptest builds synthetic initrd trees for the tests of strip
// and its packages, from lines a reader can check at a glance.
package striptest

import (
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
)

// Tree builds a tree from lines in order: "dir/" is a directory,
// "name=-> target" a symlink, "name=body" an executable file with body.
func Tree(t testing.TB, lines ...string) *remix.Tree {
	t.Helper()
	tr := remix.NewTree()
	for _, l := range lines {
		if _, err := tr.Put(Entry(l)); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	return tr
}

// Entry is one line of Tree as an entry.
func Entry(line string) remix.Entry {
	name, body, _ := strings.Cut(line, "=")
	switch {
	case strings.HasSuffix(name, "/"):
		return remix.Dir(strings.TrimSuffix(name, "/"), 0o755)
	case strings.HasPrefix(body, "-> "):
		return remix.Symlink(name, strings.TrimPrefix(body, "-> "))
	}
	return remix.File(name, 0o755, remix.BytesContent(body))
}
