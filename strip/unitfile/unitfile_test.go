package unitfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		section  string
		key      string
		want     []string
		err      string
	}{
		{"list with reset", "[Unit]\nWants=a.service b.service\nWants=\nWants=c.service\n", "Unit", "Wants", []string{"c.service"}, ""},
		{"continuation", "[Service]\nExecStart=/bin/a \\\n  --flag\n", "Service", "ExecStart", []string{"/bin/a  --flag"}, ""},
		{"comments in a continuation", "[Service]\nExecStart=/bin/a \\\n# x\n  b\n", "Service", "ExecStart", []string{"/bin/a  b"}, ""},
		{"comments and CRLF", "# c\r\n; c\r\n[Unit]\r\nRequires=x.target\r\n", "Unit", "Requires", []string{"x.target"}, ""},
		{"other section", "[Install]\nWantedBy=sysinit.target\n", "Unit", "WantedBy", nil, ""},
		{"assignment outside a section", "Wants=a\n", "", "", nil, "outside a section"},
		{"garbage", "[Unit]\nthis is not a key\n", "", "", nil, "line 2: not an assignment"},
		{"bad header", "[Unit\n", "", "", nil, "bad section header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Values(tc.section, tc.key); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Values = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Error("an oversized unit was accepted")
	}
}

func TestProgram(t *testing.T) {
	for in, want := range map[string][]string{
		"-udevadm trigger --type=all":         {"udevadm"},
		"@/bin/sh sh -c x":                    {"/bin/sh"},
		"!!/usr/lib/x --y":                    {"/usr/lib/x"},
		"+-/bin/a ; /sbin/lvm vgchange -ay":   {"/bin/a", "/sbin/lvm"},
		`"/usr/bin/quoted" arg`:               {"/usr/bin/quoted"},
		"":                                    nil,
		":/bin/env-free arg":                  {"/bin/env-free"},
		"|/bin/shell-in-systemd-257-style -c": {"/bin/shell-in-systemd-257-style"},
	} {
		if got := Program(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Program(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommands(t *testing.T) {
	f, err := Parse([]byte("[Service]\nExecStartPre=/a\nExecStart=/b\nEnvironment=X=1\n[Socket]\nExecStopPost=/c\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Commands() {
		got = append(got, c.Key+"="+c.Value)
	}
	if want := []string{"ExecStartPre=/a", "ExecStart=/b", "ExecStopPost=/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Commands = %q", got)
	}
}

// FuzzParse: any input parses or fails with an error, never panics, and
// what parses keeps every assignment's key free of spaces.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[Unit]\nWants=a.service\n[Service]\nExecStart=-/bin/x \\\n y\n"))
	f.Add([]byte("[Install]\nWantedBy=sysinit.target\n\\\n"))
	f.Add([]byte("\xff[\n=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Parse(b)
		if err != nil {
			return
		}
		for _, e := range u.Entries {
			if e.Key == "" || strings.ContainsAny(e.Key, " \t") || e.Section == "" {
				t.Fatalf("bad entry %+v", e)
			}
			Program(e.Value)
		}
	})
}
