//go:build unix

package daemon

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auditexport/auditexport/internal/config"
)

// withUmask runs the test under umask, as a service manager would.
func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestOpenStoreMakesDataDirPrivate(t *testing.T) {
	withUmask(t, 0o022)
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
	}{
		{"new directory", func(*testing.T, string) {}},
		{"existing 0755 directory with 0644 files", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// A store from an older version and an operator's note.
			first := config.Default()
			first.DataDir = dir
			st, err := OpenStore(context.Background(), first)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateTenant(context.Background(), "acme", "ext"); err != nil {
				t.Fatal(err)
			}
			st.Close()
			for _, f := range listFiles(t, dir) {
				if err := os.Chmod(f, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tt.prepare(t, dir)
			cfg := config.Default()
			cfg.DataDir = dir
			st, err := OpenStore(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			// A write makes sure the WAL and shared-memory files exist.
			if _, err := st.CreateTenant(context.Background(), "globex", "ext2"); err != nil {
				t.Fatal(err)
			}
			assertMode(t, dir, 0o700)
			files := listFiles(t, dir)
			for _, suffix := range []string{"auditexport.db", "auditexport.db-wal", "auditexport.db-shm"} {
				if _, err := os.Stat(filepath.Join(dir, suffix)); err != nil {
					t.Errorf("%s: %v (files: %v)", suffix, err, files)
				}
			}
			for _, f := range files {
				assertMode(t, f, 0o600)
			}
		})
	}
}

func TestOpenStoreRefusesWritableDataDir(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777, 0o770, 0o702} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.DataDir = dir
			st, err := OpenStore(context.Background(), cfg)
			if err == nil {
				st.Close()
				t.Fatalf("OpenStore accepted a %s data dir", mode)
			}
			for _, want := range []string{dir, "writable by group or others", "chmod 700 " + dir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if files := listFiles(t, dir); len(files) != 0 {
				t.Errorf("refused data dir has files: %v", files)
			}
		})
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(dir, e.Name()))
	}
	return files
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}
