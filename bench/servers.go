package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/devs3"
	"github.com/auditexport/auditexport/internal/testenv"
)

// region is the region of the bucket and of every signed request.
const region = "us-east-1"

// moduleRoot is the directory of the go.mod of the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench from inside the auditexport module (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

// buildAgent builds ./agent into dir as the release build does (CGO off).
func buildAgent(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "bin", "auditexport-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./agent: %w\n%s", err, out)
	}
	return bin, nil
}

// freeAddr returns a 127.0.0.1 host:port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// s3Server is the S3-compatible server the agent delivers to, with one
// bucket owned by the credentials the destination uses.
type s3Server struct {
	desc      string // what it is, for the report
	url       string
	bucket    string
	accessKey string
	secret    string
	pid       int // 0 when it runs inside the bench process
	stop      func()
}

// client returns a path-style S3 client with the bucket owner's keys.
func (s *s3Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.accessKey, s.secret, ""),
		BaseEndpoint: aws.String(s.url),
		UsePathStyle: true,
	})
}

// startS3 starts the chosen server under dir.
func startS3(ctx context.Context, kind, bin, dir string) (*s3Server, error) {
	if kind == "devs3" {
		return startDevS3(ctx, dir)
	}
	return startVersityGW(ctx, bin, dir)
}

func startDevS3(ctx context.Context, dir string) (*s3Server, error) {
	srv, err := devs3.Start(ctx, filepath.Join(dir, "devs3"), "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &s3Server{
		desc: "devs3 (gofakes3, in the bench process)", url: srv.URL(), bucket: "auditexport-bench",
		accessKey: "AKIABENCH" + testenv.RandomKey(11), secret: testenv.RandomKey(40),
		stop: func() { _ = srv.Close() },
	}
	if err := srv.CreateBucket(s.bucket); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startVersityGW runs versitygw over a posix directory on free loopback
// ports, creates a user with the "user" role and a bucket it owns: the
// destination writes with that user's static keys, as a customer's would.
func startVersityGW(ctx context.Context, bin, dir string) (*s3Server, error) {
	rootKey, rootSecret := "VGWROOT"+testenv.RandomKey(13), testenv.RandomKey(40)
	iamDir, dataDir := filepath.Join(dir, "vgw", "iam"), filepath.Join(dir, "vgw", "data")
	for _, d := range []string{iamDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var lastErr error
	// The ports are picked before versitygw binds them, so another process
	// may take one first: try again with new ports.
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		adminAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		p, err := startProcess(bin, filepath.Join(dir, "versitygw.log"),
			[]string{"ROOT_ACCESS_KEY=" + rootKey, "ROOT_SECRET_KEY=" + rootSecret},
			"--port", addr, "--admin-port", adminAddr, "--iam-dir", iamDir,
			"--health", "/health", "--quiet", "posix", dataDir)
		if err != nil {
			return nil, err
		}
		url := "http://" + addr
		if err = waitHTTP(ctx, url+"/health", p.done, 15*time.Second); err == nil {
			err = waitDial(ctx, adminAddr, 5*time.Second)
		}
		if err != nil {
			p.stop(5 * time.Second)
			lastErr = fmt.Errorf("versitygw did not start: %w\n%s", err, tail(p.logPath, 20))
			continue
		}
		s := &s3Server{
			desc: "versitygw " + moduleVersion(bin) + " (posix backend, " + bin + ")",
			url:  url, bucket: "auditexport-bench",
			accessKey: "VGWUSER" + testenv.RandomKey(13), secret: testenv.RandomKey(40),
			pid:  p.cmd.Process.Pid,
			stop: func() { p.stop(10 * time.Second) },
		}
		admin := func(args ...string) error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			full := append([]string{"admin", "--access", rootKey, "--secret", rootSecret,
				"--endpoint-url", "http://" + adminAddr}, args...)
			if out, err := exec.CommandContext(cctx, bin, full...).CombinedOutput(); err != nil {
				return fmt.Errorf("versitygw admin %s: %w\n%s", args[0], err, out)
			}
			return nil
		}
		if err := admin("create-user", "--access", s.accessKey, "--secret", s.secret, "--role", "user"); err != nil {
			s.stop()
			return nil, err
		}
		if err := admin("create-bucket", "--owner", s.accessKey, "--bucket", s.bucket); err != nil {
			s.stop()
			return nil, err
		}
		return s, nil
	}
	return nil, lastErr
}

