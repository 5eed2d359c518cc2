package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// agentBin is the auditexport-agent binary built once for the end-to-end
// tests, which run it as a real process (so they can SIGKILL it).
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "auditexport-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "auditexport-agent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building auditexport-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is one moto server with a delivery principal, plus an agent config
// that points at it.
type world struct {
	moto      *testenv.Moto
	principal string // the delivery principal's ARN
	dir       string
	config    string // path of agent.hcl
	listen    string
}

func newWorld(t *testing.T, tick string) *world {
	t.Helper()
	m := testenv.StartMoto(t)
	arn, key, secret := m.CreateUser(t, "auditexport-delivery")
	w := &world{moto: m, principal: arn, dir: t.TempDir(), listen: freeAddr(t)}
	w.config = filepath.Join(w.dir, "agent.hcl")
	cfg := fmt.Sprintf(`
listen    = %q
data_dir  = %q
log_level = "debug"

aws {
  region            = "us-east-1"
  s3_endpoint       = %q
  sts_endpoint      = %q
  s3_use_path_style = true
  principal_arn     = %q
  access_key_id     = %q
  secret_access_key = %q
  assume_role_retry = "0s"
}

delivery {
  tick          = %q
  retry_initial = "200ms"
  retry_max     = "2s"
}
`, w.listen, filepath.Join(w.dir, "data"), m.URL, m.URL, arn, key, secret, tick)
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (w *world) endpoint() string { return "http://" + w.listen }

// cli runs an operator command against the world's data dir.
func (w *world) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(agentBin, append(args, "-config", w.config)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("auditexport-agent %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var externalIDRe = regexp.MustCompile(`external id: (\S+)`)

// tenant creates a tenant and its manage token; it returns the external id.
func (w *world) tenant(t *testing.T, name string) (externalID string, manage *api.Client) {
	t.Helper()
	m := externalIDRe.FindStringSubmatch(w.cli(t, "tenant", "create", name))
	if m == nil {
		t.Fatal("tenant create printed no external id")
	}
	return m[1], w.client(t, strings.TrimSpace(w.cli(t, "token", "create", "-tenant", name)))
}

func (w *world) ingestClient(t *testing.T) *api.Client {
	return w.client(t, strings.TrimSpace(w.cli(t, "token", "create", "-scope", "ingest")))
}

func (w *world) client(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(w.endpoint(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// customerSetup creates, as a customer would with the data sources' JSON, a
// bucket and a role that trusts the delivery principal with externalID.
func (w *world) customerSetup(t *testing.T, name, externalID, prefix string) (bucket, roleARN string) {
	t.Helper()
	bucket = name + "-audit"
	w.moto.CreateBucket(t, bucket, "us-east-1")
	roleARN = w.moto.CreateRole(t, name+"-delivery",
		policy.TrustPolicy(w.principal, externalID).JSON(),
		policy.RolePolicy(bucket, prefix, "").JSON())
	return bucket, roleARN
}

// agentProc is a running agent process.
type agentProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func (w *world) start(t *testing.T) *agentProc {
	t.Helper()
	cmd := exec.Command(agentBin, "serve", "-config", w.config)
	p := &agentProc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(w.endpoint() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("agent exited at start:\n%s", p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("agent not healthy after 20s:\n%s", p.log.String())
	return nil
}

// kill SIGKILLs the agent: no shutdown code runs.
func (p *agentProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop within 30s of SIGTERM:\n%s", p.log.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("agent exited with %d after SIGTERM:\n%s", code, p.log.String())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
