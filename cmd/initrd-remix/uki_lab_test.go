package main

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/rescueuki"
	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/strip"
	"github.com/initrd-remix/initrd-remix/uki"
)

// The OVMF builds scripts/boot.sh --esp uses (Debian's ovmf package).
var ovmfFiles = []string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd",
	"/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", snakeoilKey, snakeoilCert}

// Debian's test key, enrolled in OVMF's snakeoil variable store (PK, KEK,
// db); its passphrase is "snakeoil".
const (
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// TestUKILab is issue 13 with the UKIs trixie's own ukify made of the lab's
// kernel and initrds (scripts/uki-lab.sh): the initramfs-tools one as a
// distribution ships it (a signed PCR 11 policy in .pcrsig/.pcrpkey and a
// Secure Boot signature), the dracut one unsigned, as kernel-install makes
// it on a machine. It reads them, writes rescue UKIs checked by three
// readers (ours, debug/pe, objdump; ukify inspect in the kernel-install
// case), refuses bad input without writing anything, and boots them with
// OVMF, one boot at a time: the original UKI reaches the marker root
// (positive control); the rescue UKI, signed with the administrator's key
// (the snakeoil key OVMF's test variable store trusts), boots with Secure
// Boot on as EFI/BOOT/BOOTX64.EFI and reaches the census on the storage
// testbed with every disk unchanged, while the unsigned one is refused by
// the firmware; and kernel-install with layout=uki in a copy of the trixie
// root puts a rescue UKI in $BOOT/EFI/Linux that entry list --check
// accepts, that systemd-boot lists after the distribution's and boots to
// the census, and that kernel-install remove takes away again.
func TestUKILab(t *testing.T) {
	// With the other lab tests: their boots share two slots (-parallel).
	t.Parallel()
	l := openLab(t)
	for _, p := range []string{"qemu-system-x86_64", "mkfs.fat", "mcopy", "objdump", "objcopy", "sbverify", "sbsign", "openssl", "mke2fs"} {
		testtool.Require(t, p)
	}
	for _, f := range ovmfFiles {
		if _, err := os.Stat(f); err != nil {
			testtool.Missing(t, "%v (apt-get install ovmf)", err)
		}
	}
	var trixie *lab
	for _, r := range labReleases(t) {
		if r.release == "trixie" {
			trixie = r
		}
	}
	if trixie == nil {
		t.Fatal("the lab has no trixie release")
	}
	_, env := cachedStage(t, "uki-lab.sh", l.dir, "uki.env")
	tb := testbed(t, l)
	work := t.TempDir()
	payload := filepath.Join(work, "census.sh")
	if err := os.WriteFile(payload, []byte(censusPayload), 0o755); err != nil {
		t.Fatal(err)
	}
	root, kver := trixie.env["LAB_ROOT"], env["UKI_KVER"]

	// The administrator's Secure Boot key: the snakeoil key, decrypted.
	sbKey := filepath.Join(work, "sb.key")
	if out, err := exec.Command("openssl", "rsa", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", sbKey).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}

	t.Run("inspect", func(t *testing.T) {
		for _, tc := range []struct{ file, generator string }{{env["UKI_ITOOLS"], "initramfs-tools"}, {env["UKI_DRACUT_SD"], "dracut-systemd"}} {
			code, out, errs := cli(t, "inspect", "--json", tc.file)
			if code != exitOK {
				t.Fatalf("inspect %s: exit %d: %s", tc.file, code, errs)
			}
			var rep inspectReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.UKI == nil || string(rep.Generator.Generator) != tc.generator || !slices.Equal(rep.KernelVersions, []string{kver}) {
				t.Errorf("%s: uki %v, generator %s, kernels %v", tc.file, rep.UKI != nil, rep.Generator.Generator, rep.KernelVersions)
				continue
			}
			if rep.UKI.Uname != kver || rep.UKI.Cmdline != env["UKI_CMDLINE"] || !rep.Microcode.Early {
				t.Errorf("%s: uname %q cmdline %q microcode %v", tc.file, rep.UKI.Uname, rep.UKI.Cmdline, rep.Microcode.Early)
			}
			if signed := tc.file == env["UKI_ITOOLS"]; rep.UKI.Signed != signed {
				t.Errorf("%s: signed %v, want %v", tc.file, rep.UKI.Signed, signed)
			}
		}
	})

	rescue := filepath.Join(work, "rescue-signed.efi")
	unsigned := filepath.Join(work, "rescue-unsigned.efi")
	t.Run("write", func(t *testing.T) {
		orig := env["UKI_ITOOLS"]
		for _, out := range []string{rescue, unsigned} {
			args := []string{"build", "-q", "--root", root, "--input", orig, "--output", out, "--run", payload}
			if out == rescue {
				args = append(args, "--sign-key", sbKey, "--sign-cert", snakeoilCert)
			}
			if code, _, errs := cli(t, args...); code != exitOK {
				t.Fatalf("build: exit %d: %s", code, errs)
			}
			checkRescueUKIFile(t, orig, out, out == rescue)
		}
		// The administrator's signature, not the distribution's.
		if out, err := exec.Command("sbverify", "--cert", snakeoilCert, rescue).CombinedOutput(); err != nil {
			t.Errorf("sbverify --cert snakeoil: %v: %s", err, out)
		}
		if out, err := exec.Command("sbverify", "--cert", env["UKI_CERT"], rescue).CombinedOutput(); err == nil {
			t.Errorf("sbverify accepts the distribution's certificate for the rescue UKI: %s", out)
		}
		if out, err := exec.Command("sbverify", "--list", unsigned).CombinedOutput(); !strings.Contains(string(out), "No signature table") {
			t.Errorf("the unsigned rescue UKI: sbverify --list: %v: %s", err, out)
		}
	})

	// A machine with Secure Boot on (its efivar under --root): without a
	// key the build says the rescue UKI will not boot; with the key and
	// certificate in the configuration file, it is signed and says nothing.
	t.Run("secure-boot-config", func(t *testing.T) {
		sbRoot := t.TempDir()
		efivar := filepath.Join(sbRoot, rescueuki.SecureBootVar)
		os.MkdirAll(filepath.Dir(efivar), 0o755)
		os.WriteFile(efivar, []byte{6, 0, 0, 0, 1}, 0o644)
		conf := filepath.Join(t.TempDir(), "initrd-remix.conf")
		os.WriteFile(conf, []byte("sign-key = "+sbKey+"\nsign-cert = "+snakeoilCert+"\n"), 0o644)
		out := filepath.Join(t.TempDir(), "rescue.efi")
		base := []string{"build", "--root", sbRoot, "--preset", "none", "--drivers", "none", "--input", env["UKI_DRACUT_SD"], "--output", out}
		code, _, errs := cli(t, append(base, "--config", "")...)
		if code != exitOK || !strings.Contains(errs, "Secure Boot is enabled") || !strings.Contains(errs, "will refuse to start the rescue UKI") {
			t.Errorf("no key: exit %d, stderr:\n%s", code, errs)
		}
		code, _, errs = cli(t, append(base, "--config", conf, "--force")...)
		if code != exitOK || strings.Contains(errs, "Secure Boot is enabled") {
			t.Errorf("key configured: exit %d, stderr:\n%s", code, errs)
		}
		if res, err := exec.Command("sbverify", "--cert", snakeoilCert, out).CombinedOutput(); err != nil {
			t.Errorf("sbverify: %v: %s", err, res)
		}
	})

	t.Run("bad-input", func(t *testing.T) {
		badUKIInputs(t, env, work, root)
	})

	// The boots, two at a time (each on its own copies of the firmware's
	// variables, the ESP and the testbed), after the steps above.
	t.Run("boot/original", func(t *testing.T) {
		t.Parallel()
		esp := espWith(t, env["UKI_ITOOLS"])
		logf := filepath.Join(t.TempDir(), "console.log")
		log := runBootScript(t, "the original UKI", logf, []string{"--esp", esp, "--disk", l.env["LAB_MARKER_DISK"],
			"--expect", l.env["LAB_MARKER"], "--timeout", "300", "--log", logf})
		if !strings.Contains(log, "cmdline="+env["UKI_CMDLINE"]) {
			t.Error("the marker root did not see the UKI's own command line")
		}
	})
	t.Run("boot/rescue-secure-boot", func(t *testing.T) {
		t.Parallel()
		log, changed := bootVM(t, l, vm{esp: espWith(t, rescue), secureBoot: true, expect: censusExpect,
			fails: []string{passphrasePrompt, `RESCUE-CENSUS md=[1-9]`, l.env["LAB_MARKER"]}, disks: testbedVMDisks(tb)})
		for _, c := range changed {
			t.Errorf("%s changed during the boot", c)
		}
		checkUEFICensus(t, log)
		if !strings.Contains(log, "Secure boot enabled") {
			t.Error("the kernel does not report Secure Boot: the boot proves nothing about the signature")
		}
	})
	t.Run("boot/unsigned-refused", func(t *testing.T) {
		t.Parallel()
		logf := filepath.Join(t.TempDir(), "console.log")
		runBootScript(t, "the unsigned rescue UKI", logf, []string{"--esp", espWith(t, unsigned), "--secure-boot",
			"--expect", `Access Denied|Security Violation`, "--fail", `Linux version`, "--timeout", "240", "--log", logf})
	})
	t.Run("kernel-install", func(t *testing.T) {
		t.Parallel()
		ukiKernelInstall(t, l, trixie, env, tb)
	})
}

func testbedVMDisks(tb string) []vmDisk {
	var disks []vmDisk
	for _, d := range testbedDisks {
		disks = append(disks, vmDisk{path: filepath.Join(tb, d), rw: true})
	}
	return disks
}

// checkUEFICensus is checkCensus for a UEFI boot: the ESP is one more disk.
func checkUEFICensus(t *testing.T, log string) {
	t.Helper()
	checkCensusDisks(t, log, len(testbedDisks)+1)
}

// espWith is an ESP directory whose removable-media boot path is efi.
func espWith(t *testing.T, efi string) string {
	t.Helper()
	esp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, efi, filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"))
	return esp
}

// checkRescueUKIFile compares a rescue UKI with the UKI it was made from, with
// the project's reader, debug/pe and objdump -h.
func checkRescueUKIFile(t *testing.T, origPath, path string, signed bool) {
	t.Helper()
	orig, rescue := openUKIFile(t, origPath), openUKIFile(t, path)
	for _, name := range []string{uki.PCRSig, uki.PCRPKey} {
		if orig.Lookup(name) == nil {
			t.Fatalf("the original has no %s: the test proves nothing", name)
		}
		if rescue.Lookup(name) != nil {
			t.Errorf("the rescue UKI keeps %s", name)
		}
	}
	if rescue.Signed() != signed {
		t.Errorf("signed %v, want %v", rescue.Signed(), signed)
	}
	// The stub and the kernel, byte for byte; the stub at its addresses.
	for _, s := range orig.Sections {
		if uki.IsPayload(s.Name) && s.Name != uki.Linux {
			continue
		}
		r := rescue.Lookup(s.Name)
		if r == nil {
			t.Errorf("%s missing", s.Name)
			continue
		}
		if !uki.IsPayload(s.Name) && (r.VirtualAddress != s.VirtualAddress || r.VirtualSize != s.VirtualSize) {
			t.Errorf("stub section %s moved: %#x+%#x -> %#x+%#x", s.Name, s.VirtualAddress, s.VirtualSize, r.VirtualAddress, r.VirtualSize)
		}
		if !bytes.Equal(sectionBytes(t, orig, &s), sectionBytes(t, rescue, r)) {
			t.Errorf("%s changed", s.Name)
		}
	}
	cmd, _, _ := rescue.ReadText(uki.Cmdline)
	for _, want := range append([]string{"console=ttyS0"}, strings.Fields(strip.StorageOffArgs)...) {
		if !slices.Contains(strings.Fields(cmd), want) {
			t.Errorf("cmdline %q lacks %s", cmd, want)
		}
	}
	if strings.Contains(cmd, "root=") {
		t.Errorf("cmdline %q names a root", cmd)
	}
	if osrel, _, _ := rescue.ReadText(uki.OSRel); !strings.Contains(osrel, `PRETTY_NAME="Debian GNU/Linux 13 (trixie) (initrd-remix rescue)"`) {
		t.Errorf("os-release:\n%s", osrel)
	}
	r, _, err := rescue.Initrd()
	if err != nil {
		t.Fatal(err)
	}
	img, err := remix.Read(t.Context(), r, remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		t.Fatalf(".initrd: %v", err)
	}
	defer img.Close()
	if img.Tree.Lookup(strip.Marker) == nil || !img.HasMicrocode() {
		t.Errorf(".initrd: rescue marker %v, early microcode %v", img.Tree.Lookup(strip.Marker) != nil, img.HasMicrocode())
	}

	// debug/pe: the same table, every section inside the file, aligned,
	// ascending and adjacent, SizeOfImage covering the last one.
	pf, err := pe.Open(path)
	if err != nil {
		t.Fatalf("debug/pe: %v", err)
	}
	defer pf.Close()
	oh := pf.OptionalHeader.(*pe.OptionalHeader64)
	st, _ := os.Stat(path)
	var names []string
	end := uint32(0)
	for i, s := range pf.Sections {
		names = append(names, s.Name)
		if s.VirtualAddress%oh.SectionAlignment != 0 || s.Offset%oh.FileAlignment != 0 || s.Size%oh.FileAlignment != 0 {
			t.Errorf("debug/pe: %s misaligned", s.Name)
		}
		if int64(s.Offset)+int64(s.Size) > st.Size() || s.VirtualAddress < end || s.Offset < oh.SizeOfHeaders {
			t.Errorf("debug/pe: %s out of place: %+v", s.Name, s.SectionHeader)
		}
		end = s.VirtualAddress + s.VirtualSize
		if s.Name != rescue.Sections[i].Name || s.VirtualSize != rescue.Sections[i].VirtualSize {
			t.Errorf("debug/pe: section %d is %s (%d bytes), ours %s", i, s.Name, s.VirtualSize, rescue.Sections[i].Name)
		}
	}
	if want := (end + oh.SectionAlignment - 1) &^ (oh.SectionAlignment - 1); oh.SizeOfImage != want {
		t.Errorf("debug/pe: SizeOfImage %#x, want %#x", oh.SizeOfImage, want)
	}
	if cert := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]; (cert.Size > 0) != signed {
		t.Errorf("debug/pe: certificate table %+v, signed %v", cert, signed)
	}
	// objdump -h: the same names and sizes.
	out, err := exec.Command("objdump", "-h", path).Output()
	if err != nil {
		t.Fatalf("objdump -h: %v", err)
	}
	var od []string
	for _, m := range regexp.MustCompile(`(?m)^\s+\d+\s+(\S+)\s+([0-9a-f]+)\s`).FindAllStringSubmatch(string(out), -1) {
		od = append(od, m[1]+":"+m[2])
	}
	var ours []string
	for _, s := range rescue.Sections {
		ours = append(ours, fmt.Sprintf("%s:%08x", s.Name, s.VirtualSize))
	}
	if !slices.Equal(od, ours) {
		t.Errorf("objdump -h:\n%v\nours:\n%v", od, ours)
	}
	t.Logf("%s: %d bytes, sections %s", filepath.Base(path), st.Size(), strings.Join(names, " "))
}

func openUKIFile(t *testing.T, p string) *uki.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	u, err := uki.Parse(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return u
}

func sectionBytes(t *testing.T, f *uki.File, s *uki.Section) []byte {
	t.Helper()
	b, err := io.ReadAll(f.Open(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badUKIInputs: a PE that is not a UKI (systemd-boot itself), a truncated
// UKI, a UKI without .initrd (objcopy --remove-section) and one whose
// section table makes two sections share bytes: each is refused with an
// error naming the file, and nothing is written.
func badUKIInputs(t *testing.T, env map[string]string, work, root string) {
	orig := env["UKI_ITOOLS"]
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.efi")
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	noInitrd := filepath.Join(dir, "no-initrd.efi")
	// (From the unsigned UKI: objcopy leaves a signed one's certificate
	// table pointing past the end, which is refused as truncated.)
	if out, err := exec.Command("objcopy", "--remove-section", ".initrd", env["UKI_DRACUT_SD"], noInitrd).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v: %s", err, out)
	}
	// .cmdline's file bytes pointed at .osrel's.
	overlapping := filepath.Join(dir, "overlapping.efi")
	ov := bytes.Clone(data)
	le := binary.LittleEndian
	peOff := int(le.Uint32(ov[0x3c:]))
	table := peOff + 24 + int(le.Uint16(ov[peOff+20:]))
	offsetOf := map[string]int{}
	for i := range int(le.Uint16(ov[peOff+6:])) {
		e := table + 40*i
		offsetOf[string(bytes.TrimRight(ov[e:e+8], "\x00"))] = e
	}
	copy(ov[offsetOf[uki.Cmdline]+20:offsetOf[uki.Cmdline]+24], ov[offsetOf[uki.OSRel]+20:offsetOf[uki.OSRel]+24])
	os.WriteFile(overlapping, ov, 0o644)
	for _, tc := range []struct{ name, in, want string }{
		{"not a UKI", filepath.Join(env["UKI_ROOT"], "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), "not a unified kernel image: no .linux section"},
		{"truncated", truncated, "truncated"},
		{"no .initrd", noInitrd, "no .initrd section"},
		{"overlapping sections", overlapping, "overlapping sections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.efi")
			code, _, errs := cli(t, "build", "-q", "--root", root, "--input", tc.in, "--output", out)
			if code != exitFailed || !strings.Contains(errs, tc.in) || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d naming the file and %q", code, errs, exitFailed, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("an output was written")
			}
			code, _, errs = cli(t, "inspect", tc.in)
			if code != exitFailed || !strings.Contains(errs, tc.want) {
				t.Errorf("inspect: exit %d, stderr %q", code, errs)
			}
			if leftovers, _ := filepath.Glob(filepath.Join(dir, ".out.efi*")); len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

// ukiKernelInstall runs the trixie root's own kernel-install with
// layout=uki in a throwaway copy of the UKI lab's root (trixie with ukify
// and systemd-boot) and the plugin installed, boots the result through
// systemd-boot, and removes it again.
func ukiKernelInstall(t *testing.T, l, trixie *lab, env map[string]string, tb string) {
	bin := makeBinary(t)
	ul := &lab{dir: trixie.dir, release: trixie.release, env: maps.Clone(trixie.env), images: trixie.images, rel: trixie.rel}
	ul.env["LAB_ROOT"] = env["UKI_ROOT"]
	c := newLabCopy(t, ul, bin)
	kver := env["UKI_KVER"]
	c.write("/etc/kernel/install.conf", "layout=uki\n")
	c.write("/etc/kernel/cmdline", env["UKI_CMDLINE"]+"\n")
	c.write("/etc/initrd-remix/census.sh", censusPayload)
	if err := os.Chmod(c.path("/etc/initrd-remix/census.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.write("/etc/initrd-remix/initrd-remix.conf", "run = /etc/initrd-remix/census.sh\n")
	// The dracut-with-systemd image as the machine's initrd (given, so
	// 50-dracut does not generate one).
	copyFile(t, trixie.image(t, "dracut-sd-zstd").Path, c.path("/tmp/dracut-sd.img"))
	out := c.mustRun(nil, "kernel-install", "--verbose", "add", kver, "/boot/vmlinuz-"+kver, "/tmp/dracut-sd.img")
	if strings.Contains(out, "WARNING") {
		t.Errorf("the plugin warned:\n%s", out)
	}
	linuxDir := c.path("/boot/EFI/Linux")
	des, err := os.ReadDir(linuxDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	slices.Sort(names)
	if len(names) != 2 || !strings.HasSuffix(names[0], "-"+kver+".efi") || names[1] != strings.TrimSuffix(names[0], ".efi")+bootentry.UKISuffix {
		t.Fatalf("EFI/Linux holds %v; want the distribution's <token>-%s.efi, then the rescue UKI after it", names, kver)
	}
	rescueName := names[1]
	rescue := openUKIFile(t, filepath.Join(linuxDir, rescueName))
	if rescue.Lookup(uki.PCRSig) != nil || rescue.Lookup(uki.PCRPKey) != nil {
		t.Error("the rescue UKI has a PCR signature")
	}
	// ukify inspect, the distribution's own reader, in the root.
	js := c.mustRun(nil, "ukify", "inspect", "/boot/EFI/Linux/"+rescueName, "--all", "--json=short")
	var sections map[string]struct {
		Size int64  `json:"size"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(js[strings.Index(js, "{"):]), &sections); err != nil {
		t.Fatalf("ukify inspect: %v", err)
	}
	for _, s := range rescue.Sections {
		if got, ok := sections[s.Name]; !ok || got.Size != s.Size() {
			t.Errorf("ukify inspect: %s: %+v, ours %d bytes", s.Name, got, s.Size())
		}
	}
	if txt := sections[uki.Cmdline].Text; strings.Contains(txt, "root=") || !strings.Contains(txt, "rd.luks=0") {
		t.Errorf("ukify inspect: .cmdline %q", txt)
	}
	if !strings.Contains(sections[uki.OSRel].Text, "initrd-remix rescue") {
		t.Errorf("ukify inspect: .osrel %q", sections[uki.OSRel].Text)
	}
	list := c.mustRun(nil, "initrd-remix", "entry", "list", "--check", "--boot-root", "/boot")
	if !strings.Contains(list, rescueName) || !strings.Contains(list, "\tok") {
		t.Errorf("entry list --check:\n%s", list)
	}

	// The ESP: systemd-boot as the removable-media loader, both UKIs, the
	// rescue entry as the default after a menu on the console.
	esp := t.TempDir()
	for _, d := range []string{"EFI/BOOT", "EFI/Linux", "loader"} {
		os.MkdirAll(filepath.Join(esp, d), 0o755)
	}
	copyFile(t, c.path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"), filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"))
	for _, n := range names {
		copyFile(t, filepath.Join(linuxDir, n), filepath.Join(esp, "EFI/Linux", n))
	}
	os.WriteFile(filepath.Join(esp, "loader/loader.conf"), []byte("default *"+bootentry.UKISuffix+"\ntimeout 3\n"), 0o644)
	log, changed := bootVM(t, l, vm{esp: esp, expect: censusExpect,
		fails: []string{passphrasePrompt, `RESCUE-CENSUS md=[1-9]`, l.env["LAB_MARKER"]}, disks: testbedVMDisks(tb)})
	for _, c := range changed {
		t.Errorf("%s changed during the boot", c)
	}
	checkUEFICensus(t, log)
	menu := stripANSI(log)
	rescueAt, distAt := strings.Index(menu, "initrd-remix rescue"), strings.Index(menu, "Debian GNU/Linux 13 (trixie)")
	if rescueAt < 0 || distAt < 0 || rescueAt < distAt {
		t.Errorf("systemd-boot's menu on the console does not list the rescue entry after the distribution's (rescue at %d, distribution at %d)", rescueAt, distAt)
	} else {
		t.Logf("systemd-boot's menu: %q", menu[distAt:rescueAt+len("initrd-remix rescue")+1])
	}
	t.Logf("entry list --check:\n%s", list)

	c.mustRun(nil, "kernel-install", "--verbose", "remove", kver)
	if left := c.ours(); len(left) > 0 {
		t.Errorf("kernel-install remove left %v", left)
	}

	// layout=bls with a UKI as the kernel image: a type #1 rescue entry
	// whose kernel is the one the UKI carries and whose initrd is the
	// rescue of the UKI's, booted through systemd-boot.
	t.Run("bls", func(t *testing.T) {
		c.write("/etc/kernel/install.conf", "layout=bls\n")
		copyFile(t, env["UKI_DRACUT_SD"], c.path("/tmp/uki.efi"))
		c.mustRun(nil, "kernel-install", "--verbose", "add", kver, "/tmp/uki.efi")
		found, err := c.store().List(kver)
		if err != nil || len(found) != 1 || len(found[0].Problems) > 0 || found[0].Entry == nil {
			t.Fatalf("rescue entries: %+v, %v", found, err)
		}
		e := found[0].Entry
		if !strings.HasSuffix(e.Linux, "/initrd-remix-rescue.linux") || len(e.Initrd) != 1 || !strings.HasSuffix(e.Initrd[0], "/initrd-remix-rescue.img") {
			t.Fatalf("entry names linux %s, initrd %v", e.Linux, e.Initrd)
		}
		if sha256File(t, c.path(e.Linux)) != sha256File(t, trixie.env["LAB_KERNEL"]) {
			t.Error("the rescue entry's kernel is not the one the UKI carries")
		}
		img, err := remix.Open(t.Context(), c.path(e.Initrd[0]), remix.OpenOptions{MetadataOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if img.Tree.Lookup(strip.Marker) == nil || string(strip.Detect(img.Tree).Generator) != "dracut-systemd" {
			t.Errorf("the rescue entry's initrd: marker %v, generator %s", img.Tree.Lookup(strip.Marker) != nil, strip.Detect(img.Tree).Generator)
		}
		img.Close()
		c.mustRun(nil, "initrd-remix", "entry", "list", "--check", "--boot-root", "/boot")
		// The ESP holds /boot's entries and files at their paths (the
		// entries' paths are relative to the partition, / here).
		esp := t.TempDir()
		for _, p := range append([]string{found[0].File[len(c.dir):], e.Linux}, e.Initrd...) {
			os.MkdirAll(filepath.Join(esp, filepath.Dir(p)), 0o755)
			copyFile(t, c.path(p), filepath.Join(esp, p))
		}
		if err := os.Rename(filepath.Join(esp, "boot/loader"), filepath.Join(esp, "loader")); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
		copyFile(t, c.path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"), filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"))
		os.WriteFile(filepath.Join(esp, "loader/loader.conf"), []byte("default *initrd-remix-rescue*\ntimeout 1\n"), 0o644)
		log, changed := bootVM(t, l, vm{esp: esp, expect: censusExpect,
			fails: []string{passphrasePrompt, `RESCUE-CENSUS md=[1-9]`, l.env["LAB_MARKER"]}, disks: testbedVMDisks(tb)})
		for _, c := range changed {
			t.Errorf("%s changed during the boot", c)
		}
		checkUEFICensus(t, log)
		c.mustRun(nil, "kernel-install", "--verbose", "remove", kver)
		if left := c.ours(); len(left) > 0 {
			t.Errorf("kernel-install remove left %v", left)
		}
	})
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func stripANSI(s string) string { return ansiRe.ReplaceAllString(s, "") }
