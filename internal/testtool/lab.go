package testtool

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LabImage is one row of a lab's images/manifest.tsv, with the image's path
// and, from images/boot-args.tsv, the kernel arguments that boot it to the
// lab's marker root.
type LabImage struct {
	Name, Family, Compression, Microcode, Baked string
	Path                                        string
	BootArgs                                    string
}

// LabRelease is the lab of one Debian release, as scripts/lab.sh writes it:
// lab.env, a root, a kernel and the images of its manifest. The main lab
// (Debian 12) is one; the others are under its releases/ directory.
type LabRelease struct {
	Dir     string
	Release string            // LAB_RELEASE, "bookworm" for the main lab
	Env     map[string]string // lab.env, quotes removed
	Images  []LabImage
}

// OpenLab reads the main lab (see Lab).
func OpenLab(t testing.TB) *LabRelease {
	t.Helper()
	return readLab(t, Lab(t))
}

// LabReleases reads the main lab and every other release's lab it lists in
// LAB_RELEASES, main lab first.
func LabReleases(t testing.TB) []*LabRelease {
	t.Helper()
	main := OpenLab(t)
	out := []*LabRelease{main}
	for _, dir := range strings.Fields(main.Env["LAB_RELEASES"]) {
		out = append(out, readLab(t, dir))
	}
	return out
}

// Image returns the lab image named name.
func (l *LabRelease) Image(t testing.TB, name string) LabImage {
	t.Helper()
	for _, im := range l.Images {
		if im.Name == name {
			return im
		}
	}
	t.Fatalf("lab %s has no image %s", l.Release, name)
	return LabImage{}
}

// Var returns the value of key in the lab's lab.env; a lab without it
// fails the test.
func (l *LabRelease) Var(t testing.TB, key string) string {
	t.Helper()
	v, ok := l.Env[key]
	if !ok {
		t.Fatalf("lab %s: lab.env has no %s", l.Dir, key)
	}
	return v
}

// ImagesOf returns the lab's images of one generator family.
func (l *LabRelease) ImagesOf(family string) []LabImage {
	var out []LabImage
	for _, im := range l.Images {
		if im.Family == family {
			out = append(out, im)
		}
	}
	return out
}

func readLab(t testing.TB, dir string) *LabRelease {
	t.Helper()
	l := &LabRelease{Dir: dir, Env: map[string]string{}}
	data, err := os.ReadFile(filepath.Join(dir, "lab.env"))
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			l.Env[k] = strings.Trim(v, `"'`)
		}
	}
	l.Release = l.Env["LAB_RELEASE"]
	if l.Release == "" {
		l.Release = "bookworm" // labs from before releases
	}
	f, err := os.Open(filepath.Join(dir, "images", "manifest.tsv"))
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 5 {
			t.Fatalf("lab %s: bad manifest line %q", dir, sc.Text())
		}
		l.Images = append(l.Images, LabImage{c[0], c[1], c[2], c[3], c[4], filepath.Join(dir, "images", c[0]+".img"), ""})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("lab %s: manifest: %v", dir, err)
	}
	args, err := os.ReadFile(filepath.Join(dir, "images", "boot-args.tsv"))
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	for _, line := range strings.Split(string(args), "\n")[1:] {
		name, a, _ := strings.Cut(line, "\t")
		for i := range l.Images {
			if l.Images[i].Name == name {
				l.Images[i].BootArgs = a
			}
		}
	}
	if len(l.Images) < 3 {
		t.Fatalf("lab %s lists only %d images", dir, len(l.Images))
	}
	return l
}
