package units

import (
	"reflect"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

func TestSet(t *testing.T) {
	tr := treetest.Tree(t, "usr/", "usr/lib/", "lib=-> usr/lib", "etc/", "etc/systemd/", "etc/systemd/system/",
		"usr/lib/systemd/", "usr/lib/systemd/system/",
		"usr/lib/systemd/system/a.service=[Service]\nExecStart=/a\n",
		"usr/lib/systemd/system/t@.service=[Service]\nExecStart=/t %i\n",
		"usr/lib/systemd/system/a.service.d/", "usr/lib/systemd/system/a.service.d/10-x.conf=[Service]\nExecStartPost=/vendor\n",
		"usr/lib/systemd/system/a.service.d/20-y.conf=[Service]\nExecStartPost=/y\n",
		"etc/systemd/system/a.service.d/", "etc/systemd/system/a.service.d/10-x.conf=[Service]\nExecStartPost=/admin\n",
		"usr/lib/systemd/system/service.d/", "usr/lib/systemd/system/service.d/00-all.conf=[Service]\nEnvironment=X=1\n",
		"usr/lib/systemd/system/m.service=-> /dev/null",
		"etc/systemd/system/default.target=-> /usr/lib/systemd/system/initrd.target",
		"usr/lib/systemd/system/initrd.target=[Unit]\n",
		"usr/lib/systemd/system/initrd.target.wants/", "usr/lib/systemd/system/initrd.target.wants/b.service=-> ../b.service",
		"etc/systemd/system/initrd.target.wants/", "etc/systemd/system/initrd.target.wants/c.service=-> /x",
	)
	s := New(tr)
	if got := s.Names(); !reflect.DeepEqual(got, []string{"a.service", "b.service", "c.service", "default.target", "initrd.target", "m.service", "t@.service"}) {
		t.Errorf("Names = %q", got)
	}
	if p, n := s.Node("t@x.service"); n == nil || p != "usr/lib/systemd/system/t@.service" {
		t.Errorf("instance resolves to %q", p)
	}
	if !s.Masked("m.service") || s.Masked("a.service") || !s.Masked("nope.service") {
		t.Error("Masked")
	}
	if a := s.Alias("default.target"); a != "initrd.target" {
		t.Errorf("Alias = %q", a)
	}
	var drops []string
	for _, d := range s.Dropins("a.service") {
		drops = append(drops, d.Path)
	}
	if want := []string{"usr/lib/systemd/system/service.d/00-all.conf", "etc/systemd/system/a.service.d/10-x.conf", "usr/lib/systemd/system/a.service.d/20-y.conf"}; !reflect.DeepEqual(drops, want) {
		t.Errorf("Dropins = %q", drops)
	}
	f, err := s.Load("a.service")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Values("Service", "ExecStartPost"); !reflect.DeepEqual(got, []string{"/admin", "/y"}) {
		t.Errorf("ExecStartPost = %q (the admin's drop-in overrides the vendor's)", got)
	}
	if got := s.Links("initrd.target"); !reflect.DeepEqual(got, []string{"b.service", "c.service"}) {
		t.Errorf("Links = %q", got)
	}
}

// TestBelow: every name under a directory at any depth, sorted by path,
// links listed and not followed, nothing of a sibling whose name starts
// the same way.
func TestBelow(t *testing.T) {
	tr := treetest.Tree(t, "h/", "h/pre-udev/", "h/pre-udev/10-a.sh=a", "h/initqueue/", "h/initqueue/finished/",
		"h/initqueue/finished/x.sh=x", "h/l=-> /other", "other/", "other/o.sh=o", "h-b/", "h-b/z.sh=z", "h/pre-udev/00-b.sh=b")
	var got []string
	for _, n := range Below(tr, "h") {
		got = append(got, n.Path)
	}
	want := []string{"h/initqueue", "h/initqueue/finished", "h/initqueue/finished/x.sh", "h/l", "h/pre-udev", "h/pre-udev/00-b.sh", "h/pre-udev/10-a.sh"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Below = %q, want %q", got, want)
	}
	if got := Below(tr, "missing"); got != nil {
		t.Errorf("Below(missing) = %d names", len(got))
	}
}
