package daemon

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Modes of the data directory and of the files in it: they hold every
// tenant's events and destinations and the key that seals their secrets.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// prepareDataDir creates the data directory, or makes an existing one
// private. A directory made by a package or by systemd's StateDirectory= is
// often 0755; one of ours is set to 0700 and the files in it to 0600. A
// directory that others may write to is refused: someone could have
// replaced the store or the key in it already.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("data_dir: %s is not a directory", dir)
	}
	if runtime.GOOS == "windows" {
		return nil // modes are not permissions there
	}
	perm := info.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("data_dir: %s is writable by group or others (mode %04o), so another user could replace the store or its key: run `chmod 700 %s` (and check the files in it)", dir, perm, dir)
	}
	if !ownedByUs(info) {
		// Not ours to change; the files in it are still created 0600.
		return nil
	}
	if perm != dirMode {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("data_dir: making %s private (chmod 700): %w", dir, err)
		}
	}
	return restrictEntries(dir)
}

// restrictEntries sets every regular file of ours in dir to fileMode.
func restrictEntries(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		if info.Mode().Perm() == fileMode || !ownedByUs(info) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Chmod(p, fileMode); err != nil {
			return fmt.Errorf("data_dir: making %s private (chmod 600): %w", p, err)
		}
	}
	return nil
}
