package rescueuki

import (
	"bytes"
	"context"
	"debug/pe"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/remix/imagetest"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/uki"
	"github.com/initrd-remix/initrd-remix/uki/ukitest"
)

func TestRescueCmdline(t *testing.T) {
	off := strip.StorageOffArgs
	for _, tc := range []struct{ in, want string }{
		{"console=ttyS0 root=/dev/vda rw", "console=ttyS0 " + off},
		{"root=UUID=x ro quiet splash rd.luks.uuid=abc rd.lvm.lv=vg/root resume=/dev/sda2 rootflags=subvol=@", "quiet splash " + off},
		{"init=/bin/sh rdinit=/x systemd.unit=rescue.target console=tty0 -- single", "console=tty0 " + off},
		{"", off},
		{"mount.usr=/dev/vg/usr rd.md.uuid=1 rd.auto=1 systemd.volatile=yes net.ifnames=0", "net.ifnames=0 " + off},
	} {
		if got := Cmdline(tc.in); got != tc.want {
			t.Errorf("Cmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRescueOSRelease(t *testing.T) {
	for _, tc := range []struct{ in, pretty, imageID string }{
		{"NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n", "Debian GNU/Linux 13 (trixie) (initrd-remix rescue)", "debian-rescue"},
		{"NAME=Fedora\nID=fedora\nIMAGE_ID=workstation\n", "Fedora (initrd-remix rescue)", "workstation-rescue"},
		{"", "Linux (initrd-remix rescue)", "linux-rescue"},
	} {
		out := OSRelease(tc.in)
		m := bootentry.ParseOSRelease([]byte(out))
		if m["PRETTY_NAME"] != tc.pretty || m["IMAGE_ID"] != tc.imageID {
			t.Errorf("OSRelease(%q):\n%s\nPRETTY_NAME %q IMAGE_ID %q", tc.in, out, m["PRETTY_NAME"], m["IMAGE_ID"])
		}
		if strings.Count(out, "PRETTY_NAME=") != 1 || strings.Count(out, "IMAGE_ID=") != 1 {
			t.Errorf("duplicate keys:\n%s", out)
		}
	}
}

// TestOSRelQuote: os-release(5) values in double quotes escape ", \, $ and `.
func TestOSRelQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              `"plain"`,
		"it\"s $HOME `x` \\": "\"it\\\"s \\$HOME \\`x\\` \\\\\"",
		"two\nlines":         `"two lines"`,
	} {
		if got := osrelQuote(in); got != want {
			t.Errorf("osrelQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSecureBootOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"enabled", []byte{6, 0, 0, 0, 1}, true},
		{"disabled", []byte{6, 0, 0, 0, 0}, false},
		{"short", []byte{6, 0, 0, 0}, false},
		{"absent", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.data != nil {
				p := filepath.Join(root, SecureBootVar)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, tc.data, 0o644)
			}
			if got := SecureBootOn(root); got != tc.want {
				t.Errorf("SecureBootOn = %v, want %v", got, tc.want)
			}
		})
	}
}

// distUKI is a distribution's UKI as ukify makes one: the stub, os-release,
// a command line naming the root, the kernel version, a PCR signature and
// key, the kernel, early microcode, the initrd, and a second profile.
func distUKI(t *testing.T, initrd []byte, extra ...ukitest.Section) *uki.File {
	t.Helper()
	secs := append(ukitest.Stub(),
		ukitest.Section{Name: uki.OSRel, Data: []byte("NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")},
		ukitest.Section{Name: uki.Cmdline, Data: []byte("console=ttyS0 root=/dev/vda rw rd.luks.uuid=x\x00")},
		ukitest.Section{Name: uki.Uname, Data: []byte("6.12.0-test")},
		ukitest.Section{Name: uki.PCRSig, Data: []byte(`{"sha256":[]}`)},
		ukitest.Section{Name: uki.PCRPKey, Data: []byte("-----BEGIN PUBLIC KEY-----\n")},
		ukitest.Section{Name: uki.Linux, Data: append([]byte("MZ"), bytes.Repeat([]byte{1}, 3000)...)},
		ukitest.Section{Name: uki.Ucode, Data: imagetest.Archive(t, imagetest.Dir("kernel"), imagetest.Dir("kernel/x86"), imagetest.Dir("kernel/x86/microcode"),
			imagetest.File("kernel/x86/microcode/GenuineIntel.bin", 0o644, "ucode"))})
	if initrd != nil {
		secs = append(secs, ukitest.Section{Name: uki.Initrd, Data: initrd})
	}
	return parse(t, ukitest.Synth(t, append(secs, extra...), []byte("a signature")))
}

// parse parses a UKI held in memory.
func parse(t *testing.T, b []byte) *uki.File {
	t.Helper()
	u, err := uki.Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// rescueInitrd is a newc archive with the rescue marker, in a file.
func rescueInitrd(t *testing.T, marker bool) *os.File {
	t.Helper()
	es := []imagetest.Entry{imagetest.Dir("usr"), imagetest.File("init", 0o755, "#!/bin/sh\n")}
	if marker {
		es = append(es, imagetest.Dir("usr/lib"), imagetest.Dir("usr/lib/initrd-remix"), imagetest.File(strip.Marker, 0o644, "rescue\n"))
	}
	f, err := os.Open(imagetest.WriteImage(t, "rescue.img", imagetest.Archive(t, es...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestWrite: the rescue UKI of a distribution's reads back (ours and
// debug/pe) as a working rescue: the rescue initrd, the rescue command
// line and os-release, no PCR signature, one profile, no signature,
// private; a write that fails leaves nothing.
func TestWrite(t *testing.T) {
	u := distUKI(t, []byte("07070100 the distribution's initrd"), ukitest.Section{Name: uki.Profile, Data: []byte("ID=shell\n")},
		ukitest.Section{Name: uki.Cmdline, Data: []byte("rd.break")})
	ri := rescueInitrd(t, true)
	out := filepath.Join(t.TempDir(), "rescue.efi")
	n, err := Write(context.Background(), u, ri, out, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() != n || st.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v, want %d bytes, mode 0600", st, err, n)
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	g := parse(t, written)
	if p := Problems(context.Background(), g); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
	if c, _, _ := g.ReadText(uki.Cmdline); c != Cmdline("console=ttyS0 root=/dev/vda rw rd.luks.uuid=x") || strings.Contains(c, "root=") {
		t.Errorf(".cmdline %q", c)
	}
	if o, _, _ := g.ReadText(uki.OSRel); bootentry.ParseOSRelease([]byte(o))["PRETTY_NAME"] != "Debian GNU/Linux 13 (trixie) (initrd-remix rescue)" {
		t.Errorf(".osrel %q", o)
	}
	if g.Profiles() != 0 || g.Signed() || g.Lookup(uki.Ucode) != nil {
		t.Errorf("profiles %d signed %v .ucode %v", g.Profiles(), g.Signed(), g.Lookup(uki.Ucode))
	}
	pf, err := pe.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	d, err := pf.Section(uki.Initrd).Data()
	want, _ := io.ReadAll(io.NewSectionReader(ri, 0, 1<<20))
	if err != nil || !bytes.HasPrefix(d, want) {
		t.Errorf("debug/pe .initrd: %v", err)
	}

	hu := parse(t, ukitest.Synth(t, append(ukitest.Stub(), ukitest.Section{Name: uki.Cmdline, Data: bytes.Repeat([]byte("x"), uki.MaxText+1)},
		ukitest.Section{Name: uki.Linux, Data: []byte("MZ")}, ukitest.Section{Name: uki.Initrd, Data: []byte("x")}), nil))
	for _, tc := range []struct {
		name string
		u    *uki.File
		dir  string
		s    *Signer
		want string
	}{
		{"no directory", u, filepath.Join(t.TempDir(), "missing"), nil, "no such file"},
		{"a .cmdline too long", hu, t.TempDir(), nil, "more than the 65536"},
		{"signing fails", u, t.TempDir(), &Signer{Key: "/nonexistent/db.key", Cert: "/nonexistent/db.crt"}, "sbsign"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tc.dir, "rescue.efi")
			if _, err := Write(context.Background(), tc.u, ri, out, tc.s, t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if des, _ := os.ReadDir(tc.dir); len(des) != 0 {
				t.Errorf("left %v", des)
			}
		})
	}
}

// TestCheck: the read-back check fails for an initrd other than the one
// written, a dropped section that is there, another command line.
func TestCheck(t *testing.T) {
	u := distUKI(t, []byte("07070100 initrd"))
	ri, other := rescueInitrd(t, true), rescueInitrd(t, false)
	out := filepath.Join(t.TempDir(), "rescue.efi")
	if _, err := Write(context.Background(), u, ri, out, nil, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	st, _ := ri.Stat()
	edit, err := Edit(u, ri, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fst, _ := f.Stat()
	if err := Check(f, fst.Size(), ri, edit); err != nil {
		t.Fatalf("the written UKI: %v", err)
	}
	otherCmdline := edit
	otherCmdline.Set = append([]uki.Set{{Name: uki.Cmdline, Content: uki.Bytes([]byte("root=/dev/vda"))}}, edit.Set...)
	dropped := edit
	dropped.Drop = append([]string{".sbat"}, edit.Drop...)
	for _, tc := range []struct {
		name   string
		initrd io.ReaderAt
		edit   uki.Edit
		cut    int64 // bytes cut off the end
		want   string
	}{
		{"another initrd", other, edit, 0, ".initrd differs"},
		{"another command line", ri, otherCmdline, 0, ".cmdline is"},
		{"a dropped section there", ri, dropped, 0, ".sbat still there"},
		{"truncated", ri, edit, 600, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(f, fst.Size()-tc.cut, tc.initrd, tc.edit); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestProblems: what keeps a UKI from being a working rescue.
func TestProblems(t *testing.T) {
	marked, _ := io.ReadAll(io.NewSectionReader(rescueInitrd(t, true), 0, 1<<20))
	plain, _ := io.ReadAll(io.NewSectionReader(rescueInitrd(t, false), 0, 1<<20))
	nu := parse(t, ukitest.Synth(t, append(ukitest.Stub(), ukitest.Section{Name: uki.Linux, Data: []byte("MZ")}, ukitest.Section{Name: uki.Initrd, Data: marked}), nil))
	for _, tc := range []struct {
		name   string
		u      *uki.File
		want   []string
		rescue bool // IsRescue
	}{
		{"the distribution's, with a rescue initrd", distUKI(t, marked), []string{".pcrsig present", ".pcrpkey present"}, true},
		{"no .uname", nu, []string{"no .uname"}, true},
		{"no .initrd", distUKI(t, nil), []string{".pcrsig", ".pcrpkey", "no .initrd section"}, false},
		{"not a rescue initrd", distUKI(t, plain), []string{".pcrsig", ".pcrpkey", "not an initrd-remix rescue image"}, false},
		{"not an initrd", distUKI(t, []byte("garbage")), []string{".pcrsig", ".pcrpkey", ".initrd: "}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Problems(context.Background(), tc.u)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("problem %q, want %q", got[i], tc.want[i])
				}
			}
			if IsRescue(context.Background(), tc.u) != tc.rescue {
				t.Errorf("IsRescue %v", IsRescue(context.Background(), tc.u))
			}
		})
	}
}
