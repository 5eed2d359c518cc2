package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// keyRe is the default key layout,
// {prefix}/{event_type}/{yyyy}-{mm}-{dd}/{tenant}/{window_end}_{seq_from}-{seq_to}_{part}.ndjson.gz,
// or the fault test's without the event type,
// {prefix}/{tenant}/{yyyy}-{mm}-{dd}/{window_end}_{seq_from}-{seq_to}_{part}.ndjson.gz.
var keyRe = regexp.MustCompile(`^audit/(?:(user\.login|user\.logout|role\.granted)/\d{4}-\d{2}-\d{2}/acme|acme/\d{4}-\d{2}-\d{2})/\d{8}T\d{6}Z_(\d+)-(\d+)_(\d{4})\.ndjson\.gz$`)

// auditEvent returns a ~400-byte event shaped like a SaaS audit event.
func auditEvent(id string, ts time.Time, name string) string {
	return fmt.Sprintf(`{"timestamp":"%s","eventName":"%s","messageId":"%s","actor":{"id":"usr_8f2a61","email":"alice@example.com","type":"user"},"target":{"id":"org_42","type":"organization"},"context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","requestId":"req_%s"},"outcome":"success","version":2}`,
		ts.UTC().Format(time.RFC3339Nano), name, id, id)
}

var eventNames = []string{"user.login", "user.logout", "role.granted"}

