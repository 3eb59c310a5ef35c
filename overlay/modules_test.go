package overlay

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initrd-remix/initrd-remix/internal/testtool"
	"github.com/initrd-remix/initrd-remix/remix/treetest"
)

// TestModulesLab adds modules the lab's initramfs-tools image lacks, by
// name and by alias, and checks with the real modprobe reading the image's
// rewritten indexes that it loads the same modules, in the same order, as
// from the lab root; firmware named by modinfo comes along.
func TestModulesLab(t *testing.T) {
	modprobe := testtool.Require(t, "modprobe")
	root, kver := labEnv(t, "LAB_ROOT"), labEnv(t, "LAB_KVER")
	img := openLabImage(t, "itools-zstd")
	mods := []string{"kvm_amd", "snd-hda-intel", "fs-9p"}
	rep, err := Apply(context.Background(), img.Tree, Options{Root: root, Preset: "none", Modules: mods})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries added; warnings: %d", len(rep.Added), len(rep.Warnings))
	tmp := t.TempDir()
	treetest.Unpack(t, img.Tree, "lib/modules/"+kver, filepath.Join(tmp, "lib/modules", kver), nil)
	show := func(base, mod string) string {
		out, err := exec.Command(modprobe, "-d", base, "-S", kver, "--show-depends", mod).CombinedOutput()
		if err != nil {
			t.Errorf("modprobe -d %s --show-depends %s: %v\n%s", base, mod, err, out)
		}
		return strings.ReplaceAll(string(out), base, "BASE")
	}
	for _, m := range append(mods, "ext4", "btrfs") { // and modules the image had
		want, got := show(root, m), show(tmp, m)
		if got != want || want == "" {
			t.Errorf("%s: image's modprobe says\n%s\nthe root's\n%s", m, got, want)
		}
	}
	// kvm_amd needs ccp, whose modinfo names AMD SEV firmware.
	if _, n, _ := img.Tree.Resolve("/lib/firmware/amd/amd_sev_fam17h_model0xh.sbin", true); n == nil {
		t.Error("firmware of ccp missing")
	}
	// Bad input: unknown module, unknown kernel.
	if _, err := Apply(context.Background(), img.Tree, Options{Root: root, Preset: "none", Modules: []string{"nosuchmodule"}}); err == nil || !strings.Contains(err.Error(), "nosuchmodule: unknown for kernel "+kver) {
		t.Errorf("unknown module: %v", err)
	}
	if _, err := Apply(context.Background(), img.Tree, Options{Root: root, Preset: "none", KVer: "9.9.9", Modules: []string{"ext4"}}); err == nil || !strings.Contains(err.Error(), "no modules of kernel 9.9.9") {
		t.Errorf("unknown kernel: %v", err)
	}
	mustVerify(t, img.Tree)
}
