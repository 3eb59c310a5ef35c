package ldso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
)

func plainRoot(t *testing.T) *fakeRoot {
	return &fakeRoot{t: t, dir: t.TempDir()}
}

// Symlinks are resolved inside the root: absolute targets restart at the
// root, ".." stops there, loops end with an error naming the chain.
func TestWalk(t *testing.T) {
	r := plainRoot(t)
	r.write("/usr/lib/real", "x")
	r.symlink("/lib", "usr/lib")
	r.symlink("/a/abs", "/lib/real")
	r.symlink("/a/b/up", "../../../../../../lib/real")
	r.symlink("/a/hostonly", "/etc/hostname") // exists on the host, not in the root
	r.symlink("/a/relloop", "relloop")
	r.symlink("/a/x", "y")
	r.symlink("/a/y", "/a/x")
	r.symlink("/a/notdir", "/usr/lib/real/sub")
	for i := 0; i <= maxSymlinks; i++ {
		r.symlink(fmt.Sprintf("/long/%d", i), fmt.Sprintf("%d", i+1))
	}
	r.write(fmt.Sprintf("/long/%d", maxSymlinks+1), "end")
	v := newView(DirFS(r.dir))

	w := v.walk("/a/abs")
	if w.err != nil || w.phys != "/usr/lib/real" || !w.mode.IsRegular() {
		t.Fatalf("abs: %+v", w)
	}
	if fmt.Sprint(w.links) != fmt.Sprint([]File{{"/a/abs", Symlink, "/lib/real"}, {"/lib", Symlink, "usr/lib"}}) {
		t.Errorf("abs links: %v", w.links)
	}
	if w := v.walk("/a/b/up"); w.err != nil || w.phys != "/usr/lib/real" {
		t.Errorf("up: %+v", w)
	}
	if w := v.walk("/../../lib/../lib/./real"); w.err != nil || w.phys != "/usr/lib/real" {
		t.Errorf("dots: %+v", w)
	}
	if w := v.walk("/a/hostonly"); !errors.Is(w.err, os.ErrNotExist) {
		t.Errorf("escaped to the host: %+v", w)
	}
	if w := v.walk("/a/notdir"); !errors.Is(w.err, syscall.ENOTDIR) {
		t.Errorf("notdir: %v", w.err)
	}
	for _, p := range []string{"/a/relloop", "/a/x"} {
		w := v.walk(p)
		var le *LoopError
		if !errors.As(w.err, &le) || le.Limit || !errors.Is(w.err, syscall.ELOOP) {
			t.Errorf("%s: %v", p, w.err)
			continue
		}
		if !strings.Contains(le.Error(), p+" -> ") {
			t.Errorf("%s: %v does not name the chain", p, le)
		}
	}
	var le *LoopError
	if w := v.walk("/long/0"); !errors.As(w.err, &le) || !le.Limit || len(le.Chain) != maxSymlinks+1 {
		t.Errorf("long chain: %v", w.err)
	}
	if w := v.walk("/long/1"); w.err != nil || w.phys != fmt.Sprintf("/long/%d", maxSymlinks+1) {
		t.Errorf("chain of exactly %d: %v", maxSymlinks, w.err)
	}
	if w := v.walk("relative"); w.err == nil {
		t.Error("relative path accepted")
	}
}