// moduleVersion is the module version a Go binary was built from, such as
// "v1.8.0", or "(version unknown)".
func moduleVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil || info.Main.Version == "" {
		return "(version unknown)"
	}
	return info.Main.Version
}

// process is a child process of the bench, with its output in a file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when it has exited
}

// startProcess starts bin with args, its output appended to logPath and
// env added to the bench's environment.
func startProcess(bin, logPath string, env []string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns whether the process exited on its own.
func (p *process) stop(grace time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return false
}

// waitHTTP polls url until it answers 200, the process exits or the time
// is up.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer within %s", url, limit)
}

func waitDial(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening after %s", addr, limit)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// agentRunner runs the agent: as its own process for the benchmark, or
// inside the bench for profiling.
type agentRunner interface {
	// start starts the agent and returns once its API answers.
	start(ctx context.Context) error
	// stop shuts it down gracefully; it does nothing when it is stopped.
	stop()
	// pid is the process the agent runs in.
	pid() int
	// logTail returns the end of the agent's log.
	logTail() string
}

// agentProc runs the agent binary with one config file and data directory.
// Each start is a new process; the data directory carries over.
type agentProc struct {
	bin      string
	config   string
	dataDir  string
	endpoint string
	logPath  string
	env      []string // added to the bench's environment
	proc     *process
}

// agentConfig is the agent's HCL: a loopback listener, the S3 server as the
// operator's S3 endpoint (STS too, though static keys never call it), no
// per-tenant rate limit (the default of 20,000 events/s would cap the
// ingest figure), a 1 s delivery tick and the store block (none for
// SQLite, the default).
const agentConfig = `
listen    = %q
data_dir  = %q
log_level = "warn"

aws {
  region            = %q
  s3_endpoint       = %q
  sts_endpoint      = %q
  s3_use_path_style = true
  principal_arn     = "arn:aws:iam::000000000000:user/auditexport-bench"
  access_key_id     = %q
  secret_access_key = %q
  assume_role_retry = "0s"
}

ingest {
  tenant_rate_per_second = 0
}

delivery {
  tick = "1s"
}
%s`

// newAgentProc writes the config of an agent on st into dir, which must
// exist; its data directory and log are there too.
func newAgentProc(bin, dir string, s3 *s3Server, st *benchStore) (*agentProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	a := &agentProc{
		bin: bin, config: filepath.Join(dir, "agent.hcl"), dataDir: filepath.Join(dir, "agent-data"),
		endpoint: "http://" + addr, logPath: filepath.Join(dir, "agent.log"),
	}
	cfg := fmt.Sprintf(agentConfig, addr, a.dataDir, region, s3.url, s3.url, s3.accessKey, s3.secret, st.block)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return a, nil
}

// cli runs an operator command of the agent (with the agent stopped).
func (a *agentProc) cli(ctx context.Context, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, a.bin, append(args, "-config", a.config)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("auditexport-agent %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// start starts a new agent process and waits until /healthz answers.
func (a *agentProc) start(ctx context.Context) error {
	if a.proc != nil {
		return errors.New("the agent is already running")
	}
	p, err := startProcess(a.bin, a.logPath, a.env, "serve", "-config", a.config)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, a.endpoint+"/healthz", p.done, 30*time.Second); err != nil {
		p.stop(5 * time.Second)
		return fmt.Errorf("agent did not start: %w\n%s", err, a.logTail())
	}
	a.proc = p
	return nil
}

// pid is the running agent's process id.
func (a *agentProc) pid() int { return a.proc.cmd.Process.Pid }

// logTail returns the last lines of the agent's log.
func (a *agentProc) logTail() string { return tail(a.logPath, 20) }

// stop shuts the agent down with SIGTERM (it commits what it accepted and
// stops delivery between objects). It does nothing when it is not running.
func (a *agentProc) stop() {
	if a.proc == nil {
		return
	}
	if !a.proc.stop(60 * time.Second) {
		progress("the agent did not stop within 60s of SIGTERM and was killed")
	}
	a.proc = nil
}

// procStatus returns the fields of /proc/<pid>/status in bytes, such as
// VmHWM (peak resident set) and VmRSS.
func procStatus(pid int) (map[string]int64, error) {
	return procStatusFile("/proc/" + strconv.Itoa(pid) + "/status")
}
