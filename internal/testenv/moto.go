// Package testenv starts real servers for tests: a moto_server with IAM,
// STS and S3 on a free loopback port, in auth mode so that credentials, IAM
// policies and role trust policies are enforced.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// Fixed values of every moto_server started by StartMoto.
const (
	// MotoRegion is the region of the admin clients.
	MotoRegion = "us-east-1"
	// MotoAccountID is moto's default account.
	MotoAccountID = "123456789012"
	// MotoVersion is the moto release the harness is written against.
	MotoVersion = "5.2.1"
)

const (
	adminUser   = "testenv-admin"
	adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

	// bootstrapRequests is the number of unauthenticated requests moto
	// allows before it enforces IAM: exactly the calls of bootstrapAdmin.
	bootstrapRequests = 3
)

// Moto is a running moto_server.
type Moto struct {
	// URL is the endpoint of every service, e.g. "http://127.0.0.1:40123".
	URL string
	// S3URL is an S3 endpoint in front of URL that answers a denied
	// HeadBucket with the bucket's region, as AWS does (see startS3Front).
	// Agents started by this package use it.
	S3URL string
	// Region is the region of the admin clients ("us-east-1").
	Region string
	// AdminKey and AdminSecret belong to an IAM user allowed to do anything.
	AdminKey    string
	AdminSecret string
	// AccountID is the account of every IAM entity ("123456789012").
	AccountID string

	logPath string
}

// StartMoto starts moto_server in auth mode on a free loopback port and
// creates an admin user. The server is killed when the test ends.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found on PATH: install moto %s (pip install 'moto[server]==%s')", MotoVersion, MotoVersion)
	}
	m := &Moto{
		Region:    MotoRegion,
		AccountID: MotoAccountID,
		logPath:   t.TempDir() + "/moto.log",
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	// Port 0 lets the kernel pick the port at bind time; moto logs the
	// URL. Picking a free port first and passing it races with other test
	// processes doing the same.
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", "0")
	cmd.Env = append(serverEnv(), "INITIAL_NO_AUTH_ACTION_COUNT="+strconv.Itoa(bootstrapRequests))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		killProcessGroup(cmd)
		<-exited //nolint:errcheck // killed on purpose: its exit error says nothing
	})

	m.waitReady(t, exited)
	m.bootstrapAdmin(t)
	m.startS3Front(t)
	return m
}

// serverEnv returns the environment without AWS_* variables: moto calls
// botocore internally, and a profile or endpoint meant for the tests (even
// an empty AWS_PROFILE) breaks it with errors that surface as HTTP 500.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady reads the server's URL from its log, then polls /moto-api/,
// which does not count against INITIAL_NO_AUTH_ACTION_COUNT.
func (m *Moto) waitReady(t testing.TB, exited <-chan error) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(HangGuard)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("moto_server exited early (%v); log:\n%s", err, m.LogTail())
		default:
		}
		if m.URL == "" {
			m.URL = m.urlFromLog()
		}
		if m.URL != "" {
			resp, err := client.Get(m.URL + "/moto-api/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("moto_server not ready after %s; log:\n%s", HangGuard, m.LogTail())
}

// runningOn matches werkzeug's startup line "* Running on http://127.0.0.1:PORT".
var runningOn = regexp.MustCompile(`Running on (http://127\.0\.0\.1:[0-9]+)`)

func (m *Moto) urlFromLog() string {
	b, _ := os.ReadFile(m.logPath)
	if match := runningOn.FindSubmatch(b); match != nil {
		return string(match[1])
	}
	return ""
}

// bootstrapAdmin spends the free requests on an admin user and its access
// key. Retries are off so that each call is exactly one request: a retried
// call would use up a free request and leave the next one unauthenticated.
func (m *Moto) bootstrapAdmin(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	cfg := m.config("bootstrap", "bootstrap")
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	client := iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.URL) })

	fail := func(step string, err error) {
		t.Fatalf("moto bootstrap: %s: %v; log:\n%s", step, err, m.LogTail())
	}
	if _, err := client.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(adminUser)}); err != nil && !answeredOK(err) {
		fail("CreateUser", err)
	}
	_, err := client.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName:       aws.String(adminUser),
		PolicyName:     aws.String("allow-all"),
		PolicyDocument: aws.String(adminPolicy),
	})
	if err != nil && !answeredOK(err) {
		fail("PutUserPolicy", err)
	}
	out, err := client.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(adminUser)})
	if err != nil {
		fail("CreateAccessKey", err)
	}
	m.AdminKey = aws.ToString(out.AccessKey.AccessKeyId)
	m.AdminSecret = aws.ToString(out.AccessKey.SecretAccessKey)
}

// answeredOK tells whether a failed call was in fact answered with a 2xx,
// its error coming from reading the rest of the answer: the action was done.
func answeredOK(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 200 && re.HTTPStatusCode() < 300
}

// Config returns an AWS config with the admin's credentials. Clients built
// from it still need BaseEndpoint set to m.URL.
func (m *Moto) Config() aws.Config {
	return m.config(m.AdminKey, m.AdminSecret)
}

func (m *Moto) config(key, secret string) aws.Config {
	// Built by hand rather than by config.LoadDefaultConfig, so AWS_*
	// variables and shared config files of the machine do not apply.
	return aws.Config{
		Region:      m.Region,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
		// A fresh connection per call: moto's development server answers
		// "Connection: close" and may close the connection while the SDK
		// drains an answer it has already read, failing a call that worked.
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
}

// LogTail returns the last lines of the server's log.
func (m *Moto) LogTail() string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
