package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/newc"
)

func TestTreeFindings(t *testing.T) {
	tr := remix.NewTree()
	link := func(name, target string) remix.Entry {
		return remix.Entry{Name: name, Mode: newc.TypeSymlink | 0o777, Target: target}
	}
	for _, e := range []remix.Entry{
		{Name: "etc", Mode: newc.TypeDir | 0o755},
		{Name: "etc/hostname", Mode: newc.TypeReg | 0o644, Content: remix.BytesContent("x\n")},
		link("etc/ok", "hostname"),
		link("etc/gone", "../nothere"),
		link("etc/mask", "/dev/null"),
		link("etc/mtab", "../proc/self/mounts"),
		link("etc/a", "b"),
		link("etc/b", "a"),
		{Name: "run.sh", Mode: newc.TypeReg | 0o755, Content: remix.BytesContent("#!/bin/sh\n")},
		{Name: "notes.sh", Mode: newc.TypeReg | 0o644, Content: remix.BytesContent("#!/bin/sh\n")}, // not executable: not checked
	} {
		if _, err := tr.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := Tree(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		"error: dangling: /etc/a: symlink loop: -> b",
		"error: dangling: /etc/b: symlink loop: -> a",
		"warning: dangling: /etc/gone: -> ../nothere: nothing there in the image",
		"error: libraries: /run.sh: /bin/sh not found in the image: interpreter: resolve /bin/sh: /bin: no such file or directory",
		"warning: strip: /usr/lib/initrd-remix/rescue-image: not an initrd-remix rescue image (no marker): storage and switch_root assertions not checked",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !Failed(fs) || Failed(fs[2:3]) {
		t.Error("Failed does not follow severities")
	}
}
