package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/cmd/initrd-remix/internal/bootentry"
	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix"
	"github.com/initrd-remix/initrd-remix/uki"
	"github.com/initrd-remix/initrd-remix/uki/ukitest"
)

// TestHooks runs the real hook scripts against a binary built once for
// them: a hook not installed by make takes initrd-remix from PATH.
func TestHooks(t *testing.T) {
	path := filepath.Dir(makeBinary(t)) + string(os.PathListSeparator) + os.Getenv("PATH")
	t.Run("config", func(t *testing.T) { testHookConfig(t, path) })
	t.Run("plugin private", func(t *testing.T) { testPluginPrivate(t, path) })
	t.Run("plugin uki", func(t *testing.T) { testPluginUKI(t, path) })
	t.Run("odd versions", func(t *testing.T) { testHooksRefuseOddVersions(t, path) })
	t.Run("grub", func(t *testing.T) { testGrubScript(t, path) })
}

// testHookConfig runs the hook library's configuration check with the
// shells the hooks meet (dash is Debian's /bin/sh, busybox sh an initrd's):
// the hooks ask the binary, so they read the configuration exactly as
// build does (issue 16, point 5): comments after values, booleans in every
// usual spelling, drop-ins after the main file in lexical order, the last
// line wins, and a configuration build would refuse keeps the hooks off
// with a message naming the file and line.
func testHookConfig(t *testing.T, path string) {
	tests := []struct {
		name  string
		main  string
		dropd map[string]string
		on    bool
		warn  string
	}{
		{"no configuration", "", nil, true, ""},
		{"off", "hooks = no\n", nil, false, ""},
		{"off, no blanks", "hooks=no\n", nil, false, ""},
		{"off, indented with a comment", "  hooks\t=  no   # for now\n", nil, false, ""},
		{"on with a comment", "hooks = yes # on\n", nil, true, ""},
		{"false", "hooks = false\n", nil, false, ""},
		{"No", "hooks=No\n", nil, false, ""},
		{"OFF", "hooks = OFF\n", nil, false, ""},
		{"0", "hooks = 0\n", nil, false, ""},
		{"commented out", "# hooks = no\n", nil, true, ""},
		{"other keys with comments", "compress = xz # small\npreset = rescue\n", nil, true, ""},
		{"last line wins", "hooks = no\nhooks = yes\n", nil, true, ""},
		{"drop-in turns off", "hooks = yes\n", map[string]string{"50-x.conf": "hooks = no\n"}, false, ""},
		{"drop-in turns on", "hooks = no\n", map[string]string{"90-on.conf": "hooks = yes\n"}, true, ""},
		{"drop-ins in lexical order", "", map[string]string{"10-a.conf": "hooks = yes\n", "20-b.conf": "hooks = no\n"}, false, ""},
		{"not a .conf drop-in", "", map[string]string{"50-x.conf.disabled": "hooks = no\n"}, true, ""},
		{"a key that only starts with hooks", "hooksfoo = no\n", nil, false, `initrd-remix.conf:1: unknown key "hooksfoo"`},
		{"dry-run", "hooks = yes\ndry-run = true\n", nil, false, `initrd-remix.conf:2: "dry-run" cannot be set in a configuration file`},
		{"output in a drop-in", "", map[string]string{"50-x.conf": "\noutput = /boot/x.img\n"}, false, `50-x.conf:2: "output" cannot be set`},
		{"bad boolean", "hooks = maybe\n", nil, false, `initrd-remix.conf:1: hooks: "maybe" is not a boolean`},
	}
	for _, shell := range []string{"dash", "busybox"} {
		testtool.Require(t, shell)
		for _, tc := range tests {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				if tc.main != "" {
					os.WriteFile(filepath.Join(dir, "initrd-remix.conf"), []byte(tc.main), 0o644)
				}
				os.Mkdir(filepath.Join(dir, "conf.d"), 0o755)
				for n, c := range tc.dropd {
					os.WriteFile(filepath.Join(dir, "conf.d", n), []byte(c), 0o644)
				}
				args := []string{"-c", `. ../../scripts/lib/hooks.sh; IR_CONF=$1/initrd-remix.conf IR_CONF_D=$1/conf.d; ir_hooks_enabled`, "sh", dir}
				if shell == "busybox" {
					args = append([]string{"sh"}, args...)
				}
				cmd := exec.Command(shell, args...)
				cmd.Env = append(os.Environ(), "PATH="+path)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err := cmd.Run()
				if on := err == nil; on != tc.on {
					t.Fatalf("hooks enabled = %v (%v, %s), want %v", on, err, stderr.String(), tc.on)
				}
				if tc.warn == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.warn) {
					t.Fatalf("stderr %q, want %q", stderr.String(), tc.warn)
				}
			})
		}
	}
}

