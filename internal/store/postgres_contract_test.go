package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/store/storetest"
	"github.com/auditexport/auditexport/internal/testenv"
)

// pg is the package's PostgreSQL server, started by the first test that
// needs it; each test takes a database or a schema of its own.
var pg testenv.SharedPostgres

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Close()
	os.Exit(code)
}

func TestPostgresContract(t *testing.T) {
	server := pg.Get(t)
	storetest.Run(t, func(t *testing.T, o storetest.Options) store.Store {
		s, err := store.Open(context.Background(), store.Config{
			PostgresURL: server.NewSchema(t),
			Now:         o.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
