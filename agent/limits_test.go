package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/testenv"
)

func TestIngestLimits(t *testing.T) {
	w := &world{testenv.NewAgentWithOptions(t, testenv.StartMoto(t), testenv.AgentOptions{
		Tick: "1h",
		Ingest: `
  max_request_bytes      = 65536
  max_event_bytes        = 4096
  tenant_rate_per_second = 1
  tenant_rate_burst      = 150`,
	})}
	w.tenant(t, "acme")
	ingest := w.ingestClient(t)
	batch := func(prefix string, n int) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"timestamp":%d,"eventName":"x","messageId":"%s-%d"}`+"\n", time.Now().UnixMilli(), prefix, i)
		}
		return []byte(b.String())
	}
	expect := func(name string, err error, status int, want string) {
		t.Helper()
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.StatusCode != status || !strings.Contains(ae.Error(), want) {
			t.Errorf("%s: err = %v, want HTTP %d mentioning %q", name, err, status, want)
		}
	}

	_, err := ingest.PostEvents(ctxT(t), "acme", batch("big", 1200))
	expect("request over max_request_bytes", err, http.StatusRequestEntityTooLarge, "65536 bytes")
	_, err = ingest.PostEvents(ctxT(t), "acme", []byte(`{"timestamp":1767225600000,"eventName":"x","messageId":"m","pad":"`+strings.Repeat("a", 5000)+`"}`))
	expect("event over max_event_bytes", err, http.StatusRequestEntityTooLarge, "line 1")

	// At one event a second the bucket refills too slowly for the second
	// batch to fit however long the machine takes between the two.
	if res, err := ingest.PostEvents(ctxT(t), "acme", batch("a", 140)); err != nil || res.Stored != 140 {
		t.Fatalf("first batch within the burst: %+v, %v", res, err)
	}
	_, err = ingest.PostEvents(ctxT(t), "acme", batch("b", 140))
	expect("over the tenant rate", err, http.StatusTooManyRequests, "retry after")
	_, err = ingest.PostEvents(ctxT(t), "acme", batch("c", 200))
	expect("more events than the burst", err, http.StatusRequestEntityTooLarge, "burst")
}

// A destination whose bucket disappears fails, reports why and turns
// "failing", while the tenant's other destination keeps delivering.
func TestFailingDestinationIsIsolated(t *testing.T) {
	w := &world{testenv.NewAgentWithOptions(t, testenv.StartMoto(t), testenv.AgentOptions{
		Tick: "1s", Delivery: `  failing_after = "2s"`,
	})}
	extID, manage := w.tenant(t, "acme")
	goodBucket, goodRole := w.CustomerSetup(t, "good", extID, "audit")
	badBucket, badRole := w.CustomerSetup(t, "bad", extID, "audit")
	good := w.newDestination(t, manage, goodBucket, goodRole)
	bad := w.newDestination(t, manage, badBucket, badRole)
	w.deleteBucket(t, badBucket)

	sent := postConcurrently(t, w.ingestClient(t), "acme", 2, 100)
	w.waitDelivered(t, goodBucket, sent)

	deadline := time.Now().Add(testenv.HangGuard)
	for {
		d, err := manage.GetDestination(ctxT(t), bad.ID)
		if err != nil {
			t.Fatal(err)
		}
		st := d.Status
		if st.State == api.StateFailing {
			if !strings.Contains(st.LastError, "does not exist") || st.LagEvents != 200 || st.FailingSince == nil {
				t.Fatalf("failing status = %+v, want the missing bucket named and 200 events waiting", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the destination never became failing: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d, err := manage.GetDestination(ctxT(t), good.ID); err != nil || d.Status.State != api.StateHealthy || d.Status.LagEvents != 0 {
		t.Fatalf("the healthy destination: %+v, %v", d.Status, err)
	}
	if m := w.get(t, "/metrics"); !strings.Contains(m, fmt.Sprintf(`auditexport_destination_failing{destination=%q,tenant="acme"} 1`, bad.ID)) {
		t.Error("/metrics does not show the failing destination")
	}
}

func (w *world) deleteBucket(t *testing.T, bucket string) {
	t.Helper()
	c := w.Moto.S3Client()
	if _, err := c.DeleteBucket(ctxT(t), &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
}

// The agent serves its API over TLS when the config names a certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.SelfSignedCert(t, dir)
	addr := testenv.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.hcl")
	hcl := fmt.Sprintf("listen = %q\ndata_dir = %q\ntls {\n  cert_file = %q\n  key_file = %q\n}\n", addr, filepath.Join(dir, "data"), cert, key)
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.AgentBinary(t), "serve", "-config", cfg)
	var log testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	deadline := time.Now().Add(testenv.HangGuard)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz over TLS: %s", resp.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS answer: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP was served on the TLS listener")
	}
}
