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
