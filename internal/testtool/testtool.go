// Package testtool lets tests depend on real external programs (GNU cpio,
// ldd, zstd, qemu) and on the lab built by scripts/lab.sh without silently
// passing when they are absent: on a developer machine a missing tool skips
// the test, under CI (CI=true) it fails it, because CI installs everything.
// It also makes the on-disk fixtures that tests of several packages share.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under the project's CI script.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require returns the path of the named program, skipping the test when it
// is missing outside CI and failing it in CI.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "program %q not found on PATH", name)
	}
	return p
}

// Missing skips the test outside CI and fails it in CI, with the reason.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required by CI: "+format, args...)
	}
	t.Skipf("skipped (not in CI): "+format, args...)
}

// Lab returns the lab directory built by scripts/lab.sh, named by the
// INITRD_REMIX_LAB environment variable.
func Lab(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("INITRD_REMIX_LAB")
	if dir == "" {
		Missing(t, "INITRD_REMIX_LAB is not set (run scripts/test.sh, which builds the lab)")
	}
	if _, err := os.Stat(dir + "/lab.env"); err != nil {
		Missing(t, "lab at %s is incomplete: %v", dir, err)
	}
	return dir
}
