package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/strip"
)

// A canary is a storage action an image carries that strip has never heard
// of: neutral names, placed where the generator really runs it. Its marker
// reaches the console only after the action succeeded.
type canary struct {
	marker string
	// edited: the canonical paths of which --dry-run must list one as
	// masked, neutralised or disabled (strip masks by a file of the same
	// name under etc/).
	edited []string
	files  []canaryFile
}

// canaryFile is one entry of the appended archive; path is as the image
// sees it (through its usr-merge links), target makes a symlink.
type canaryFile struct {
	path, body, target string
}

// canaryTools are the programs a canary calls, as the image has them.
type canaryTools struct{ mdadm, lvm, blkid, udevadm, modprobe string }

// canaryAction is the storage action of the unit, init-premount and
// pre-trigger canaries, as a subshell (dracut sources its hooks): bring the
// disks up, assemble the md array if the udev canary did not, activate
// every volume group, write to the testbed's swap partition; the marker
// says what it did. Failures are logged without the marker.
func canaryAction(marker, swapUUID string, c canaryTools) string {
	return fmt.Sprintf(`(
fail() { echo "hw-settle: $*" >/dev/kmsg; exit 0; }
for m in virtio_pci virtio_blk raid1 dm_mod; do %[3]s -q $m 2>/dev/null; done
%[4]s settle --timeout=30 2>/dev/null
i=0
while [ ! -b /dev/vdc ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
for d in /dev/vd?; do %[5]s --incremental "$d" >/dev/null 2>&1; done
%[4]s settle --timeout=30 2>/dev/null
md=0; for b in /sys/block/md*; do [ -e "$b" ] && md=$((md+1)); done
[ $md -gt 0 ] || fail "no array"
%[6]s vgchange -ay >/dev/kmsg 2>&1 || fail "vgchange: $?"
dm=0; for b in /sys/block/dm-*; do [ -e "$b" ] && dm=$((dm+1)); done
[ $dm -gt 0 ] || fail "no volume after vgchange"
dev=$(%[7]s -U %[2]s) || fail "no partition %[2]s"
printf 'hw-settle\n' >"$dev" || fail "write to $dev"
sleep 1
echo "%[1]s vgchange ok md=$md dm=$dm wrote $dev" >/dev/kmsg
)
`, marker, swapUUID, c.modprobe, c.udevadm, c.mdadm, c.lvm, c.blkid)
}

