//go:build unix

package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/testenv"
)

// A static secret given to the API is not in any file of the data
// directory (the database, its WAL), and delivery still signs with it: moto
// runs in auth mode, so a wrong secret would fail every write.
func TestStaticSecretIsSealedAtRest(t *testing.T) {
	m := testenv.StartMoto(t)
	principal, agentKey, agentSecret := m.CreateUser(t, "auditexport-delivery")
	_, customerKey, customerSecret := m.CreateUser(t, "acme-writer")
	m.PutUserPolicy(t, "acme-writer", "audit-bucket", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::acme-audit","arn:aws:s3:::acme-audit/*"]}]}`)
	m.CreateBucket(t, "acme-audit", "us-east-1")

	td := startDaemon(t, func(cfg *config.Config) {
		cfg.AWS.S3Endpoint, cfg.AWS.STSEndpoint, cfg.AWS.S3UsePathStyle = m.URL, m.URL, true
		cfg.AWS.PrincipalARN, cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey = principal, agentKey, agentSecret
		cfg.AWS.AssumeRoleRetry = 0
		cfg.Delivery.Tick = 200 * time.Millisecond
	})
	keyFile := filepath.Join(td.cfg.DataDir, "secrets.key")
	if !strings.Contains(td.log.String(), "generated the key that seals destination secrets") || !strings.Contains(td.log.String(), keyFile) {
		t.Errorf("the log does not say the key was generated at %s:\n%s", keyFile, td.log.String())
	}
	assertMode(t, keyFile, 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	manage, err := api.NewClient("http://"+td.addr, td.manageToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	dest, err := manage.CreateDestination(ctx, api.DestinationSpec{
		Bucket: "acme-audit", Region: "us-east-1", Prefix: "audit", Interval: "1m",
		AccessKeyID: customerKey, SecretAccessKey: customerSecret,
	})
	if err != nil {
		t.Fatalf("creating a static-key destination: %v", err)
	}
	if !dest.HasSecret || dest.SecretAccessKey != "" {
		t.Fatalf("the API answered has_secret %v, secret %q", dest.HasSecret, dest.SecretAccessKey)
	}
	assertNotInDataDir(t, td.cfg.DataDir, customerSecret)

	ingest, err := api.NewClient("http://"+td.addr, td.ingestToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.PostEvents(ctx, "acme", []byte(`{"timestamp":1767225600000,"eventName":"login","messageId":"m1"}`+"\n")); err != nil {
		t.Fatal(err)
	}
	for {
		if keys := m.ListKeys(t, "acme-audit", "audit/login/"); len(keys) > 0 {
			break
		}
		got, err := manage.GetDestination(ctx, dest.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("no object delivered within %s; destination status %+v", hangGuard, got.Status)
		}
		time.Sleep(100 * time.Millisecond) // polling the bucket
	}
	assertNotInDataDir(t, td.cfg.DataDir, customerSecret)
}

// assertNotInDataDir reads every file of dir, the database and its -wal
// and -shm included, and fails if one holds s.
func assertNotInDataDir(t *testing.T, dir, s string) {
	t.Helper()
	files := listFiles(t, dir)
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seen[filepath.Base(f)] = len(data) > 0
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("%s holds the destination's secret in the clear", f)
		}
	}
	// The check means something only if the destination was written there.
	if !seen["auditexport.db"] || !seen["auditexport.db-wal"] {
		t.Fatalf("the data dir lacks a non-empty database or WAL: %v", seen)
	}
}
