// Command markerinit is the /sbin/init of the lab's marker root filesystem:
// when a boot reaches the installed root (switch_root done), it prints a
// marker on the console and powers the VM off, so the boot harness can tell
// "the initrd found and mounted the root" from everything else. It is
// built statically by scripts/lab.sh.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// marker must match LAB_MARKER in scripts/lab.sh.
const marker = "INITRD-REMIX-ROOT-REACHED"

func main() {
	if _, err := os.Stat("/dev/console"); err != nil {
		syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	}
	syscall.Mount("proc", "/proc", "proc", 0, "")
	root := "unknown"
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		root = string(b)
	}
	line := fmt.Sprintf("%s pid=%d cmdline=%s", marker, os.Getpid(), root)
	for _, dev := range []string{"/dev/console", "/dev/kmsg", "/dev/ttyS0"} {
		if f, err := os.OpenFile(dev, os.O_WRONLY, 0); err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
	syscall.Sync()
	time.Sleep(500 * time.Millisecond)
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
