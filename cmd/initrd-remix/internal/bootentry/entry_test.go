package bootentry

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// systemdEntry is what systemd 252's 90-loaderentry.install wrote in the lab.
const systemdEntry = `title      Debian GNU/Linux 12 (bookworm)
version    6.1.0-50-amd64
machine-id f26fa2b166ec44ca823654ec9b51a726
sort-key   debian
options    root=UUID=1c0ffee0-1234-4abc-8def-0123456789ab ro quiet systemd.machine_id=f26fa2b166ec44ca823654ec9b51a726
linux      /boot/f26fa2b166ec44ca823654ec9b51a726/6.1.0-50-amd64/linux
initrd     /boot/f26fa2b166ec44ca823654ec9b51a726/6.1.0-50-amd64/initrd.img-6.1.0-50-amd64
`

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     *Entry
		err      string
	}{
		{name: "systemd", in: systemdEntry, want: &Entry{
			Title: "Debian GNU/Linux 12 (bookworm)", Version: "6.1.0-50-amd64", MachineID: "f26fa2b166ec44ca823654ec9b51a726",
			SortKey: "debian", Options: "root=UUID=1c0ffee0-1234-4abc-8def-0123456789ab ro quiet systemd.machine_id=f26fa2b166ec44ca823654ec9b51a726",
			Linux:  "/boot/f26fa2b166ec44ca823654ec9b51a726/6.1.0-50-amd64/linux",
			Initrd: []string{"/boot/f26fa2b166ec44ca823654ec9b51a726/6.1.0-50-amd64/initrd.img-6.1.0-50-amd64"}}},
		{name: "repeated keys, comments, tabs, CRLF", in: "# c\r\n\ttitle\tA  B \r\noptions a\noptions  b=c\ninitrd /u.img\ninitrd /i.img\nversion 1\nversion 2\nefi /x.efi\n\n", want: &Entry{
			Title: "A  B", Version: "2", Options: "a b=c", Initrd: []string{"/u.img", "/i.img"}, Extra: []Field{{"efi", "/x.efi"}}}},
		{name: "empty", in: "", want: &Entry{}},
		{name: "key without value", in: "title x\nlinux\n", err: "line 2: key \"linux\" has no value"},
		{name: "NUL", in: "title a\x00b\n", err: "line 1: NUL byte"},
		{name: "bad UTF-8", in: "title \xff\n", err: "line 1: not valid UTF-8"},
		{name: "too large", in: strings.Repeat("#", MaxSize+1), err: "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not a *ParseError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	e, err := Parse([]byte(systemdEntry))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	// Same key order and column as systemd's own entries.
	if got := string(e.Marshal()); got != systemdEntry {
		t.Fatalf("marshal:\n%s\nwant:\n%s", got, systemdEntry)
	}
}

func TestValidate(t *testing.T) {
	ok := Entry{Version: "1", Linux: "/l", Initrd: []string{"/i"}}
	tests := []struct {
		name string
		edit func(e *Entry)
		err  string
	}{
		{"ok", func(*Entry) {}, ""},
		{"newline in title", func(e *Entry) { e.Title = "a\nlinux /evil" }, "one line"},
		{"trailing space", func(e *Entry) { e.Options = "a " }, "white space"},
		{"no version", func(e *Entry) { e.Version = "" }, "no version"},
		{"relative linux", func(e *Entry) { e.Linux = "l" }, "absolute"},
		{"no initrd", func(e *Entry) { e.Initrd = nil }, "no initrd"},
		{"bad extra key", func(e *Entry) { e.Extra = []Field{{"a b", "c"}} }, "single word"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.edit(&e)
			err := e.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate: %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that what it accepts and
// Validate passes survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.conf")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			return
		}
		if e.Validate() != nil {
			return
		}
		again, err := Parse(e.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", e.Marshal(), err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, again)
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n# c\nX='a b'\nY=\"\\\"q\\\"\"\nbad line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range ParseOSRelease(data) {
			if k == "" || strings.ContainsAny(k, "\n=") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func TestParseOSRelease(t *testing.T) {
	got := ParseOSRelease([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n# c\nX='a b'\nY=\"\\\"q\\\"\"\nbad line\n"))
	want := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "X": "a b", "Y": `"q"`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if s := DefaultTitle(got, "6.1.0-50-amd64"); s != "Debian GNU/Linux 12 (bookworm), Linux 6.1.0-50-amd64, rescue (initrd-remix)" {
		t.Errorf("title %q", s)
	}
	if s := DefaultSortKey(got); s != "debian-rescue" {
		t.Errorf("sort key %q", s)
	}
}

func TestSanitizeOptions(t *testing.T) {
	tests := []struct{ in, want string }{
		{"BOOT_IMAGE=/vmlinuz-6.1 root=/dev/vda ro quiet", "root=/dev/vda ro quiet"},
		{"console=ttyS0  rdinit=/bin/sh init=/sbin/x initrd=\\a.img panic=-1", "console=ttyS0 panic=-1"},
		{"rd.break break=premount rd.shell systemd.unit=rescue.target rd.systemd.unit=x.target keep.break=1", "keep.break=1"},
		{"console=ttyS0 -- --firecracker-init --addr 0.0.0.0", "console=ttyS0"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := SanitizeOptions(tc.in); got != tc.want {
			t.Errorf("SanitizeOptions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
