package strip

import (
	"bytes"
	"io/fs"

	"github.com/initrd-remix/initrd-remix/remix"
)

// Finding is one thing left in a rescue image that could activate storage or
// switch root, or a piece of the rescue entry point that is missing.
type Finding struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// Assert checks the merged tree of a rescue image (the marker strip adds
// must be present; it is only meaningful on images built by Apply, possibly
// with more files merged on top by the overlay) and returns every problem:
// a storage unit, generator, udev rule, script or hook that is active again,
// baked storage configuration, or a missing or changed rescue file. An empty
// result means the image is clean. It runs the same profile as Apply, with
// every edit turned into a comparison, so the two cannot drift apart.
func Assert(t *remix.Tree) []Finding {
	if t.Lookup(Marker) == nil {
		return []Finding{{Path: Marker, Problem: "no rescue marker: not an initrd-remix rescue image"}}
	}
	d := Detect(t)
	e := &editor{t: t, plan: &Plan{Generator: d.Generator}, check: true}
	if err := e.profile(d); err != nil {
		return append(e.findings, Finding{Path: "init", Problem: err.Error()})
	}
	if err := e.common(Options{}, d.Generator); err != nil {
		e.findings = append(e.findings, Finding{Path: "", Problem: err.Error()})
	}
	// The marker's generator line may be the only difference a later
	// regeneration would make; it is informative, not a danger.
	out := e.findings[:0]
	for _, f := range e.findings {
		if f.Path != Marker {
			out = append(out, f)
		}
	}
	if n := t.Lookup(Payload); n != nil && (!n.IsRegular() || n.Inode.Mode&0o111 == 0) {
		out = append(out, Finding{Path: Payload, Problem: "payload is not an executable file"})
	}
	return out
}

// compare is put in check mode: the tree must already hold ent.
func (e *editor) compare(kind Kind, why string, ent remix.Entry) {
	name := remix.Canonical(ent.Name)
	p, n, err := e.t.Resolve(name, false)
	if err != nil {
		e.findings = append(e.findings, Finding{Path: name, Problem: err.Error()})
		return
	}
	problem := ""
	want := remix.FileMode(ent.Mode).Type()
	switch {
	case n == nil:
		problem = "missing"
	case n.Inode.FileMode().Type() != want:
		problem = "is a " + remix.TypeName(n.Inode.Mode) + ", want a " + remix.TypeName(ent.Mode)
	case want == fs.ModeSymlink && n.Inode.Target != ent.Target:
		problem = "links to " + n.Inode.Target + ", want " + ent.Target
	case want.IsRegular():
		want := readContent(ent.Content)
		if !bytes.Equal(readAll(n), want) {
			problem = "content differs from what initrd-remix writes"
		} else if ent.Mode&0o111 != 0 && n.Inode.Mode&0o111 == 0 {
			problem = "not executable"
		}
	}
	if problem != "" {
		e.findings = append(e.findings, Finding{Path: p, Problem: string(kind) + " not in effect (" + why + "): " + problem})
	}
}
