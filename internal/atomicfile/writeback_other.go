//go:build !linux

package atomicfile

import "os"

// startWriteback is a no-op where sync_file_range is not known; Commit's
// fsync writes everything.
func startWriteback(*os.File) {}
