package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// fileMode is the mode of the database and its WAL and shared-memory
// files. They hold every tenant's events and destinations, so only the
// agent's user may read them, whatever the umask.
const fileMode fs.FileMode = 0o600

// sidecars are the files SQLite keeps next to the database in WAL mode.
var sidecars = []string{"-wal", "-shm", "-journal"}

// createPrivate creates the database file with fileMode when it does not
// exist yet, so SQLite never creates it with the umask's mode. SQLite
// gives the -wal and -shm files it creates later the mode of the
// database file.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// restrictFiles sets the database and the sidecar files that exist to
// fileMode: a database created by an older version, or copied in, may be
// readable by others.
func restrictFiles(path string) error {
	for _, p := range append([]string{path}, sidecarPaths(path)...) {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm() == fileMode {
			continue
		}
		if err := os.Chmod(p, fileMode); err != nil {
			return fmt.Errorf("making %s private (chmod 600): %w", p, err)
		}
	}
	return nil
}

func sidecarPaths(path string) []string {
	ps := make([]string, len(sidecars))
	for i, s := range sidecars {
		ps[i] = path + s
	}
	return ps
}