// splitImage writes smallImage as two initrds, the early microcode archive
// and the main one, as kernel-install may pass them, with the given mode.
func splitImage(t *testing.T, dir string, mode os.FileMode) []string {
	t.Helper()
	data, err := os.ReadFile(smallImage(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remix.Open(context.Background(), smallImage(t), remix.OpenOptions{MetadataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	if len(img.Segments) != 2 {
		t.Fatalf("smallImage has %d segments, want 2", len(img.Segments))
	}
	cut := img.Segments[1].Offset
	var out []string
	for i, part := range [][]byte{data[:cut], data[cut:]} {
		p := filepath.Join(dir, fmt.Sprintf("initrd-%d", i))
		if err := os.WriteFile(p, part, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		out = append(out, p)
	}
	return out
}

// recordingPath puts a shell script named initrd-remix first on PATH that
// appends its umask and the mode of the file after --input to log, then
// runs the real binary.
func recordingPath(t *testing.T, real, log string) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
in=
prev=
for a; do [ "$prev" = --input ] && in=$a; prev=$a; done
if [ -n "$in" ]; then printf '%s %s\n' "$(umask)" "$(stat -c %a "$in")" >>` + log + `; fi
PATH=` + real + ` exec initrd-remix "$@"
`
	if err := os.WriteFile(filepath.Join(dir, "initrd-remix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + real
}

// mountNamespace returns the unshare arguments for a private mount
// namespace (a user namespace too when not root), after checking that a
// tmpfs can be mounted on dir there: tests mount one so that the hooks
// write nothing on the machine.
func mountNamespace(t *testing.T, dir string) []string {
	t.Helper()
	testtool.Require(t, "unshare")
	ns := []string{"-m"}
	if os.Geteuid() != 0 {
		ns = []string{"-r", "-m"}
	}
	if c, err := exec.Command("unshare", append(ns, "mount", "-t", "tmpfs", "tmpfs", dir)...).CombinedOutput(); err != nil {
		testtool.Missing(t, "unshare %s and a tmpfs on %s: %v: %s", strings.Join(ns, " "), dir, err, c)
	}
	return ns
}

// testPluginPrivate: the kernel-install plugin runs with umask 077, the
// concatenation of several initrds is private, and the rescue image is
// 0600 although every input was 0644 (issue 16, point 1).
func testPluginPrivate(t *testing.T, path string) {
	testtool.Require(t, "stat")
	const mid, kver = "0123456789abcdef0123456789abcdef", "6.1.0-9-amd64"
	boot := t.TempDir()
	entryDir := filepath.Join(boot, mid, kver)
	os.MkdirAll(entryDir, 0o755)
	os.WriteFile(filepath.Join(entryDir, "linux"), []byte("kernel"), 0o644)
	initrds := splitImage(t, t.TempDir(), 0o644)
	log := filepath.Join(t.TempDir(), "log")
	tmp := t.TempDir()
	// entry write records its token in /var/lib/initrd-remix: a tmpfs
	// there, in a mount namespace of the plugin's own.
	ns := mountNamespace(t, "/var/lib")
	args := append(ns, "sh", "-c", `mount -t tmpfs tmpfs /var/lib && exec sh "$@"`, "sh", "../../scripts/kernel-install/95-initrd-remix.install", "add", kver, entryDir, filepath.Join(entryDir, "linux"))
	cmd := exec.Command("unshare", append(args, initrds...)...)
	cmd.Env = append(os.Environ(), "PATH="+recordingPath(t, path, log), "TMPDIR="+tmp, "KERNEL_INSTALL_LAYOUT=bls",
		"KERNEL_INSTALL_BOOT_ROOT="+boot, "KERNEL_INSTALL_MACHINE_ID="+mid, "KERNEL_INSTALL_ENTRY_TOKEN="+mid)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("plugin: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(log)
	if strings.TrimSpace(string(got)) != "0077 600" {
		t.Errorf("build ran with umask and input mode %q, want \"0077 600\"", got)
	}
	st, err := os.Stat(filepath.Join(entryDir, "initrd-remix-rescue.img"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("rescue image: %v %v, want mode 0600", st, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the plugin left %v in TMPDIR", left)
	}
}

// testGrubScript runs 15_initrd-remix as grub-mkconfig does (the real
// grub-mkconfig_lib) over a /boot of its own (a tmpfs in a private mount
// namespace) that holds rescue images whose versions carry quotes, blanks
// and a command substitution: those get no entry, the others get entries
// whose id and paths are quoted, GRUB_CMDLINE_LINUX is neither globbed nor
// left with rdinit=, and grub-script-check accepts the result (issue 16,
// point 10).
func testGrubScript(t *testing.T, path string) {
	testtool.Require(t, "grub-script-check")
	if _, err := os.Stat("/usr/share/grub/grub-mkconfig_lib"); err != nil {
		testtool.Missing(t, "grub-mkconfig_lib (grub-common): %v", err)
	}
	ns := mountNamespace(t, "/boot")
	out := filepath.Join(t.TempDir(), "grub.cfg")
	script, _ := filepath.Abs("../../scripts/grub.d/15_initrd-remix")
	const body = `set -e
mount -t tmpfs tmpfs /boot
for v in 6.1.0-9-amd64 '6.1 $(reboot)' "6.1';x" 6.2.0-1-amd64 '6.1"x'; do
	echo k >"/boot/vmlinuz-$v"
	echo i >"/boot/initrd-remix-rescue-$v.img"
done
cd /boot # a glob in GRUB_CMDLINE_LINUX would expand here
pkgdatadir=/usr/share/grub GRUB_DISTRIBUTOR="Debian" GRUB_CMDLINE_LINUX="console=ttyS0 rdinit=/bin/sh vmlinuz-*" sh "$1" >"$2"
`
	cmd := exec.Command("unshare", append(ns, "sh", "-c", body, "sh", script, out)...)
	cmd.Env = append(os.Environ(), "PATH="+path)
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("15_initrd-remix: %v: %s", err, stderr)
	}
	cfg, _ := os.ReadFile(out)
	if c, err := exec.Command("grub-script-check", out).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check: %v: %s\n%s", err, c, cfg)
	}
	if n := strings.Count(string(cfg), "menuentry "); n != 2 {
		t.Errorf("%d menu entries, want 2:\n%s", n, cfg)
	}
	for _, want := range []string{
		`$menuentry_id_option 'gnulinux-6.2.0-1-amd64-initrd-remix-rescue-' {`,
		"\tlinux\t'/vmlinuz-6.1.0-9-amd64' console=ttyS0 vmlinuz-*\n",
		"\tinitrd\t'/initrd-remix-rescue-6.1.0-9-amd64.img'\n",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("no %q in:\n%s", want, cfg)
		}
	}
	if strings.Index(string(cfg), "6.2.0-1") > strings.Index(string(cfg), "6.1.0-9") {
		t.Errorf("not newest first:\n%s", cfg)
	}
	if strings.Count(string(stderr), "names no valid kernel version") != 3 {
		t.Errorf("stderr: %s", stderr)
	}
}

// testHooksRefuseOddVersions: a kernel version that cannot name a file
// makes every hook warn and do nothing, exiting 0; postrm.d never follows
// one out of /boot to remove a file (issue 16, point 9).
func testHooksRefuseOddVersions(t *testing.T, path string) {
	for _, tc := range []struct {
		hook string
		args func(boot, v string) []string
	}{
		{"debian/postrm.d/initrd-remix", func(boot, v string) []string { return []string{v, filepath.Join(boot, "vmlinuz-"+v)} }},
		{"debian/postinst.d/initrd-remix", func(boot, v string) []string { return []string{v, filepath.Join(boot, "vmlinuz-"+v)} }},
		{"debian/post-update.d/initrd-remix", func(boot, v string) []string { return []string{v, filepath.Join(boot, "initrd.img-"+v)} }},
		{"kernel-install/95-initrd-remix.install", func(boot, v string) []string {
			return []string{"add", v, filepath.Join(boot, "e"), filepath.Join(boot, "vmlinuz")}
		}},
		{"kernel-install/95-initrd-remix.install", func(boot, v string) []string { return []string{"remove", v, filepath.Join(boot, "e")} }},
	} {
		for _, v := range []string{"x/../../victim", "6.1 $(reboot)", ".hidden"} {
			t.Run(tc.hook+"/"+v, func(t *testing.T) {
				top := t.TempDir()
				boot := filepath.Join(top, "boot")
				os.MkdirAll(filepath.Join(boot, "initrd-remix-rescue-x"), 0o755)
				victim := filepath.Join(top, "victim.img")
				os.WriteFile(victim, []byte("precious"), 0o600)
				cmd := exec.Command("sh", append([]string{"../../scripts/" + tc.hook}, tc.args(boot, v)...)...)
				cmd.Env = append(os.Environ(), "PATH="+path, "KERNEL_INSTALL_LAYOUT=bls", "KERNEL_INSTALL_BOOT_ROOT="+boot)
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "WARNING: ") || !strings.Contains(string(out), "cannot name a file") {
					t.Fatalf("%v: %s", err, out)
				}
				if strings.Contains(string(out), v) {
					t.Errorf("the version is printed: %s", out)
				}
				if _, err := os.Stat(victim); err != nil {
					t.Errorf("%s: %v", victim, err)
				}
			})
		}
	}
}

// testPluginUKI runs the plugin with layout=uki over a $BOOT of its own,
// with a synthetic UKI whose initrd is smallImage, in a mount namespace
// with a tmpfs on /var/lib (the recorded entry tokens). The rescue UKI of a kernel goes with
// kernel-install remove whatever entry token wrote it (a machine-id
// change); an add under a new token replaces the one under the old; entry
// list --check calls a rescue UKI broken once its distribution UKI (the
// installed kernel) is gone, and entry remove --stale removes it, never another
// installation's.
func testPluginUKI(t *testing.T, path string) {
	const kver = "6.1.0-9-amd64"
	const oldTok, newTok, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	initrd, err := os.ReadFile(smallImageWith(t, kver))
	if err != nil {
		t.Fatal(err)
	}
	img := ukitest.Synth(t, append(ukitest.Stub(),
		ukitest.Section{Name: uki.OSRel, Data: []byte("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")},
		ukitest.Section{Name: uki.Cmdline, Data: []byte("console=ttyS0 root=/dev/vda rw")},
		ukitest.Section{Name: uki.Uname, Data: []byte(kver)},
		ukitest.Section{Name: uki.Linux, Data: append([]byte("MZ"), make([]byte, 3000)...)},
		ukitest.Section{Name: uki.Initrd, Data: initrd}), nil)
	boot := t.TempDir()
	linux := filepath.Join(boot, "EFI/Linux")
	os.MkdirAll(linux, 0o755)
	src := filepath.Join(t.TempDir(), "uki.efi")
	os.WriteFile(src, img, 0o644)
	// What 90-uki-copy installs: the distribution's UKI under the token.
	os.WriteFile(filepath.Join(linux, oldTok+"-"+kver+".efi"), img, 0o644)
	plugin, _ := filepath.Abs("../../scripts/kernel-install/95-initrd-remix.install")
	ns := mountNamespace(t, "/var/lib")
	const body = `set -u
plugin=$1 boot=$2 src=$3 kver=$4 old=$5 new=$6 other=$7
mount -t tmpfs tmpfs /var/lib || exit 99
lin=$boot/EFI/Linux
step() { echo "STEP $1:" $(ls "$lin"); }
ki() { tok=$1; shift; KERNEL_INSTALL_ENTRY_TOKEN=$tok KERNEL_INSTALL_MACHINE_ID=$tok sh "$plugin" "$1" "$kver" "$boot/$tok/$kver" "$src"; }
check() { initrd-remix entry list --check --boot-root "$boot"; echo "CHECK $1: $?"; }
ki $old add; step add-old
check add-old
ki $new remove; step remove-new-token
cp "$lin/$old-$kver.efi" "$lin/$new-$kver.efi"
ki $old add; ki $new add; step add-new
cp "$lin/$new-${kver}_initrd-remix-rescue.efi" "$lin/$other-${kver}_initrd-remix-rescue.efi"
rm "$lin/$new-$kver.efi"
check dist-gone
initrd-remix entry remove --stale --boot-root "$boot"; step remove-stale
cp "$lin/$old-$kver.efi" "$lin/$new-$kver.efi"
ki $new add; ki $new remove; step remove
`
	cmd := exec.Command("unshare", append(ns, "sh", "-c", body, "sh", plugin, boot, src, kver, oldTok, newTok, other)...)
	cmd.Env = append(os.Environ(), "PATH="+path, "LC_ALL=C", "KERNEL_INSTALL_LAYOUT=uki", "KERNEL_INSTALL_IMAGE_TYPE=uki", "KERNEL_INSTALL_BOOT_ROOT="+boot)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil || strings.Contains(out, "WARNING") {
		t.Fatalf("plugin: %v\n%s", err, out)
	}
	rescue := func(tok string) string { return tok + "-" + kver + bootentry.UKISuffix }
	dist := func(tok string) string { return tok + "-" + kver + ".efi" }
	for _, want := range []string{
		"STEP add-old: " + dist(oldTok) + " " + rescue(oldTok) + "\n",
		"CHECK add-old: 0\n",
		"STEP remove-new-token: " + dist(oldTok) + "\n",
		"STEP add-new: " + dist(oldTok) + " " + dist(newTok) + " " + rescue(newTok) + "\n",
		"the distribution's unified kernel image " + newTok + "-" + kver + ".efi is gone",
		"CHECK dist-gone: 1\n",
		"STEP remove-stale: " + dist(oldTok) + " " + rescue(other) + "\n",
		"STEP remove: " + dist(oldTok) + " " + rescue(other) + " " + dist(newTok) + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
