package strip

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/initrd-remix/initrd-remix/remix"
)

// Generator names the tool that built an initrd.
type Generator string

// Unknown is the generator of an image no profile recognises.
const Unknown Generator = "unknown"

// Detection is the generator found and what showed it.
type Detection struct {
	Generator Generator `json:"generator"`
	Evidence  []string  `json:"evidence"`
}

// A Profile is one initrd generator strip knows about, in a file of its own:
// how to recognise its images and, if strip supports it, the edits that make
// one a rescue image. A profile without edits is recognised and refused,
// with Refusal saying why.
type Profile struct {
	// Name is the generator's name, as inspect and build report it.
	Name Generator
	// Detect returns the evidence that t was built by this generator, or
	// nil if it was not. Paths are looked up through the image's links,
	// so a usr-merged image is read as the kernel would see it.
	Detect func(t *remix.Tree) []string
	// Edit applies the generator's own edits; the edits every profile
	// needs (udev rules, storage configuration, the rescue entry point)
	// are applied after it. Nil for a refused generator.
	Edit func(e *editor) error
	// Refusal says why images of a recognised but unsupported generator
	// are refused.
	Refusal string
}

// profiles is the registry: every generator strip recognises. Adding a
// generator is a file with its Profile and one line here.
func profiles() []Profile {
	return []Profile{
		initramfsToolsProfile(),
		dracutSystemdProfile(),
		dracutShellProfile(),
		systemdInitrdProfile(),
		mkinitcpioProfile(),
		boosterProfile(),
		tinyInitramfsProfile(),
		alpineMkinitfsProfile(),
	}
}

// lookupProfile returns the registered profile named g.
func lookupProfile(g Generator) (Profile, bool) {
	for _, p := range profiles() {
		if p.Name == g {
			return p, true
		}
	}
	return Profile{}, false
}

// Supported lists the generators with edits, the ones Apply accepts, in
// the registry's order.
func Supported() []string {
	var out []string
	for _, p := range profiles() {
		if p.Edit != nil {
			out = append(out, string(p.Name))
		}
	}
	return out
}

// Detect names the generator that built t. Every profile is asked; exactly
// one must recognise the image. None gives Unknown; more than one is
// reported as Unknown too, with every profile's evidence, since strip
// cannot tell which edits would neutralise such an image.
func Detect(t *remix.Tree) Detection {
	initKind := describeInit(t)
	var hits []Detection
	for _, p := range profiles() {
		if ev := p.Detect(t); ev != nil {
			hits = append(hits, Detection{Generator: p.Name, Evidence: append(ev, initKind)})
		}
	}
	switch len(hits) {
	case 0:
		return Detection{Generator: Unknown, Evidence: []string{initKind}}
	case 1:
		return hits[0]
	}
	ev := []string{}
	for _, h := range hits {
		ev = append(ev, fmt.Sprintf("looks like %s (%s)", h.Generator, strings.Join(h.Evidence[:len(h.Evidence)-1], ", ")))
	}
	return Detection{Generator: Unknown, Evidence: append(ev, initKind)}
}

// UnsupportedError is returned for images no profile can vouch for.
type UnsupportedError struct {
	Detection Detection
	// Refusal is the profile's reason, for a recognised generator.
	Refusal string
}

func (e *UnsupportedError) Error() string {
	why := ""
	if e.Refusal != "" {
		why = ": " + e.Refusal
	}
	return fmt.Sprintf("unsupported initrd generator %q (evidence: %s)%s; supported: %s",
		e.Detection.Generator, strings.Join(e.Detection.Evidence, "; "), why, strings.Join(Supported(), ", "))
}

// present returns "P present" for each of paths that t has, in order.
func present(t *remix.Tree, paths ...string) []string {
	var ev []string
	for _, p := range paths {
		if t.Lookup(p) != nil {
			ev = append(ev, p+" present")
		}
	}
	return ev
}

// describeInit says what /init is, which every generator decides.
func describeInit(t *remix.Tree) string {
	n := t.Lookup("init")
	if n == nil {
		return "no /init"
	}
	switch {
	case n.IsSymlink():
		return "/init -> " + n.Inode.Target
	case n.IsRegular():
		head := remix.Head(n.Inode.Content, 128)
		switch {
		case remix.IsScript(head):
			line, _, _ := bytes.Cut(head, []byte("\n"))
			return "/init is a script (" + string(line) + ")"
		case remix.IsELF(head):
			return "/init is an ELF program"
		}
		return "/init is a regular file"
	}
	return "/init is a " + remix.TypeName(n.Inode.Mode)
}