func TestLdSoConf(t *testing.T) {
	r := plainRoot(t)
	r.write("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n/usr/local/lib/ # comment\nhwcap 0 nosegneg\nrelative/dir\n/opt/typed=libc6\n")
	r.symlink("/etc/ld.so.conf.d", "/confs") // absolute: must stay in the root
	r.write("/confs/b.conf", "/opt/b\ninclude sub/*.conf\n")
	r.write("/confs/a.conf", "/opt/a\n/opt/a/\n")
	r.write("/confs/.hidden.conf", "/opt/hidden\n")
	r.write("/confs/c.txt", "/opt/c\n")
	r.write("/confs/sub/x.conf", "/opt/sub\n")
	dirs, err := newView(DirFS(r.dir)).parseLdSoConf("/etc/ld.so.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := "[/opt/a/ /opt/b/ /opt/sub/ /usr/local/lib/ /opt/typed/]"
	if fmt.Sprint(dirs) != want {
		t.Errorf("dirs = %v, want %s", dirs, want)
	}

	r.write("/etc/self.conf", "include /etc/self.conf\n")
	if _, err := newView(DirFS(r.dir)).parseLdSoConf("/etc/self.conf"); err == nil {
		t.Error("recursive include accepted")
	}
	if dirs, err := newView(DirFS(r.dir)).parseLdSoConf("/etc/none.conf"); err != nil || dirs != nil {
		t.Errorf("missing file: %v %v", dirs, err)
	}
}

func TestNsswitch(t *testing.T) {
	r := plainRoot(t)
	r.write("/etc/nsswitch.conf", "passwd: files systemd\nhosts: files [!NOTFOUND=return SUCCESS=continue] mdns4_minimal [NOTFOUND=return] dns\n# group: ldap\nbad line\nnetgroup:\tnis\n")
	got, err := newView(DirFS(r.dir)).parseNsswitch("/etc/nsswitch.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := "[files systemd mdns4_minimal dns nis]"; fmt.Sprint(got) != want {
		t.Errorf("services = %v, want %s", got, want)
	}
	if got, _ := newView(DirFS(r.dir)).parseNsswitch("/etc/none"); fmt.Sprint(got) != "[files dns]" {
		t.Errorf("default = %v", got)
	}
}

func TestExpandTokens(t *testing.T) {
	p := &process{cfg: &abiConfig{lib: "lib64", platform: "x86_64"}}
	l := &lm{origin: "/opt/app/bin"}
	for _, tc := range []struct{ in, out string }{
		{"$ORIGIN/../lib", "/opt/app/bin/../lib"},
		{"${ORIGIN}/x", "/opt/app/bin/x"},
		{"/usr/$LIB:/x/${PLATFORM}", "/usr/lib64:/x/x86_64"},
		{"$ORIGINAL/x", "$ORIGINAL/x"}, // not a token: identifier continues
		{"$LIB_x", "$LIB_x"},
		{"${LIB}_x", "lib64_x"},
		{"$FOO/$", "$FOO/$"},
		{"${ORIGIN", "${ORIGIN"},
	} {
		got, ok := p.expand(l, tc.in)
		if !ok || got != tc.out {
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, ok, tc.out)
		}
	}
	p.cfg.platform = ""
	if _, ok := p.expand(l, "/x/$PLATFORM/y"); ok {
		t.Error("$PLATFORM without a value expanded")
	}
}

