package remix

import (
	"errors"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

func scanDir(tr *Tree, p string) []*Node {
	out := []*Node{}
	for _, n := range tr.Nodes() {
		if n.Path != "." && parentOf(n.Path) == p {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return baseOf(out[a].Path) < baseOf(out[b].Path) })
	return out
}

func nodePaths(ns []*Node) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.Path)
	}
	return out
}

func TestReadDirIndexFollowsEveryMutation(t *testing.T) {
	names := []string{"a", "b", "a/x", "a/y", "b/z", "usr", "usr/lib", "lib", "lib/m", "a/x/q", "c"}
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		tr := NewTree()
		for op := 0; op < 40; op++ {
			name := names[rng.Intn(len(names))]
			var e Entry
			switch rng.Intn(4) {
			case 0:
				e = Dir(name, 0o755)
			case 1:
				e = File(name, 0o644, BytesContent("x"))
			case 2:
				e = Symlink(name, names[rng.Intn(len(names))])
			case 3:
				e = CharDev(name, 0o600, 1, 3)
			}
			switch rng.Intn(5) {
			case 0:
				tr.Put(e)
			case 1:
				tr.Replace(e)
			case 2:
				if n := tr.Lookup(names[rng.Intn(len(names))]); n != nil {
					tr.Link(n, name)
				}
			case 3:
				tr.MkdirAll(name, 0o755, 0)
			case 4:
				tr.Install(e)
			}
		}
		for _, n := range tr.Nodes() {
			if !n.IsDir() {
				continue
			}
			got, err := tr.ReadDir(n.Path)
			if err != nil {
				t.Fatalf("round %d: ReadDir(%s): %v", round, n.Path, err)
			}
			// The same nodes, not only the same names: a name replaced
			// must not leave its old node listed.
			if want := scanDir(tr, n.Path); !slices.Equal(got, want) {
				t.Fatalf("round %d: ReadDir(%s) = %v, scan finds %v", round, n.Path, nodePaths(got), nodePaths(want))
			}
		}
	}
}

func TestReadDir(t *testing.T) {
	tr := usrMerged(t)
	mustPut(t, tr, file("usr/lib/b", "1"), file("usr/lib/a", "2"), dir("usr/lib/c"), file("usr/lib/c/d", "3"))
	for _, tc := range []struct {
		dir  string
		want []string
		err  error
	}{
		{"lib", []string{"usr/lib/a", "usr/lib/b", "usr/lib/c"}, nil}, // through the image's link
		{"/usr/lib/", []string{"usr/lib/a", "usr/lib/b", "usr/lib/c"}, nil},
		{".", []string{"bin", "lib", "usr"}, nil},
		{"lib/c", []string{"usr/lib/c/d"}, nil},
		{"lib/a", nil, ErrNotDir},
		{"nothere", nil, ErrNotExist},
		{"nothere/x", nil, ErrNotExist},
	} {
		got, err := tr.ReadDir(tc.dir)
		if !errors.Is(err, tc.err) || (tc.err == nil && !slices.Equal(nodePaths(got), tc.want)) {
			t.Errorf("ReadDir(%s) = %v, %v; want %v, %v", tc.dir, nodePaths(got), err, tc.want, tc.err)
		}
	}
}

// KernelVersions reads lib/modules through the directory index: a version
// counts with a modules.dep or a module anywhere below it.
func TestKernelVersions(t *testing.T) {
	tr := usrMerged(t)
	mustPut(t, tr, dir("usr/lib/modules"),
		dir("usr/lib/modules/6.1-dep"), file("usr/lib/modules/6.1-dep/modules.dep", ""),
		dir("usr/lib/modules/6.2-deep"), dir("usr/lib/modules/6.2-deep/kernel"), dir("usr/lib/modules/6.2-deep/kernel/fs"),
		file("usr/lib/modules/6.2-deep/kernel/fs/ext4.ko.zst", "m"),
		dir("usr/lib/modules/5.0-empty"), dir("usr/lib/modules/5.0-empty/kernel"), file("usr/lib/modules/5.0-empty/kernel/README", ""),
		dir("usr/lib/modules/4.0-dirko"), dir("usr/lib/modules/4.0-dirko/x.ko"),
		file("usr/lib/modules/7.0-file", ""),
	)
	if got := KernelVersions(tr); !slices.Equal(got, []string{"6.1-dep", "6.2-deep"}) {
		t.Errorf("KernelVersions = %q", got)
	}
	if got := KernelVersions(NewTree()); got != nil {
		t.Errorf("no lib/modules: %q", got)
	}
}