// postConcurrently posts requests×perRequest events in concurrent requests and
// returns every messageId sent.
func postConcurrently(t *testing.T, c *api.Client, tenant string, requests, perRequest int) map[string]bool {
	t.Helper()
	sent := map[string]bool{}
	bodies := make([][]byte, requests)
	now := time.Now()
	for r := range requests {
		var b bytes.Buffer
		for i := range perRequest {
			id := fmt.Sprintf("msg-%d-%d", r, i)
			sent[id] = true
			// A few events from yesterday exercise the date partitioning.
			ts := now.Add(-time.Duration(i%50) * time.Hour / 2)
			b.WriteString(auditEvent(id, ts, eventNames[i%len(eventNames)]) + "\n")
		}
		bodies[r] = b.Bytes()
	}
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for _, body := range bodies {
		wg.Go(func() {
			res, err := c.PostEvents(ctxT(t), tenant, body)
			if err == nil && res.Stored != perRequest {
				err = fmt.Errorf("stored %d of %d", res.Stored, perRequest)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("posting events: %v", err)
		}
	}
	return sent
}

// delivered reads every object under prefix and counts each messageId.
func (w *world) delivered(t *testing.T, bucket, prefix string) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	var keys []string
	for _, key := range w.Moto.ListKeys(t, bucket, prefix) {
		// A digest appears when a test runs across an hour's end.
		if !strings.Contains(key, digest.Folder) {
			keys = append(keys, key)
		}
	}
	for _, key := range keys {
		zr, err := gzip.NewReader(bytes.NewReader(w.Moto.GetObject(t, bucket, key)))
		if err != nil {
			t.Fatalf("%s is not gzip: %v", key, err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for line := range strings.Lines(string(data)) {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("%s: line %q is not JSON: %v", key, line, err)
			}
			counts[ev.MessageID]++
		}
	}
	return counts, keys
}

// waitDelivered polls the bucket until every sent messageId is there or the
// hang guard passes, then checks each is there exactly once.
func (w *world) waitDelivered(t *testing.T, bucket string, sent map[string]bool) []string {
	t.Helper()
	deadline := time.Now().Add(testenv.HangGuard)
	for {
		counts, keys := w.delivered(t, bucket, "audit/")
		if len(counts) >= len(sent) || time.Now().After(deadline) {
			for id := range sent {
				if counts[id] != 1 {
					t.Fatalf("messageId %s is in the bucket %d times, want exactly once (%d of %d ids delivered)", id, counts[id], len(counts), len(sent))
				}
			}
			if len(counts) != len(sent) {
				t.Fatalf("the bucket has %d distinct messageIds, %d were sent", len(counts), len(sent))
			}
			return keys
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (w *world) newDestination(t *testing.T, c *api.Client, bucket, roleARN string) api.Destination {
	t.Helper()
	d, err := c.CreateDestination(ctxT(t), api.DestinationSpec{
		Bucket: bucket, Region: "us-east-1", Prefix: "audit", RoleARN: roleARN, Interval: "1m",
	})
	if err != nil {
		t.Fatalf("creating destination: %v", err)
	}
	return d
}

func TestEndToEndDelivery(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testEndToEndDelivery(t, backend) })
	}
}

func testEndToEndDelivery(t *testing.T, backend string) {
	const tick = 3 * time.Second
	w := newWorldOn(t, backend, tick.String())
	extID, manage := w.tenant(t, "acme")
	bucket, role := w.CustomerSetup(t, "acme", extID, "audit")

	id, err := manage.Identity(ctxT(t))
	if err != nil || id.ExternalID != extID || id.PrincipalARN != w.PrincipalARN {
		t.Fatalf("identity = %+v, %v; want external id %s and principal %s", id, err, extID, w.PrincipalARN)
	}
	dest := w.newDestination(t, manage, bucket, role)
	if dest.ExternalID != extID || dest.Status.State == "" {
		t.Fatalf("destination = %+v", dest)
	}

	start := time.Now()
	sent := postConcurrently(t, w.ingestClient(t), "acme", 20, 500)
	t.Logf("posted 10000 events in 20 concurrent requests in %s", time.Since(start))

	keys := w.waitDelivered(t, bucket, sent)
	t.Logf("all 10000 events delivered %s after posting, in %d objects", time.Since(start), len(keys))
	checkKeys(t, keys)

	got, err := manage.GetDestination(ctxT(t), dest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.EventsDelivered != 10000 || got.Status.LagEvents != 0 || got.Status.LastDeliveryAt == nil || got.Status.State != api.StateHealthy {
		t.Fatalf("status after delivery = %+v", got.Status)
	}
	metrics := w.get(t, "/metrics")
	for _, want := range []string{
		`auditexport_events_ingested_total{tenant="acme"} 10000`,
		`auditexport_ingest_commit_events_sum 10000`,
		fmt.Sprintf(`auditexport_events_delivered_total{destination=%q,tenant="acme"} 10000`, dest.ID),
		fmt.Sprintf(`auditexport_objects_delivered_total{destination=%q,tenant="acme"} %d`, dest.ID, len(keys)),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// checkKeys asserts the key layout and that the groups' sequence ranges
// never share a bound (the parts of one group share its range).
func checkKeys(t *testing.T, keys []string) {
	t.Helper()
	type span struct{ from, to int64 }
	seen := map[span]bool{}
	var spans []span
	for _, k := range keys {
		m := keyRe.FindStringSubmatch(k)
		if m == nil {
			t.Fatalf("key %q does not follow the layout", k)
		}
		from, _ := strconv.ParseInt(m[2], 10, 64)
		to, _ := strconv.ParseInt(m[3], 10, 64)
		if from < 1 || to < from {
			t.Fatalf("key %q has a bad sequence range", k)
		}
		if s := (span{from, to}); !seen[s] {
			seen[s] = true
			spans = append(spans, s)
		}
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.from == b.from || a.to == b.to {
				t.Fatalf("two groups share a sequence bound: %v %v", a, b)
			}
		}
	}
}

func TestDestinationCreateFailures(t *testing.T) {
	w := newWorld(t, "1h")
	extID, manage := w.tenant(t, "acme")
	bucket, _ := w.CustomerSetup(t, "acme", extID, "audit")
	w.Moto.CreateBucket(t, "acme-audit-eu", "eu-west-1")

	tests := []struct {
		name       string
		trustedID  string // the external id the role trusts
		bucket     string
		region     string
		prefix     string
		want       []string // substrings of the error message
		wantStatus int
	}{
		{"wrong external id", "aex-not-the-tenants-external-id", bucket, "us-east-1", "audit",
			[]string{"AssumeRole", "AccessDenied", "sts:ExternalId", extID}, 422},
		{"bucket does not exist", extID, "no-such-bucket-here", "us-east-1", "audit",
			[]string{"no-such-bucket-here", "does not exist"}, 422},
		{"wrong region", extID, "acme-audit-eu", "us-east-1", "audit",
			[]string{"eu-west-1", "us-east-1"}, 422},
		{"invalid bucket name", extID, "Bad_Bucket", "us-east-1", "audit",
			[]string{"bucket", "not a valid S3 bucket name"}, 400},
		{"prefix escapes", extID, bucket, "us-east-1", "audit/../other",
			[]string{"prefix", ".."}, 400},
		{"bad region name", extID, bucket, "mars-1", "audit",
			[]string{"region", "mars-1"}, 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The role is what the customer made from the data sources for
			// this bucket; only the case's mistake differs.
			role := w.Moto.CreateRole(t, fmt.Sprintf("case-%d", i),
				policy.TrustPolicy(w.PrincipalARN, tt.trustedID).JSON(),
				policy.RolePolicy(strings.ToLower(tt.bucket), "audit", "").JSON())
			_, err := manage.CreateDestination(ctxT(t), api.DestinationSpec{
				Bucket: tt.bucket, Region: tt.region, Prefix: tt.prefix, RoleARN: role,
			})
			var ae *api.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.wantStatus {
				t.Fatalf("err = %v, want HTTP %d", err, tt.wantStatus)
			}
			for _, s := range tt.want {
				if !strings.Contains(ae.Error(), s) {
					t.Errorf("message %q does not mention %q", ae.Error(), s)
				}
			}
		})
	}
	dests, err := manage.ListDestinations(ctxT(t))
	if err != nil || len(dests) != 0 {
		t.Fatalf("after failed creates: %d destinations, %v; want none saved", len(dests), err)
	}
}

func TestIngestSurvivesSIGKILL(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testIngestSurvivesSIGKILL(t, backend) })
	}
}