func TestShebangAndEnv(t *testing.T) {
	for _, tc := range []struct{ line, interp, arg string }{
		{"#!/bin/sh\n", "/bin/sh", ""},
		{"#! /bin/sh -e \n", "/bin/sh", "-e"},
		{"#!/usr/bin/env  python3 -u\r\n", "/usr/bin/env", "python3 -u"},
		{"#!/bin/bash", "/bin/bash", ""},
	} {
		i, a, ok := parseShebang([]byte(tc.line))
		if !ok || i != tc.interp || a != tc.arg {
			t.Errorf("%q: %q %q %v", tc.line, i, a, ok)
		}
	}
	if _, _, ok := parseShebang([]byte("#!  \n")); ok {
		t.Error("empty #! line accepted")
	}
	for arg, want := range map[string]string{
		"bash":                    "bash",
		"-S bash -e":              "bash",
		"-i PATH=/x python3":      "python3",
		"-u HOME --chdir /tmp sh": "sh",
		"--ignore-environment -":  "",
		"-S LANG=C /usr/bin/perl": "/usr/bin/perl",
	} {
		if got := envCommand(arg); got != want {
			t.Errorf("envCommand(%q) = %q, want %q", arg, got, want)
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	h32 := elf32Header()
	h, err := parseHeader(h32)
	if err != nil {
		t.Fatal(err)
	}
	x := testABI(abiX8664)
	if v, _ := x.check(h); v != otherClass {
		t.Errorf("i386 for x86_64: %v", v)
	}
	if v, _ := testABI(abiI386).check(h); v != accept {
		t.Errorf("i386 for i386: %v", v)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not elf":   []byte("#!/bin/sh\n"),
		"short":     []byte("\x7fELF\x01\x01\x01"),
		"bad class": append([]byte("\x7fELF\x07\x01\x01"), make([]byte, 60)...),
	} {
		if _, err := parseHeader(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	bad := append([]byte(nil), h32...)
	bad[7] = 9 // ELFOSABI_IRIX
	h, _ = parseHeader(bad)
	if v, msg := testABI(abiI386).check(h); v != reject || !strings.Contains(msg, "OS ABI") {
		t.Errorf("OS ABI: %v %s", v, msg)
	}
	rel := append([]byte(nil), h32...)
	binary.LittleEndian.PutUint16(rel[16:], uint16(elf.ET_REL))
	h, _ = parseHeader(rel)
	if v, _ := testABI(abiI386).check(h); v != reject {
		t.Errorf("ET_REL: %v", v)
	}
}

func noteBytes(bo binary.ByteOrder, align int, notes ...[3]string) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%align != 0 {
			b.WriteByte(0)
		}
	}
	for _, n := range notes {
		var typ uint32
		fmt.Sscanf(n[1], "%v", &typ)
		name, desc := n[0], n[2]
		_ = binary.Write(&b, bo, uint32(len(name)+1))
		_ = binary.Write(&b, bo, uint32(len(desc)+1))
		_ = binary.Write(&b, bo, typ)
		b.WriteString(name)
		b.WriteByte(0)
		pad()
		b.WriteString(desc)
		b.WriteByte(0)
		pad()
	}
	return b.Bytes()
}

func TestDlopenNoteParsing(t *testing.T) {
	arr := `[{"feature":"tpm","description":"TPM2","priority":"suggested","soname":["libtss2-esys.so.0","libtss2-esys.so.1"]},{"soname":["libfoo.so.1"]}]`
	obj := `{"soname":"libbar.so.2","feature":"bar"}`
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, align := range []int{4, 8} {
			b := noteBytes(bo, align,
				[3]string{"GNU", "3", "build-id-ish"},
				[3]string{"FDO", "0x407c0c0a", arr},
				[3]string{"FDO", "0xcafe1a7e", `{"type":"deb"}`},
				[3]string{"FDO", "0x407c0c0a", obj})
			deps, err := parseDlopenNotes(b, bo, uint64(align))
			if err != nil {
				t.Fatalf("%v/%d: %v", bo, align, err)
			}
			want := `[{tpm TPM2 suggested [libtss2-esys.so.0 libtss2-esys.so.1]} {  recommended [libfoo.so.1]} {bar  recommended [libbar.so.2]}]`
			if fmt.Sprint(deps) != want {
				t.Errorf("%v/%d: %v", bo, align, deps)
			}
		}
	}
	for name, b := range map[string][]byte{
		"overrun":     noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", arr})[:40],
		"bad json":    noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", `[{"soname":`}),
		"no soname":   noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", `[{"feature":"x"}]`}),
		"empty list":  noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", `[{"soname":[]}]`}),
		"empty name":  noteBytes(binary.LittleEndian, 4, [3]string{"FDO", "0x407c0c0a", `[{"soname":[""]}]`}),
		"short trail": append(noteBytes(binary.LittleEndian, 4, [3]string{"GNU", "1", "x"}), 1, 2),
	} {
		if _, err := parseDlopenNotes(b, binary.LittleEndian, 4); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// The loader configuration derived for the host's ABI matches what the
// host's own ld.so reports about itself (--list-diagnostics, glibc 2.33+):
// the evidence behind the $LIB, default directory and hwcaps decisions.
func TestHostLoaderConfig(t *testing.T) {
	ldso := testtool.Require(t, "ld.so")
	out, err := exec.Command(ldso, "--list-diagnostics").Output()
	if err != nil {
		testtool.Missing(t, "ld.so --list-diagnostics: %v", err)
	}
	diag := map[string]string{}
	var systemDirs []string
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		diag[k] = v
		if strings.HasPrefix(k, "path.system_dirs[") {
			systemDirs = append(systemDirs, v)
		}
	}
	real, err := filepath.EvalSymlinks(ldso)
	if err != nil {
		t.Fatal(err)
	}
	head, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeader(head)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver("/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := newClosure(r).configFor(abiOf(h))
	if got, want := cfg.lib, diag["dl_dst_lib"]; got != want {
		t.Errorf("$LIB = %q, ld.so says %q", got, want)
	}
	if got, want := cfg.platform, diag["dl_platform"]; got != want {
		t.Errorf("$PLATFORM = %q, ld.so says %q", got, want)
	}
	if got, want := fmt.Sprint(cfg.systemDirs), fmt.Sprint(systemDirs); got != want {
		t.Errorf("system dirs = %s, ld.so says %s", got, want)
	}
	if got, want := strings.Join(cfg.hwcaps, ":"), diag["dl_hwcaps_subdirs"]; got != want {
		t.Errorf("hwcaps = %s, ld.so says %s", got, want)
	}
	t.Logf("ld.so %s: dl_dst_lib=%s dl_platform=%s system_dirs=%v hwcaps=%s",
		diag["version.version"], diag["dl_dst_lib"], diag["dl_platform"], systemDirs, diag["dl_hwcaps_subdirs"])
}
