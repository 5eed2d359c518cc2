package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityGWVersion is the versitygw release the harness is written against.
const VersityGWVersion = "v1.8.0"

// VersityGWInstall installs versitygw into $(go env GOPATH)/bin (~50 s cold).
const VersityGWInstall = "GOTOOLCHAIN=local go install github.com/versity/versitygw/cmd/versitygw@" + VersityGWVersion

// VersityGW is a running versitygw: an S3 gateway over a posix directory,
// with IAM users kept in a local directory. Unlike moto it enforces bucket
// policies: without an Allow a user is denied, a prefix-scoped Allow covers
// only the prefix, an explicit Deny wins, and the s3:x-amz-acl and
// aws:SecureTransport conditions are evaluated. Its principals are access
// key ids, not ARNs. It has no STS.
type VersityGW struct {
	// URL is the S3 endpoint, such as "http://127.0.0.1:40123", or https://
	// when started by StartVersityGWTLS.
	URL string
	// Region is the gateway's region ("us-east-1").
	Region string
	// RootKey and RootSecret are the root account's credentials: the owner
	// of every bucket created by CreateBucket.
	RootKey    string
	RootSecret string
	// CAFile is the PEM certificate that signs the gateway's TLS
	// certificate, "" without TLS.
	CAFile string

	bin      string
	adminURL string
	client   *http.Client
	log      *SyncBuffer
}

// VersityGWBinary returns the path of versitygw. It fails the test, never
// skips it, when versitygw is missing.
func VersityGWBinary(t testing.TB) string {
	t.Helper()
	bin, err := FindVersityGW()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// FindVersityGW returns the path of versitygw, from PATH or from
// $(go env GOPATH)/bin, or an error that says how to install it.
func FindVersityGW() (string, error) {
	if bin, err := exec.LookPath("versitygw"); err == nil {
		return bin, nil
	}
	for _, dir := range filepath.SplitList(goPath()) {
		bin := filepath.Join(dir, "bin", "versitygw")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("versitygw not found on PATH or in $(go env GOPATH)/bin: install it with\n\t%s", VersityGWInstall)
}

// goPath is what `go env GOPATH` prints, which also honours `go env -w`.
func goPath() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return build.Default.GOPATH
	}
	return strings.TrimSpace(string(out))
}

// StartVersityGW starts versitygw over plain HTTP on free loopback ports.
// It is killed when the test ends.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	return startVersityGW(t, false)
}

// StartVersityGWTLS starts versitygw with a self-signed TLS certificate,
// whose PEM file is CAFile.
func StartVersityGWTLS(t testing.TB) *VersityGW {
	t.Helper()
	return startVersityGW(t, true)
}

func startVersityGW(t testing.TB, useTLS bool) *VersityGW {
	t.Helper()
	dir := t.TempDir()
	g := &VersityGW{
		Region:     "us-east-1",
		RootKey:    "VGWROOT" + RandomKey(13),
		RootSecret: RandomKey(40),
		bin:        VersityGWBinary(t),
		client:     &http.Client{Timeout: 30 * time.Second},
	}
	var tlsArgs []string
	if useTLS {
		cert, key := SelfSignedCert(t, dir)
		g.CAFile = cert
		g.client.Transport = trustingTransport(t, cert)
		// versitygw resolves relative paths against another directory:
		// the paths must be absolute.
		tlsArgs = []string{"--cert", cert, "--key", key}
	}
	// The ports are picked before versitygw binds them (it does not report
	// ports it picked itself), so another process may take one first: try
	// again with new ports.
	var err error
	for range 3 {
		if err = g.start(t, dir, tlsArgs); err == nil {
			return g
		}
	}
	t.Fatalf("versitygw did not start: %v", err)
	return nil
}

// start runs versitygw on new free ports and waits until it answers.
func (g *VersityGW) start(t testing.TB, dir string, tlsArgs []string) error {
	t.Helper()
	addr, adminAddr := FreeAddr(t), FreeAddr(t)
	scheme := "http"
	if len(tlsArgs) > 0 {
		scheme = "https"
	}
	g.URL, g.adminURL = scheme+"://"+addr, "http://"+adminAddr
	iamDir, dataDir := filepath.Join(dir, "iam"), filepath.Join(dir, "data")
	for _, d := range []string{iamDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--port", addr, "--admin-port", adminAddr, "--iam-dir", iamDir,
		"--health", "/health", "--quiet"}, tlsArgs...)
	cmd := exec.Command(g.bin, append(args, "posix", dataDir)...)
	cmd.Env = append(serverEnv(), "ROOT_ACCESS_KEY="+g.RootKey, "ROOT_SECRET_KEY="+g.RootSecret)
	g.log = &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = g.log, g.log
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		killProcessGroup(cmd)
		<-exited
		if t.Failed() {
			t.Logf("versitygw log:\n%s", g.LogTail())
		}
	})
	return g.waitReady(exited, adminAddr)
}

