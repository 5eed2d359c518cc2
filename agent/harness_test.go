package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/testenv"
)

// world is a moto_server and an auditexport-agent process delivering
// through it; the agent runs as a real process so tests can SIGKILL it.
type world struct {
	*testenv.Agent
}

func newWorld(t *testing.T, tick string) *world {
	t.Helper()
	return &world{testenv.NewAgent(t, testenv.StartMoto(t), tick)}
}

// pg is the PostgreSQL server of the package's tests, started by the first
// test that needs it; each test takes a database of its own.
var pg testenv.SharedPostgres

// backends are the store engines the end-to-end tests run the agent on.
var backends = []string{"sqlite", "postgres"}

// onBackend sets opts to keep the agent's store on backend: SQLite in its
// data directory, or a new database of the package's PostgreSQL server.
func onBackend(t *testing.T, backend string, opts testenv.AgentOptions) testenv.AgentOptions {
	t.Helper()
	switch backend {
	case "sqlite":
	case "postgres":
		opts.PostgresURL = pg.Get(t).NewDatabase(t)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	return opts
}

// newWorldOn is newWorld with the agent's store on backend.
func newWorldOn(t *testing.T, backend, tick string) *world {
	t.Helper()
	m := testenv.StartMoto(t)
	return &world{testenv.NewAgentWithOptions(t, m, onBackend(t, backend, testenv.AgentOptions{Tick: tick}))}
}

func (w *world) ingestClient(t *testing.T) *api.Client {
	t.Helper()
	return w.Client(t, w.IngestToken(t))
}

// tenant creates a tenant; it returns its external id and a manage client.
func (w *world) tenant(t *testing.T, name string) (string, *api.Client) {
	t.Helper()
	extID, token := w.Tenant(t, name)
	return extID, w.Client(t, token)
}

func (w *world) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(w.Endpoint + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return string(data)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