// canaries returns the canaries for the image's family, with paths resolved
// against its tree: a udev rule for all, a unit in the vendor
// sysinit.target.wants and a generator for systemd, an init-premount
// script for initramfs-tools, a pre-trigger hook for dracut.
func canaries(t *testing.T, tree *remix.Tree, family, swapUUID string) []canary {
	t.Helper()
	dir := func(cands ...string) string {
		for _, c := range cands {
			if p, n, err := tree.Resolve(c, true); err == nil && n != nil && n.IsDir() {
				return p
			}
		}
		t.Fatalf("the image has none of %v", cands)
		return ""
	}
	prog := func(name string) string {
		for _, d := range []string{"usr/sbin", "sbin", "usr/bin", "bin"} {
			if _, n, err := tree.Resolve(d+"/"+name, true); err == nil && n != nil && n.IsRegular() {
				return "/" + d + "/" + name
			}
		}
		t.Fatalf("the image has no %s", name)
		return ""
	}
	tools := canaryTools{prog("mdadm"), prog("lvm"), prog("blkid"), prog("udevadm"), prog("modprobe")}
	rules := dir("usr/lib/udev/rules.d", "lib/udev/rules.d")
	// Debian's 64-md-raid-assembly.rules in initramfs-tools images runs
	// mdadm --incremental through IMPORT{program}, while the rules are
	// processed, before any RUN: there the canary does the same (from a
	// rule that sorts first), or the original would always beat it.
	run := `RUN+=`
	if family == "initramfs-tools" {
		run = `IMPORT{program}=`
	}
	out := []canary{{
		marker: "CANARY-UDEV",
		edited: []string{rules + "/61-hwdb-extra.rules", "etc/udev/rules.d/61-hwdb-extra.rules"},
		files: []canaryFile{
			{path: rules + "/61-hwdb-extra.rules", body: `ACTION=="add", SUBSYSTEM=="block", KERNEL=="vd*", ` + run + `"/usr/libexec/hwprobe/probe $devnode"` + "\n"},
			{path: "usr/libexec/hwprobe/probe", body: fmt.Sprintf("#!/bin/sh\nout=$(%s --incremental \"$1\" 2>&1) || { echo \"hwprobe: $1: $out\" >/dev/kmsg; exit 0; }\necho \"CANARY-UDEV mdadm --incremental $1 ok\" >/dev/kmsg\n", tools.mdadm)},
		},
	}}
	switch family {
	case "initramfs-tools":
		order := "scripts/init-premount/ORDER"
		var old string
		if n := tree.Lookup(order); n != nil && n.Inode.Content != nil {
			r, err := n.Inode.Content.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			old = string(b)
		}
		out = append(out, canary{
			marker: "CANARY-PREMOUNT",
			edited: []string{"scripts/init-premount/hw-settle"},
			files: []canaryFile{
				{path: "scripts/init-premount/hw-settle", body: "#!/bin/sh\nPREREQ=\"\"\nprereqs() { echo \"$PREREQ\"; }\ncase $1 in prereqs) prereqs; exit 0 ;; esac\n" +
					canaryAction("CANARY-PREMOUNT", swapUUID, tools) + "exit 0\n"},
				{path: order, body: old + "/scripts/init-premount/hw-settle \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n"},
			},
		})
	case "dracut-systemd", "dracut-shell":
		hooks := dir("usr/lib/dracut/hooks/pre-trigger", "lib/dracut/hooks/pre-trigger", "var/lib/dracut/hooks/pre-trigger")
		out = append(out, canary{
			marker: "CANARY-HOOK",
			edited: []string{hooks + "/40-hw-settle.sh"},
			files:  []canaryFile{{path: hooks + "/40-hw-settle.sh", body: canaryAction("CANARY-HOOK", swapUUID, tools)}},
		})
	default:
		t.Fatalf("no canaries for the family %s", family)
	}
	if family != "dracut-systemd" {
		return out
	}
	units := dir("usr/lib/systemd/system", "lib/systemd/system")
	gens := dir("usr/lib/systemd/system-generators", "lib/systemd/system-generators")
	gen := gens + "/hw-extra-generator"
	out = append(out, canary{
		marker: "CANARY-UNIT",
		edited: []string{units + "/hw-tune.service", units + "/sysinit.target.wants/hw-tune.service", "etc/systemd/system/hw-tune.service"},
		files: []canaryFile{
			{path: units + "/hw-tune.service", body: "[Unit]\nDescription=Hardware tuning\nDefaultDependencies=no\n" +
				"After=systemd-udevd.service systemd-udev-trigger.service\nBefore=sysinit.target\n\n" +
				"[Service]\nType=oneshot\nExecStart=/usr/libexec/hw-tune/apply\nTimeoutSec=180\n"},
			{path: units + "/sysinit.target.wants/hw-tune.service", target: "../hw-tune.service"},
			{path: "usr/libexec/hw-tune/apply", body: "#!/bin/sh\n" + canaryAction("CANARY-UNIT", swapUUID, tools) + "exit 0\n"},
		},
	}, canary{
		// The generator's mount is its storage action; the report unit it
		// also emits prints the marker once the mount is there, rw.
		marker: "CANARY-GENERATOR",
		edited: []string{gen, "etc/systemd/system-generators/hw-extra-generator"},
		files: []canaryFile{{path: gen, body: `#!/bin/sh
if [ "$1" = report ]; then
	while read -r dev mnt fs opts rest; do
		[ "$mnt" = /srv ] || continue
		case $opts in rw*) echo "CANARY-GENERATOR mounted $dev ($fs) rw on /srv" >/dev/kmsg; exit 0 ;; esac
	done </proc/mounts
	echo "hw-extra: nothing writable on /srv" >/dev/kmsg
	exit 0
fi
d=${1:-/tmp}
mkdir -p "$d/local-fs.target.wants" "$d/sysinit.target.wants"
printf '%s\n' '[Unit]' 'Description=Extra hardware data' '[Mount]' 'What=/dev/disk/by-label/gptdata' 'Where=/srv' 'Type=ext4' 'Options=rw' >"$d/srv.mount"
ln -sf ../srv.mount "$d/local-fs.target.wants/srv.mount"
printf '%s\n' '[Unit]' 'Description=Extra hardware report' 'DefaultDependencies=no' 'Requires=srv.mount' 'After=srv.mount' 'Before=sysinit.target' \
	'[Service]' 'Type=oneshot' 'ExecStart=` + "/" + gen + ` report' >"$d/hw-extra-report.service"
ln -sf ../hw-extra-report.service "$d/sysinit.target.wants/hw-extra-report.service"
echo "hw-extra: units written to $d" >/dev/kmsg
`}},
	})
	return out
}