// waitReady polls the health endpoint and the admin port.
func (g *VersityGW) waitReady(exited <-chan struct{}, adminAddr string) error {
	deadline := time.Now().Add(HangGuard)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited at start:\n%s", g.LogTail())
		default:
		}
		if g.healthy() && dialable(adminAddr) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not ready after %s:\n%s", HangGuard, g.LogTail())
}

func (g *VersityGW) healthy() bool {
	resp, err := g.client.Get(g.URL + "/health")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func dialable(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// CreateUser creates a user with the "user" role, which may only use
// buckets it owns or that a bucket policy opens to it, and returns its
// credentials. The access key id is what bucket policies name as principal.
func (g *VersityGW) CreateUser(t testing.TB) (accessKey, secret string) {
	t.Helper()
	accessKey, secret = "VGWUSER"+RandomKey(13), RandomKey(40)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, g.bin, "admin",
		"--access", g.RootKey, "--secret", g.RootSecret, "--endpoint-url", g.adminURL,
		"create-user", "--access", accessKey, "--secret", secret, "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
	return accessKey, secret
}

// CreateBucket creates a bucket owned by the root account.
func (g *VersityGW) CreateBucket(t testing.TB, name string) {
	t.Helper()
	_, err := g.S3Client(g.RootKey, g.RootSecret).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
}

// PutBucketPolicy sets the bucket's policy as the root account. versitygw
// validates the document as AWS does and rejects principals that are not
// access key ids of existing users.
func (g *VersityGW) PutBucketPolicy(t testing.TB, bucket, policyJSON string) {
	t.Helper()
	_, err := g.S3Client(g.RootKey, g.RootSecret).PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(policyJSON),
	})
	if err != nil {
		t.Fatalf("PutBucketPolicy %s: %v\n%s", bucket, err, policyJSON)
	}
}

// ListKeys returns the keys under prefix in bucket, in key order, as root.
func (g *VersityGW) ListKeys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	pages := s3.NewListObjectsV2Paginator(g.S3Client(g.RootKey, g.RootSecret), &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListObjectsV2 %s: %v", bucket, err)
		}
		for _, obj := range page.Contents {
			keys = append(keys, aws.ToString(obj.Key))
		}
	}
	return keys
}

// S3Client returns a path-style S3 client for the gateway with the given
// credentials; it trusts CAFile.
func (g *VersityGW) S3Client(accessKey, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       g.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
		HTTPClient:   g.client,
		BaseEndpoint: aws.String(g.URL),
		UsePathStyle: true,
	})
}

// LogTail returns the last lines of the gateway's output.
func (g *VersityGW) LogTail() string {
	lines := strings.Split(strings.TrimRight(g.log.String(), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// NewAgentForVersityGW starts an agent whose aws.s3_endpoint (operator
// configuration) is g, with a delivery tick of tick. STS and the agent's own
// delivery principal stay on m, so destinations for g use static keys of a
// user of g. With TLS the agent trusts g's certificate through
// AWS_CA_BUNDLE, the AWS SDK's variable for a private CA, which stays set
// until the test ends.
func NewAgentForVersityGW(t testing.TB, m *Moto, g *VersityGW, tick string) *Agent {
	t.Helper()
	if g.CAFile != "" {
		t.Setenv("AWS_CA_BUNDLE", g.CAFile)
	}
	return NewAgentWithOptions(t, m, AgentOptions{Tick: tick, S3Endpoint: g.URL})
}

// trustingTransport returns an HTTP transport that trusts only caFile.
func trustingTransport(t testing.TB, caFile string) *http.Transport {
	t.Helper()
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal(errors.New("no certificate in " + caFile))
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return transport
}

// RandomKey returns n random uppercase letters and digits, the alphabet of
// AWS access key ids.
func RandomKey(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
