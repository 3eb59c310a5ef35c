package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/initrd-remix/initrd-remix/remix/imagetest"
)

// TestBuildOutputMode: a rescue image is never readable by other users
// (issue 16, point 1). It is 0600, or the input's bits where they are
// stricter, whatever the input's mode; an older, wider rescue image is
// replaced by a private one.
func TestBuildOutputMode(t *testing.T) {
	img := smallImage(t)
	for _, tc := range []struct{ in, want os.FileMode }{
		{0o644, 0o600}, {0o755, 0o600}, {0o640, 0o600}, {0o400, 0o400},
	} {
		t.Run(tc.in.String(), func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "initrd.img-6.1.0-9-amd64")
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(in, data, 0o600)
			os.Chmod(in, tc.in)
			out := filepath.Join(dir, "initrd-remix-rescue-6.1.0-9-amd64.img")
			for i := 0; i < 2; i++ { // the second build replaces the first
				if code, _, errs := cli(t, "build", "--quiet", "--config", "", "--config-dir", "", "--input", in); code != exitOK {
					t.Fatalf("exit %d: %s", code, errs)
				}
				st, err := os.Stat(out)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != tc.want {
					t.Fatalf("input %v: output %v, want %v", tc.in, st.Mode().Perm(), tc.want)
				}
				os.Chmod(out, 0o644)
			}
		})
	}
}

// hostileNames are entry names and a link target that would move the
// cursor, clear the screen, fake a line or reverse the text on a terminal.
var hostileNames = []string{"etc/\x1b[2J\x1b[31mred", "etc/two\nlines 0 0/0 0 fake-entry", "etc/cr\rover", "etc/\u202eevil", "etc/bad\xffutf8"}

// TestInspectEscapesNames: inspect --files escapes names and link targets
// from the image on the terminal, and --json keeps them exactly (issue 16,
// point 9).
func TestInspectEscapesNames(t *testing.T) {
	var extra []imagetest.Entry
	for _, n := range hostileNames {
		extra = append(extra, imagetest.File(n, 0o644, "x"))
	}
	extra = append(extra, imagetest.Symlink("etc/link", "\x1b]0;title\x07"))
	img := smallImageWith(t, "6.1.0-9-amd64", extra...)
	code, out, errs := cli(t, "inspect", "--files", img)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.ContainsAny(out, "\x1b\r\x07\u202e") || strings.Contains(out, "\xff") || strings.Contains(out, "\nlines 0 0") {
		t.Fatalf("raw control characters in the output:\n%q", out)
	}
	for _, want := range []string{`etc/\x1b[2J\x1b[31mred`, `etc/two\nlines`, `etc/cr\rover`, `etc/\u202eevil`, `etc/bad\xffutf8`, `etc/link -> \x1b]0;title\a`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	code, out, errs = cli(t, "inspect", "--files", "--json", img)
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range rep.Files {
		got[f.Name] = f.Target
	}
	for _, n := range hostileNames[:4] { // JSON carries valid UTF-8 exactly
		if _, ok := got[n]; !ok {
			t.Errorf("--json lost %q", n)
		}
	}
	if got["etc/link"] != "\x1b]0;title\x07" {
		t.Errorf("--json target %q", got["etc/link"])
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"usr/bin/ls":       "usr/bin/ls",
		"with space/é/日本":  "with space/é/日本",
		"a\nb":             `a\nb`,
		"\x1b[0m":          `\x1b[0m`,
		"tab\there":        `tab\there`,
		"back\\slash":      `back\\slash`,
		"\x7f\u0085\u202e": `\x7f\u0085\u202e`,
		"bad\xff\xfe":      `bad\xff\xfe`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"two\n\tlines":            "two\n\tlines",
		`"a\nb" is %q-quoted`:     `"a\nb" is %q-quoted`,
		"raw \x1b[2J\r\u202e\xff": `raw \x1b[2J\r\u202e\xff`,
	} {
		if got := termMessage(in); got != want {
			t.Errorf("termMessage(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestErrorsEscaped: an error message that names a file or entry from
// outside carries no escape sequence to the terminal.
func TestErrorsEscaped(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "evil\x1b]0;owned\x07\x1b[2J.img")
	os.WriteFile(bad, []byte("MZ not an initrd"), 0o644)
	code, _, errs := cli(t, "inspect", bad)
	if code != exitFailed || strings.ContainsAny(errs, "\x1b\x07") || !strings.Contains(errs, `evil\x1b]0;owned\a\x1b[2J.img`) {
		t.Fatalf("exit %d: %q", code, errs)
	}
}

// TestBuildRefusesHostileKernelVersion: without --kver, a kernel version
// read from the image that is not fit to name a file is refused, and no
// file is made from it (issue 16, point 9).
func TestBuildRefusesHostileKernelVersion(t *testing.T) {
	for _, kver := range []string{"6.1 $(reboot)", "6.1\x1b[2J", ".hidden", "6.1'x", strings.Repeat("9", 65)} {
		t.Run(fmt.Sprintf("%q", kver), func(t *testing.T) {
			img := smallImageWith(t, kver)
			code, _, errs := cli(t, "build", "--quiet", "--preset", "none", "--config", "", "--config-dir", "", "--input", img)
			if code != exitFailed || !strings.Contains(errs, "name the kernel with --kver") || strings.ContainsAny(errs, "\x1b") {
				t.Fatalf("exit %d: %q", code, errs)
			}
			if left, _ := os.ReadDir(filepath.Dir(img)); len(left) != 1 {
				t.Errorf("files beside the input: %v", left)
			}
		})
	}
	// --kver names the output: it is checked the same way.
	img := smallImage(t)
	if code, _, errs := cli(t, "build", "--quiet", "--input", img, "--kver", "../../x"); code != exitUsage || !strings.Contains(errs, `--kver: kernel version "../../x"`) {
		t.Fatalf("--kver ../../x: exit %d: %s", code, errs)
	}
}

// FuzzTermSafe: whatever a name holds, termSafe prints only valid UTF-8
// without control or format characters, and unambiguously (the escapes
// read back as Go string escapes give the name again); termMessage keeps
// only newlines and tabs of the control characters.
func FuzzTermSafe(f *testing.F) {
	for _, n := range hostileNames {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := termSafe(s)
		if !utf8.ValidString(out) {
			t.Fatalf("termSafe(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if !unicode.IsPrint(r) {
				t.Fatalf("termSafe(%q) = %q: holds %U", s, out, r)
			}
		}
		back, err := strconv.Unquote(`"` + strings.ReplaceAll(out, `"`, `\"`) + `"`)
		if err != nil || back != s {
			t.Fatalf("termSafe(%q) = %q reads back as %q (%v)", s, out, back, err)
		}
		for _, r := range termMessage(s) {
			if !unicode.IsPrint(r) && r != '\n' && r != '\t' {
				t.Fatalf("termMessage(%q) holds %U", s, r)
			}
		}
	})
}
