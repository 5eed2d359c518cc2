package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/store/storetest"
)

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store {
		s, err := store.Open(context.Background(), store.Config{
			SQLitePath: filepath.Join(t.TempDir(), "agent.db"),
			Now:        o.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