func testIngestSurvivesSIGKILL(t *testing.T, backend string) {
	w := newWorldOn(t, backend, "1h") // no delivery before the kill
	p := w.Process()
	extID, manage := w.tenant(t, "acme")
	bucket, role := w.CustomerSetup(t, "acme", extID, "audit")
	w.newDestination(t, manage, bucket, role)

	sent := postConcurrently(t, w.ingestClient(t), "acme", 4, 250)
	p.Kill() // right after the 2xx answers

	w.SetTick(t, "1s")
	w.Start(t)
	w.waitDelivered(t, bucket, sent)
}

func TestTenantIsolation(t *testing.T) {
	w := newWorld(t, "1h")
	extA, clientA := w.tenant(t, "tenant-a")
	extB, clientB := w.tenant(t, "tenant-b")
	if extA == extB {
		t.Fatal("two tenants share an external id")
	}
	bucketB, roleB := w.CustomerSetup(t, "tenant-b", extB, "audit")
	destB := w.newDestination(t, clientB, bucketB, roleB)

	expect := func(name string, err error, status int) {
		t.Helper()
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.StatusCode != status {
			t.Errorf("%s: err = %v, want HTTP %d", name, err, status)
		}
	}
	_, err := clientA.GetDestination(ctxT(t), destB.ID)
	expect("read B's destination", err, http.StatusNotFound)
	_, err = clientA.UpdateDestination(ctxT(t), destB.ID, api.DestinationSpec{Bucket: bucketB, Region: "us-east-1", RoleARN: roleB})
	expect("update B's destination", err, http.StatusNotFound)
	expect("delete B's destination", clientA.DeleteDestination(ctxT(t), destB.ID), http.StatusNotFound)
	_, err = clientA.PostEvents(ctxT(t), "tenant-b", []byte(auditEvent("x", time.Now(), "user.login")))
	expect("post to B with A's manage token", err, http.StatusForbidden)
	list, err := clientA.ListDestinations(ctxT(t))
	if err != nil || len(list) != 0 {
		t.Errorf("A lists %d destinations (%v), want none of B's", len(list), err)
	}
	_, err = w.Client(t, "aex_manage_forged").Identity(ctxT(t))
	expect("unknown token", err, http.StatusUnauthorized)

	if _, err := clientB.GetDestination(ctxT(t), destB.ID); err != nil {
		t.Fatalf("B's destination is gone after A's attempts: %v", err)
	}
}

func TestIngestRejectsBadInput(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testIngestRejectsBadInput(t, backend) })
	}
}

func testIngestRejectsBadInput(t *testing.T, backend string) {
	w := newWorldOn(t, backend, "1h")
	w.tenant(t, "acme")
	ingest := w.ingestClient(t)
	good := auditEvent("ok-1", time.Now(), "user.login")

	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"malformed line", good + "\n" + auditEvent("ok-2", time.Now(), "user.login") + "\n{\"timestamp\": \n", 400, "line 3"},
		{"missing messageId", `{"timestamp":1767225600000,"eventName":"x"}`, 400, "messageId"},
		{"huge event", `{"timestamp":1767225600000,"eventName":"x","messageId":"big","pad":"` + strings.Repeat("a", 300<<10) + `"}`, 413, "line 1"},
		{"empty body", "", 400, "no events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.PostEvents(ctxT(t), "acme", []byte(tt.body))
			var ae *api.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.status || !strings.Contains(ae.Error(), tt.want) {
				t.Fatalf("err = %v, want HTTP %d mentioning %q", err, tt.status, tt.want)
			}
		})
	}
	_, err := ingest.PostEvents(ctxT(t), "nobody", []byte(good))
	if !api.IsNotFound(err) {
		t.Fatalf("posting to an unknown tenant: %v, want 404", err)
	}

	// Nothing of the rejected requests was stored: the first good event gets
	// sequence 1, and a resend of the same messageId is a duplicate.
	res, err := ingest.PostEvents(ctxT(t), "acme", []byte(good))
	if err != nil || res.Stored != 1 || res.FirstSeq != 1 {
		t.Fatalf("first good post = %+v, %v; want stored 1 at seq 1", res, err)
	}
	res, err = ingest.PostEvents(ctxT(t), "acme", []byte(good+"\n"+good))
	if err != nil || res.Stored != 0 || res.Duplicates != 2 {
		t.Fatalf("resend = %+v, %v; want 2 duplicates", res, err)
	}
}
