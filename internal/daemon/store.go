package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/store"
)

// storeFile is the SQLite store's file name in the data directory.
const storeFile = "auditexport.db"

// StoreNotFoundError is OpenExistingStore's error when the data directory
// holds no store.
type StoreNotFoundError struct {
	// Path is the store file that was looked for.
	Path string
	Err  error
}

func (e *StoreNotFoundError) Error() string {
	return fmt.Sprintf("no agent store at %s: %v", e.Path, e.Err)
}

func (e *StoreNotFoundError) Unwrap() error { return e.Err }

// OpenExistingStore opens the store that serve keeps in the config's data
// directory, and fails with a *StoreNotFoundError when there is none. The
// operator commands use it rather than OpenStore: a command pointed at the
// wrong data directory must not create a new, empty store whose tenants and
// tokens the running agent never sees.
func OpenExistingStore(ctx context.Context, cfg *config.Config) (*store.SQLite, error) {
	path := filepath.Join(cfg.DataDir, storeFile)
	if _, err := os.Stat(path); err != nil {
		return nil, &StoreNotFoundError{Path: path, Err: err}
	}
	return store.OpenSQLite(ctx, path)
}
