//go:build unix

package daemon

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedByUs reports whether the agent's user owns the file, and so may
// change its mode.
func ownedByUs(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
