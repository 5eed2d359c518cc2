package testenv

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
)

var (
	buildOnce sync.Once
	agentPath string
	buildErr  error
)

// AgentBinary builds ./agent once per test binary and returns its path. The
// binary outlives single tests, so a package that uses it removes it in its
// TestMain with RemoveAgentBinary.
func AgentBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "auditexport-agent-bin-") //nolint:usetesting // shared by every test of the package
		if err != nil {
			buildErr = err
			return
		}
		agentPath = filepath.Join(dir, "auditexport-agent")
		cmd := exec.Command("go", "build", "-o", agentPath, "./agent")
		cmd.Dir = moduleRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./agent: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentPath
}

// RemoveAgentBinary deletes the binary AgentBinary built, if any.
func RemoveAgentBinary() {
	if agentPath != "" {
		_ = os.RemoveAll(filepath.Dir(agentPath))
	}
}

// moduleRoot is the repository root, found from this file's location.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Agent is an auditexport-agent process configured to deliver through a
// Moto server with its own delivery principal.
type Agent struct {
	Moto *Moto
	// PrincipalARN is the delivery principal customers trust.
	PrincipalARN string
	// Endpoint is the agent's API URL.
	Endpoint string
	// Config is the path of the agent's HCL file.
	Config string
	// CACertPEM is the agent's self-signed certificate when it serves TLS.
	CACertPEM string

	bin    string
	listen string
	proc   *AgentProcess
	http   *http.Client
}

// NewAgent writes an agent config that delivers through m (every schedule
// runs each tick) and starts the agent. It is killed when the test ends.
func NewAgent(t testing.TB, m *Moto, tick string) *Agent {
	t.Helper()
	return NewAgentWithOptions(t, m, AgentOptions{Tick: tick})
}

// AgentOptions vary the agent that NewAgentWithOptions configures.
type AgentOptions struct {
	// Tick runs every destination's schedule this often, e.g. "1s".
	Tick string
	// S3Endpoint is where the agent sends S3 requests, such as a
	// FaultProxy in front of the Moto server; empty means the Moto server
	// (through Moto.S3URL).
	// STS requests always go to the Moto server.
	S3Endpoint string
	// LogLevel is the agent's log level; empty means "debug".
	LogLevel string
	// Ingest is the body of the config's ingest block, e.g. limits.
	Ingest string
	// Delivery is added to the config's delivery block.
	Delivery string
	// AWS is added to the config's aws block, e.g. allowed_regions.
	AWS string
	// TLS serves the API over HTTPS with a self-signed certificate.
	TLS bool
	// Stopped writes the config without starting the agent; start it with
	// Start or StartWith.
	Stopped bool
	// PostgresURL keeps the agent's store in this PostgreSQL database (a
	// store.postgres block) instead of SQLite in its data directory.
	PostgresURL string
}