// writeCanaryImage copies the image at src to dst and appends one
// uncompressed archive with the canaries' files (and the directories they
// need that the image lacks), as the kernel unpacks concatenated archives.
// It reopens the result: every canary file must be in its tree, and
// nothing may be dropped.
func writeCanaryImage(t *testing.T, tree *remix.Tree, src, dst string, cs []canary) {
	t.Helper()
	var files []imagetest.Entry
	made := map[string]bool{}
	var mkdirs func(string)
	mkdirs = func(d string) {
		if d == "." || made[d] {
			return
		}
		if _, n, err := tree.Resolve(d, true); err == nil && n != nil {
			return
		}
		mkdirs(path.Dir(d))
		made[d] = true
		files = append(files, imagetest.Dir(d))
	}
	var want []string
	for _, c := range cs {
		for _, cf := range c.files {
			p := resolveNew(t, tree, cf.path)
			mkdirs(path.Dir(p))
			if cf.target != "" {
				files = append(files, imagetest.Symlink(p, cf.target))
			} else {
				files = append(files, imagetest.File(p, 0o755, cf.body))
			}
			want = append(want, p)
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel reads an archive's header only at a 4-byte aligned
	// offset; it skips the zeros before it.
	data = append(data, make([]byte, (4-len(data)%4)%4)...)
	if err := os.WriteFile(dst, append(data, imagetest.Archive(t, files...)...), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := remix.Open(context.Background(), dst, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if len(img.Dropped) > 0 {
		t.Fatalf("the kernel would drop %v from the canary image", img.Dropped)
	}
	for _, p := range want {
		if n := img.Tree.Get(p); n == nil || n.Gen() != len(img.Segments)-1 {
			t.Fatalf("%s is not the appended archive's in the canary image", p)
		}
	}
}

// resolveNew is the canonical name p gets in tree: its longest existing
// parent resolved through the image's links, the rest as given.
func resolveNew(t *testing.T, tree *remix.Tree, p string) string {
	t.Helper()
	dir, rest := path.Dir(p), path.Base(p)
	for dir != "." {
		if c, n, err := tree.Resolve(dir, true); err == nil && n != nil {
			if !n.IsDir() {
				t.Fatalf("%s: %s is not a directory in the image", p, c)
			}
			return c + "/" + rest
		}
		dir, rest = path.Dir(dir), path.Base(dir)+"/"+rest
	}
	return rest
}

var (
	canaryRe      = regexp.MustCompile(`CANARY-[A-Z]+[^\r\n]*`)
	canaryTriedRe = regexp.MustCompile(`(hwprobe|hw-settle|hw-extra): [^\r\n]*`)
	canaryDebugRe = regexp.MustCompile(`(?m)^.*(hw-|CANARY|md|mdadm|lvm|udev).*$`)
)

// TestCanaryLab is issue 15 point 2: each family's original image of every
// release, with canaries appended (see canaries), first booted as the
// positive control on writable copies of the testbed: every canary's
// marker must show and a disk must change, so the canaries are real. Then
// the dry run of its rescue build must list every canary among its edits,
// the rescue image must pass verify, and its boot must leave storage
// untouched (census, sha256, no passphrase) with no canary firing, and run
// the recovery programs it holds. This is the rescue boot of every family
// of every release built with the release's own root. Boots run two at a
// time.
func TestCanaryLab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	labs := labReleases(t)
	testtool.Require(t, "qemu-system-x86_64")
	tb := testbed(t, labs[0])
	payload := filepath.Join(t.TempDir(), "census.sh")
	if err := os.WriteFile(payload, []byte(programsPayload+censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, l := range labs {
		images := l.images
		if i == 0 {
			images = nil
			for _, name := range []string{"itools-zstd", "dracut-sd-zstd", "dracut-nosd-gzip"} {
				images = append(images, l.image(t, name))
			}
		}
		for _, im := range images {
			t.Run(l.release+"/"+im.Name, func(t *testing.T) {
				t.Parallel()
				canaryFamily(t, l, tb, im, payload)
			})
		}
	}
}

func canaryFamily(t *testing.T, l *lab, tb string, im labImage, payload string) {
	work := t.TempDir()
	img, err := remix.Open(context.Background(), im.Path, remix.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := canaries(t, img.Tree, im.Family, l.env["LAB_SWAP_UUID"])
	canaryImg := filepath.Join(work, "canary.img")
	writeCanaryImage(t, img.Tree, im.Path, canaryImg, cs)
	img.Close()

	t.Run("positive-control", func(t *testing.T) {
		// The canaries alone bring the storage up: dracut is given no
		// rd.md/rd.lvm arguments, and rd.luks=0 keeps a baked crypttab
		// from asking for the passphrase. The unit and the generator
		// finish before sysinit.target, so before the root is reached;
		// initramfs-tools' cryptroot would ask for the passphrase after
		// init-premount, so its boot ends at the last canary.
		args, expect := "root=/dev/mapper/vg0-root rd.luks=0 ro", l.env["LAB_MARKER"]
		switch im.Family {
		case "initramfs-tools":
			expect = "CANARY-PREMOUNT"
		case "dracut-shell":
			expect = "CANARY-HOOK"
		}
		log, changed := bootTestbedChanges(t, l, tb, canaryImg, args, expect, true)
		fired := canaryRe.FindAllString(log, -1)
		t.Logf("canaries fired: %q; disks changed: %v", fired, changed)
		missing := false
		for _, c := range cs {
			if !strings.Contains(log, c.marker+" ") {
				t.Errorf("%s did not fire: the canary is not real", c.marker)
				missing = true
			}
		}
		if missing {
			t.Logf("console lines of the canaries and md:\n%s", strings.Join(canaryDebugRe.FindAllString(log, -1), "\n"))
		}
		// The originals never write to the swap partition of gpt.img; the
		// canaries' actions do.
		touched := false
		for _, c := range changed {
			touched = touched || strings.HasPrefix(c, "gpt.img ")
		}
		if !touched {
			t.Errorf("gpt.img did not change (changed: %v): the canaries did not touch storage", changed)
		}
	})

	out := filepath.Join(work, "rescue.img")
	base := []string{"build", "--root", l.env["LAB_ROOT"], "--input", canaryImg, "--output", out, "--kver", l.env["LAB_KVER"]}
	t.Run("dry-run", func(t *testing.T) {
		code, stdout, errs := cli(t, append(base, "--dry-run", "--json")...)
		if code != exitOK {
			t.Fatalf("build --dry-run: exit %d: %s", code, errs)
		}
		var plan struct{ Items []strip.Item }
		if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
			t.Fatal(err)
		}
		edited := map[string]strip.Kind{}
		for _, it := range plan.Items {
			if it.Kind != strip.AddFile {
				edited[it.Path] = it.Kind
			}
		}
		for _, c := range cs {
			found := false
			for _, p := range c.edited {
				if _, ok := edited[p]; ok {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: the plan edits none of %v", c.marker, c.edited)
			}
		}
	})
	t.Run("rescue", func(t *testing.T) {
		if code, _, errs := cli(t, append(base, "-q", "--run", payload)...); code != exitOK {
			t.Fatalf("build: exit %d: %s", code, errs)
		}
		if code, stdout, errs := cli(t, "verify", out); code != exitOK {
			t.Errorf("verify of the rescue image: exit %d: %s%s", code, stdout, errs)
		}
		args := fmt.Sprintf("root=/dev/mapper/vg0-root rd.auto=1 rd.lvm.lv=vg0/root rd.luks.uuid=%s rd.md.uuid=%s resume=UUID=%s",
			l.env["LAB_LUKS_UUID"], l.env["LAB_MD_UUID"], l.env["LAB_SWAP_UUID"])
		// rescueBoot, with the canaries reported before the census is
		// judged: the boot ends at the census line whatever it says.
		log, changed := bootTestbedChanges(t, l, tb, out, args, censusExpect, true, passphrasePrompt, l.env["LAB_MARKER"])
		if fired := canaryRe.FindAllString(log, -1); len(fired) > 0 {
			sort.Strings(fired)
			t.Errorf("canaries fired in the rescue boot: %q", fired)
		}
		// What the canaries that ran did not get to do.
		if tried := canaryTriedRe.FindAllString(log, -1); len(tried) > 0 {
			t.Logf("canaries that ran and failed:\n%s", strings.Join(tried, "\n"))
		}
		for _, c := range changed {
			t.Errorf("%s changed during the boot", c)
		}
		checkCensus(t, log)
		// Built with the release's own root: its recovery programs
		// start on the image's libraries.
		checkPrograms(t, log)
	})
}
