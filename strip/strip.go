// Package strip turns a distribution's initrd (as a remix.Tree) into a
// rescue initrd: the generator is detected, and a profile for it disables
// everything that would touch storage or leave the initrd (md assembly, LVM
// activation, LUKS unlock, multipath, iSCSI/NVMe-oF, zfs import, resume,
// fsck, the root mount, switch_root), by configuration *and* by overriding
// the units, generators, udev rules and scripts that would act. It then adds
// the rescue entry point (files/rescue.sh), which runs an optional payload
// and a shell on the console. Module loading, udev and coldplug, firmware,
// console and keymap are left to the distribution's own boot.
//
// Each generator is a Profile in a file of its own (profile.go holds the
// registry): how to recognise its images and the edits it needs. Profiles
// exist for initramfs-tools, dracut with systemd and dracut without systemd;
// recognised generators without edits (mkinitcpio, booster) and unknown
// images are refused. Every edit is recorded as a plan Item so
// that `build --dry-run` can show it. Assert checks a merged tree that carries
// the rescue marker for anything left that would activate storage or switch
// root; the `verify` command uses it.
package strip

import (
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
)

//go:embed files
var files embed.FS

// Paths of the files every profile adds.
const (
	// Marker is present in every image strip produced; Assert refuses to
	// judge a tree without it.
	Marker = "usr/lib/initrd-remix/rescue-image"
	// Entry is the rescue entry point.
	Entry = "usr/lib/initrd-remix/rescue"
	// Payload is where Options.Payload is installed.
	Payload = "usr/lib/initrd-remix/payload"
	// ShellRC is the rescue shell's $ENV file.
	ShellRC = "usr/lib/initrd-remix/shrc"
	// SkipPayloadArg on the kernel command line skips the payload.
	SkipPayloadArg = "initrd_remix.payload=0"
	// MountPoint is the directory the banner tells the administrator to
	// mount on.
	MountPoint = "mnt"
)

// Kind says what an edit does, for the plan.
type Kind string

const (
	MaskUnit         Kind = "mask unit"
	MaskGenerator    Kind = "mask generator"
	MaskUdevRule     Kind = "mask udev rule"
	NeutraliseScript Kind = "neutralise script"
	OverrideConfig   Kind = "override config"
	AddFile          Kind = "add file"
	DisableLines     Kind = "disable lines"

	// What the allow-list kept, for the plan: nothing is written.
	KeepUnit      Kind = "keep unit"
	KeepGenerator Kind = "keep generator"
	KeepScript    Kind = "keep script"
)

// Item is one edit of the tree.
type Item struct {
	Kind Kind   `json:"kind"`
	Path string `json:"path"` // canonical path written in the image
	Why  string `json:"why"`
}

// Plan is what a profile did: the generator it recognised and every edit.
type Plan struct {
	Generator Generator `json:"generator"`
	Evidence  []string  `json:"evidence"`
	Items     []Item    `json:"items"`
	// Kept lists what the allow-list let run, and why: units, generators,
	// hooks and scripts (build --dry-run shows it).
	Kept []Item `json:"kept,omitempty"`
}

// Options tune Apply.
type Options struct {
	// Payload, when set, is installed as an executable run by the rescue
	// entry point before its shell.
	Payload remix.Content
	// Mtime of the added entries; 0 takes /init's, so the same input gives
	// the same output.
	Mtime uint32
}

// ErrAlreadyRescue is returned for an image strip already produced:
// stripping it again would neutralise the rescue entry point's own hooks.
var ErrAlreadyRescue = errors.New("the image is already an initrd-remix rescue image")

// Apply detects the generator of t and applies its profile. The caller sets
// t's edit generation first (t.SetGeneration(img.EditGeneration())) so that
// append mode writes only these edits.
func Apply(t *remix.Tree, opt Options) (*Plan, error) {
	if t.Lookup(Marker) != nil {
		return nil, ErrAlreadyRescue
	}
	d := Detect(t)
	e := &editor{t: t, plan: &Plan{Generator: d.Generator, Evidence: d.Evidence}, mtime: opt.Mtime}
	if e.mtime == 0 {
		if n := t.Lookup("init"); n != nil {
			e.mtime = n.Inode.Mtime
		}
	}
	if err := e.profile(d); err != nil {
		return nil, err
	}
	if err := e.common(opt, d.Generator); err != nil {
		return nil, err
	}
	return e.plan, nil
}

// profile runs the edits of the generator d names.
func (e *editor) profile(d Detection) error {
	p, ok := lookupProfile(d.Generator)
	if !ok || p.Edit == nil {
		return &UnsupportedError{Detection: d, Refusal: p.Refusal}
	}
	return p.Edit(e)
}

// editor applies edits to a tree and records them.
type editor struct {
	t     *remix.Tree
	plan  *Plan
	mtime uint32
	// check makes every edit a comparison: Assert runs the profile this
	// way and reports each edit the tree does not already carry.
	check    bool
	findings []Finding
}

func embedded(name string) []byte {
	b, err := files.ReadFile("files/" + name)
	if err != nil {
		panic("strip: missing embedded file " + name) // a build defect, not input
	}
	return b
}

