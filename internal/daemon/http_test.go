package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
	"github.com/auditexport/auditexport/internal/tokens"
)

// hangGuard bounds every wait in these tests; the server's timeouts are far
// shorter, so reaching it means the server did not act.
const hangGuard = time.Minute

// testDaemon is an agent served in-process on a loopback port.
type testDaemon struct {
	*Daemon
	addr        string
	ingestToken string
	manageToken string
	log         *testenv.SyncBuffer
}

// startDaemon starts an agent on cfg after edit changed it. The AWS side
// is never called by these tests.
func startDaemon(t *testing.T, edit func(cfg *config.Config)) *testDaemon {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.AWS.PrincipalARN = "arn:aws:iam::123456789012:user/delivery"
	cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey = "AKIDTEST", "secret"
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logBuf := &testenv.SyncBuffer{}
	d, err := Start(ctx, cfg, hclog.New(&hclog.LoggerOptions{Output: logBuf, Level: hclog.Info}), "test")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	td := &testDaemon{Daemon: d, log: logBuf}
	tn, err := d.Store.CreateTenant(ctx, "acme", "ext-acme")
	if err != nil {
		t.Fatal(err)
	}
	td.ingestToken = tokens.New(api.ScopeIngest)
	td.manageToken = tokens.New(api.ScopeManage)
	for tok, scope := range map[string]string{td.ingestToken: api.ScopeIngest, td.manageToken: api.ScopeManage} {
		if _, err := d.Store.CreateToken(ctx, store.Token{Hash: tokens.Hash(tok), Scope: scope, TenantID: tn.ID}); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	td.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return td
}

func (td *testDaemon) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", td.addr, hangGuard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// assertClosedByServer reads c until the server closes it; the hang guard
// fails the test if it never does.
func assertClosedByServer(t *testing.T, r io.Reader, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", hangGuard)
	}
}

func fastTimeouts(cfg *config.Config) {
	cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.HTTP.ReadTimeout = 300 * time.Millisecond
	cfg.HTTP.IdleTimeout = 300 * time.Millisecond
}

// A client that sends headers and then stalls in the body is cut off after
// read_timeout.
func TestSlowBodyIsClosed(t *testing.T) {
	td := startDaemon(t, fastTimeouts)
	c := td.dial(t)
	req := "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer " + td.ingestToken +
		"\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{\"timestamp\":"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, c, c)
}

// A client that stalls in its headers is cut off after read_header_timeout.
func TestSlowHeadersAreClosed(t *testing.T) {
	td := startDaemon(t, fastTimeouts)
	c := td.dial(t)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: agent\r\n"); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, c, c)
}

// A keep-alive connection with no next request is closed after idle_timeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	td := startDaemon(t, fastTimeouts)
	c := td.dial(t)
	br := bufio.NewReader(c)
	resp := roundTrip(t, c, br, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %s, close %v", resp.Status, resp.Close)
	}
	assertClosedByServer(t, br, c)
}

func TestHeaderSizeLimit(t *testing.T) {
	td := startDaemon(t, func(cfg *config.Config) { cfg.HTTP.MaxHeaderBytes = 8 << 10 })
	c := td.dial(t)
	// net/http allows 4 KiB over the limit before it refuses.
	big := strings.Repeat("x", 16<<10)
	resp := roundTrip(t, c, bufio.NewReader(c), "GET /healthz HTTP/1.1\r\nHost: agent\r\nX-Big: "+big+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 16 KiB header: %s, want 431", resp.Status)
	}
	c2 := td.dial(t)
	if resp := roundTrip(t, c2, bufio.NewReader(c2), "GET /healthz HTTP/1.1\r\nHost: agent\r\nX-Small: "+big[:2<<10]+"\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a 2 KiB header: %s, want 200", resp.Status)
	}
}

// Past max_connections a new connection is not served until one closes.
func TestConnectionLimit(t *testing.T) {
	td := startDaemon(t, func(cfg *config.Config) { cfg.HTTP.MaxConnections = 2 })
	const healthz = "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n"
	var held []net.Conn
	for range 2 {
		c := td.dial(t)
		if resp := roundTrip(t, c, bufio.NewReader(c), healthz); resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %s", resp.Status)
		}
		held = append(held, c) // kept alive, idle
	}
	third := td.dial(t) // the kernel accepts it; the agent does not yet
	if _, err := io.WriteString(third, healthz); err != nil {
		t.Fatal(err)
	}
	// A short wait for an answer that must not come: a wrong limit fails
	// here on a machine of any speed, a right one cannot.
	if err := third.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if n, err := third.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection was answered past max_connections = 2 (read %d bytes, %v)", n, err)
	}
	_ = held[0].Close()
	if err := third.SetReadDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("the third connection was not served once one closed: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz on the third connection: %s", resp.Status)
	}
}

// roundTrip writes a raw request on c and reads its response from br.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) *http.Response {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}
