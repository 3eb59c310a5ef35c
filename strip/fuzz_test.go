package strip

import (
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip/audit"
)

// FuzzApply feeds arbitrary ORDER files, udev rules and cmdline.d contents
// (the image text strip parses) through Apply: it must not panic, and
// whatever it accepts must then pass Assert and the independent audit, so
// strip can leave nothing running that the audit would catch.
func FuzzApply(f *testing.F) {
	f.Add("/scripts/init-premount/mdadm \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n", "RUN+=\"/sbin/mdadm -I $env{DEVNAME}\"\n", "rd.lvm.lv=vg0/root\n", "64-md-raid-assembly.rules")
	f.Add("", "", "", "80-drivers.rules")
	f.Add("exec /usr/lib/initrd-remix/rescue\n# initrd-remix: hand over to the rescue entry point (never returns)\n", "#only a comment\n", "\x00\xff", "x.rules")
	f.Add("/scripts/init-premount/hw\n\n\n", "PROGRAM==\"/usr/sbin/lvm pvscan\"", "root=UUID=1", "90-lvm-x.rules")
	f.Fuzz(func(t *testing.T, order, rule, cmdline, ruleName string) {
		if strings.ContainsAny(ruleName, "/\x00") || ruleName == "" || ruleName == "." || ruleName == ".." {
			return
		}
		tr := itoolsTree(t)
		put := func(name, body string) {
			if _, err := tr.Put(remix.File(name, 0o644, remix.BytesContent(body))); err != nil {
				t.Fatal(err)
			}
		}
		put("scripts/init-premount/ORDER", order)
		put("lib/udev/rules.d/"+ruleName+".rules", rule)
		tr.MkdirAll("etc/cmdline.d", 0o755, 0)
		put("etc/cmdline.d/01-x.conf", cmdline)
		if _, err := Apply(tr, Options{}); err != nil {
			return
		}
		if f := Assert(tr); len(f) != 0 {
			t.Fatalf("Assert after Apply: %v", f)
		}
		// And the independent audit finds nothing strip left running.
		if f := audit.Check(tr); len(f) != 0 {
			t.Fatalf("audit after Apply: %v", f)
		}
	})
}