// put writes ent into the image as every stage does (remix.Tree.Install:
// the parent resolved through the image's own symlinks, missing parents
// made with the editor's mtime, never over a directory or through a
// symlink in the last component, hard links to what was there untouched)
// and records the edit.
func (e *editor) put(kind Kind, why string, ent remix.Entry) error {
	if e.check {
		e.compare(kind, why, ent)
		return nil
	}
	if ent.Mtime == 0 {
		ent.Mtime = e.mtime
	}
	n, err := e.t.Install(ent, remix.ParentMtime(e.mtime))
	if err != nil {
		return fmt.Errorf("%s: %w", ent.Name, err)
	}
	e.plan.Items = append(e.plan.Items, Item{Kind: kind, Path: n.Path, Why: why})
	return nil
}

// keep records that the allow-list let path run.
func (e *editor) keep(kind Kind, why, name string) {
	if !e.check {
		e.plan.Kept = append(e.plan.Kept, Item{Kind: kind, Path: name, Why: why})
	}
}

func (e *editor) file(kind Kind, why, name string, mode uint32, body []byte) error {
	return e.put(kind, why, remix.File(name, mode, remix.BytesContent(body)))
}

// mask links name to /dev/null, systemd's and udev's own way to mask.
func (e *editor) mask(kind Kind, why, name string) error {
	return e.put(kind, why, remix.Symlink(name, "/dev/null"))
}

// readAll returns a regular file's content (nil for anything else), up to
// a little over 4 MiB.
func readAll(n *remix.Node) []byte {
	if n == nil || !n.IsRegular() {
		return nil
	}
	return readContent(n.Inode.Content)
}

func readContent(c remix.Content) []byte {
	if c == nil {
		return nil
	}
	r, err := c.Open()
	if err != nil {
		return nil
	}
	defer r.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Read(buf)
		b.Write(buf[:k])
		if err != nil || b.Len() > 4<<20 {
			break
		}
	}
	return []byte(b.String())
}

// common adds what every profile needs: the entry point, its shell startup
// file, the payload, the marker, and the udev and storage configuration.
func (e *editor) common(opt Options, g Generator) error {
	if err := e.udevRules(); err != nil {
		return err
	}
	if err := e.configLines(); err != nil {
		return err
	}
	if err := e.storageConfig(); err != nil {
		return err
	}
	if err := e.file(AddFile, "rescue entry point: payload, banner, console shell", Entry, 0o755, embedded("rescue.sh")); err != nil {
		return err
	}
	if err := e.file(AddFile, "rescue shell startup: poweroff/reboot without an init to talk to", ShellRC, 0o644, embedded("shrc.sh")); err != nil {
		return err
	}
	// The banner says `mount DEVICE /mnt`; no generator's image has /mnt.
	// Added only where nothing is, so an image's own mnt (a link, say) stays.
	if e.t.Lookup(MountPoint) == nil {
		if err := e.put(AddFile, "mount point for the banner's mount -o ro DEVICE /mnt", remix.Dir(MountPoint, 0o755)); err != nil {
			return err
		}
	}
	if opt.Payload != nil && !e.check {
		if err := e.put(AddFile, "payload given with --run", remix.File(Payload, 0o755, opt.Payload)); err != nil {
			return err
		}
	}
	return e.file(AddFile, "marks a rescue image (strip.Assert, verify)", Marker, 0o644,
		[]byte("initrd-remix rescue image\ngenerator="+string(g)+"\n"))
}

// storageConfig empties the configuration that names storage to bring up,
// wherever the image has it.
func (e *editor) storageConfig() error {
	for _, c := range []struct{ name, why string }{
		{"etc/crypttab", "no LUKS volume is opened from the baked crypttab"},
		{"cryptroot/crypttab", "initramfs-tools' cryptroot opens nothing"},
	} {
		if n := e.t.Lookup(c.name); n != nil {
			if err := e.file(OverrideConfig, c.why, c.name, 0o644, []byte("# initrd-remix: emptied; open volumes by hand with cryptsetup open\n")); err != nil {
				return err
			}
		}
	}
	for _, c := range []struct{ name, file, why string }{
		{"etc/mdadm/mdadm.conf", "mdadm.conf", "no automatic md assembly (AUTO -all, no ARRAY lines)"},
		{"etc/mdadm.conf", "mdadm.conf", "no automatic md assembly (AUTO -all, no ARRAY lines)"},
		{"etc/lvm/lvm.conf", "lvm.conf", "no LVM auto-activation (event_activation=0, empty auto_activation_volume_list)"},
	} {
		if e.t.Lookup(c.name) != nil {
			if err := e.file(OverrideConfig, c.why, c.name, 0o644, embedded(c.file)); err != nil {
				return err
			}
		}
	}
	// Without a configuration file mdadm assembles whatever it is given
	// (AUTO defaults to yes): a program strip does not know that runs
	// mdadm -I must find AUTO -all too.
	if e.t.Lookup("etc/mdadm/mdadm.conf") == nil && e.t.Lookup("etc/mdadm.conf") == nil {
		return e.file(AddFile, "no automatic md assembly by anything that runs mdadm (AUTO -all)", "etc/mdadm/mdadm.conf", 0o644, embedded("mdadm.conf"))
	}
	return nil
}

// tokens splits a file name into lower-case words, without a leading
// number and the extension: "64-md-raid-assembly.rules" -> md raid assembly.
func tokens(name string) []string {
	name = strings.ToLower(name)
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		name = name[:i]
	}
	f := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '@' || r == '.' })
	if len(f) > 0 && strings.Trim(f[0], "0123456789") == "" {
		f = f[1:]
	}
	return f
}

func anyToken(name string, set map[string]bool) bool {
	for _, w := range tokens(name) {
		if set[w] {
			return true
		}
	}
	return false
}

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}