// NewAgentWithOptions is NewAgent with the choices of opts.
func NewAgentWithOptions(t testing.TB, m *Moto, opts AgentOptions) *Agent {
	t.Helper()
	if opts.S3Endpoint == "" {
		opts.S3Endpoint = m.S3URL
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	arn, key, secret := m.CreateUser(t, "auditexport-delivery")
	dir := t.TempDir()
	a := &Agent{Moto: m, PrincipalARN: arn, bin: AgentBinary(t), listen: FreeAddr(t), http: http.DefaultClient}
	a.Endpoint = "http://" + a.listen
	a.Config = filepath.Join(dir, "agent.hcl")
	tlsBlock := ""
	if opts.TLS {
		tlsBlock = a.useTLS(t, dir)
	}
	storeBlock := ""
	if opts.PostgresURL != "" {
		// A small pool: agents and the database share the test machine.
		storeBlock = fmt.Sprintf("store {\n  postgres {\n    url       = %q\n    max_conns = 4\n  }\n}\n", opts.PostgresURL)
		// On PostgreSQL delivery runs under leases, and a restarted agent
		// is a new holder: it waits for the killed one's leases to expire.
		// Short leases keep a test that kills agents from waiting the
		// default 15 s after every kill.
		if !strings.Contains(opts.Delivery, "lease_ttl") {
			opts.Delivery += "  lease_ttl   = \"3s\"\n  lease_renew = \"1s\"\n"
		}
	}
	cfg := fmt.Sprintf(`
listen    = %q
data_dir  = %q
log_level = %q

aws {
  region            = "us-east-1"
  s3_endpoint       = %q
  sts_endpoint      = %q
  s3_use_path_style = true
  principal_arn     = %q
  access_key_id     = %q
  secret_access_key = %q
  assume_role_retry = "0s"
%s
}

ingest {
%s
}

delivery {
  tick          = %q
  retry_initial = "200ms"
  retry_max     = "2s"
%s
}
%s
%s
`, a.listen, filepath.Join(dir, "data"), opts.LogLevel, opts.S3Endpoint, m.URL, arn, key, secret, opts.AWS, opts.Ingest, opts.Tick, opts.Delivery, tlsBlock, storeBlock)
	if err := os.WriteFile(a.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if !opts.Stopped {
		a.Start(t)
	}
	return a
}

// useTLS makes a certificate for the agent and returns the config's tls block.
func (a *Agent) useTLS(t testing.TB, dir string) string {
	t.Helper()
	cert, key := SelfSignedCert(t, dir)
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	a.CACertPEM = string(pem)
	a.Endpoint = "https://" + a.listen
	a.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return fmt.Sprintf("tls {\n  cert_file = %q\n  key_file  = %q\n}\n", cert, key)
}

// FreeAddr returns a free 127.0.0.1 host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// CLI runs an operator command of the agent against its data dir.
func (a *Agent) CLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(a.bin, append(args, "-config", a.Config)...).CombinedOutput()
	if err != nil {
		t.Fatalf("auditexport-agent %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var externalIDRe = regexp.MustCompile(`external id: (\S+)`)

// Tenant creates a tenant and a manage token for it.
func (a *Agent) Tenant(t testing.TB, name string) (externalID, manageToken string) {
	t.Helper()
	m := externalIDRe.FindStringSubmatch(a.CLI(t, "tenant", "create", name))
	if m == nil {
		t.Fatal("tenant create printed no external id")
	}
	return m[1], strings.TrimSpace(a.CLI(t, "token", "create", "-tenant", name))
}

// IngestToken creates a platform ingest token.
func (a *Agent) IngestToken(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(a.CLI(t, "token", "create", "-scope", "ingest"))
}

// Client returns an API client with token.
func (a *Agent) Client(t testing.TB, token string) *api.Client {
	t.Helper()
	var hc *http.Client
	if a.CACertPEM != "" {
		hc = a.http
	}
	c, err := api.NewClient(a.Endpoint, token, hc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CustomerSetup creates what a customer makes from the data sources' JSON: a
// bucket and a role trusting the delivery principal with externalID.
func (a *Agent) CustomerSetup(t testing.TB, name, externalID, prefix string) (bucket, roleARN string) {
	t.Helper()
	bucket = name + "-audit"
	a.Moto.CreateBucket(t, bucket, "us-east-1")
	roleARN = a.Moto.CreateRole(t, name+"-delivery",
		policy.TrustPolicy(a.PrincipalARN, externalID).JSON(),
		policy.RolePolicy(bucket, prefix, "").JSON())
	return bucket, roleARN
}

// SetTick rewrites the delivery tick in the agent's config; it takes effect
// at the next Start.
func (a *Agent) SetTick(t testing.TB, tick string) {
	t.Helper()
	data, err := os.ReadFile(a.Config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`tick\s*=\s*"[^"]*"`)
	if err := os.WriteFile(a.Config, re.ReplaceAll(data, []byte(`tick = "`+tick+`"`)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Process is the running agent process, nil after Kill.
func (a *Agent) Process() *AgentProcess { return a.proc }

// AgentProcess is a running agent.
type AgentProcess struct {
	cmd  *exec.Cmd
	log  *SyncBuffer
	done chan struct{}
}

// Start starts the agent and waits until /healthz answers.
func (a *Agent) Start(t testing.TB) *AgentProcess {
	t.Helper()
	return a.StartWith(t, nil, "serve", "-config", a.Config)
}

// StartWith starts the agent binary with args, and env added to the test's
// environment, and waits until /healthz answers. The command must serve
// a's configuration, e.g. "serve" with AUDITEXPORT_CONFIG=a.Config in env.
func (a *Agent) StartWith(t testing.TB, env []string, args ...string) *AgentProcess {
	t.Helper()
	cmd := exec.Command(a.bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &AgentProcess{cmd: cmd, log: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.log.String())
		}
	})
	a.proc = p
	deadline := time.Now().Add(HangGuard)
	for time.Now().Before(deadline) {
		if resp, err := a.http.Get(a.Endpoint + "/healthz"); err == nil {
			_ = resp.Body.Close()
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
	t.Fatalf("agent not healthy after %s:\n%s", HangGuard, p.log.String())
	return nil
}

// Kill SIGKILLs the agent: no shutdown code runs.
func (p *AgentProcess) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Log is what the agent has logged so far.
func (p *AgentProcess) Log() string { return p.log.String() }

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
