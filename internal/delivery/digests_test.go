package delivery

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/secrets"
	"github.com/auditexport/auditexport/internal/signing"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

// recordingSink is a Sink that remembers, per key, how each upload ended:
// "put" or "exists" (412). It reads objects back through the sink it wraps.
type recordingSink struct {
	Sink
	mu      sync.Mutex
	results map[string][]string
}

func (s *recordingSink) NewUpload(ctx context.Context, key string, meta s3sink.PutMeta, partSize int) ObjectWriter {
	return &recordingUpload{ObjectWriter: s.Sink.NewUpload(ctx, key, meta, partSize), s: s, key: key}
}

func (s *recordingSink) ReadObject(ctx context.Context, key string) ([]byte, error) {
	return s.Sink.(ObjectReader).ReadObject(ctx, key)
}

func (s *recordingSink) history(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results[key])
}

type recordingUpload struct {
	ObjectWriter
	s   *recordingSink
	key string
}

func (u *recordingUpload) Close() (s3sink.PutResult, error) {
	res, err := u.ObjectWriter.Close()
	outcome := "put"
	switch {
	case err != nil:
		outcome = "error"
	case res.AlreadyExists:
		outcome = "exists"
	}
	u.s.mu.Lock()
	u.s.results[u.key] = append(u.s.results[u.key], outcome)
	u.s.mu.Unlock()
	return res, err
}

// markFails is a store whose MarkDigestWritten fails once for one hour, as
// if the agent died between the PUT of that digest and its mark.
type markFails struct {
	store.Store
	hour   time.Time
	mu     sync.Mutex
	failed bool
}

func (s *markFails) MarkDigestWritten(ctx context.Context, destID string, hour, at time.Time, fence store.Lease) error {
	s.mu.Lock()
	fail := !s.failed && hour.Equal(s.hour)
	s.failed = s.failed || fail
	s.mu.Unlock()
	if fail {
		return errors.New("agent stopped before the mark")
	}
	return s.Store.MarkDigestWritten(ctx, destID, hour, at, fence)
}

// digestRig is a Deliverer with digests on a SQLite store and a fake clock,
// writing into a bucket of a real S3 server (moto).
type digestRig struct {
	*rig
	moto   *testenv.Moto
	bucket string
	keys   *signing.Keys
	sink   *recordingSink
}

func isolateAWS(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(v, "")
	}
}

func newKeys(t testing.TB, s store.Store) *signing.Keys {
	t.Helper()
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	local, err := secrets.NewLocalKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	keys := signing.New(s, secrets.NewKeyring(local))
	if _, made, err := keys.Ensure(context.Background()); err != nil || !made {
		t.Fatalf("Ensure = %v, %v; want a first key made", made, err)
	}
	return keys
}

func newDigestRig(t *testing.T, start string, wrap func(store.Store) store.Store) *digestRig {
	t.Helper()
	isolateAWS(t)
	m := testenv.StartMoto(t)
	r := &digestRig{moto: m, bucket: "digests"}
	m.CreateBucket(t, r.bucket, "us-east-1")
	p, err := s3sink.NewPrincipal(context.Background(), s3sink.Options{
		Region: m.Region, S3Endpoint: m.S3URL, STSEndpoint: m.URL, UsePathStyle: true,
		AccessKeyID: m.AdminKey, SecretAccessKey: m.AdminSecret,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.rig = &rig{t: t, clock: clocktest.NewFake(mustTime(t, start))}
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.store = st
	if r.tenant, err = st.CreateTenant(context.Background(), "acme", "ext"); err != nil {
		t.Fatal(err)
	}
	r.keys = newKeys(t, st)
	delivered := st
	if wrap != nil {
		delivered = wrap(st)
	}
	r.metrics = metrics.New()
	opts := Options{Workers: 1, Clock: r.clock, Refresh: 20 * time.Millisecond, RetryInitial: time.Second, Signer: r.keys, Spread: -1}
	var once sync.Once
	sinks := func(tg s3sink.Target) Sink {
		once.Do(func() { r.sink = &recordingSink{Sink: SinkFor(p.Writer(tg)), results: map[string][]string{}} })
		return r.sink
	}
	r.d = New(delivered, sinks, r.metrics, hclog.NewNullLogger(), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.d.Run(ctx); close(done) }()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	return r
}

// destination creates dst_1 writing into the rig's bucket with static keys.
func (r *digestRig) destination(spec api.DestinationSpec) {
	r.t.Helper()
	spec.Bucket, spec.Region, spec.Prefix = r.bucket, "us-east-1", "audit"
	spec.AccessKeyID, spec.SecretAccessKey = r.moto.AdminKey, r.moto.AdminSecret
	if err := spec.Normalize(); err != nil {
		r.t.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	if _, err := r.store.CreateDestination(context.Background(), store.Destination{ID: "dst_1", TenantID: r.tenant.ID, Spec: data}); err != nil {
		r.t.Fatal(err)
	}
	r.d.Notify()
	r.waitAsleep()
}

// digests reads every digest of dst_1 from the bucket, in key (time) order.
func (r *digestRig) digests() ([]string, []digest.Parsed) {
	r.t.Helper()
	keys := r.moto.ListKeys(r.t, r.bucket, digest.FolderFor("audit", "dst_1"))
	var ps []digest.Parsed
	for _, k := range keys {
		p, err := digest.Decode(r.moto.GetObject(r.t, r.bucket, k))
		if err != nil {
			r.t.Fatalf("digest %s: %v", k, err)
		}
		ps = append(ps, p)
	}
	return keys, ps
}

func (r *digestRig) published() digest.KeySet {
	r.t.Helper()
	ks, err := r.keys.List(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	// Through JSON, as a reader of GET /v1/signing-keys gets them.
	data, _ := json.Marshal(signing.Published(ks))
	set, err := digest.ParseKeySet(data)
	if err != nil {
		r.t.Fatal(err)
	}
	return set
}

// TestDigestChain runs a destination for five hours on a real S3 server:
// deliveries in some hours, none in others, a crash between a digest's PUT
// and its mark, and a key rotation. Every hour gets a digest; together
// they verify as one chain listing every object with its stored SHA-256.
func TestDigestChain(t *testing.T) {
	var crash *markFails
	r := newDigestRig(t, "2026-11-25T10:20:00Z", func(st store.Store) store.Store {
		crash = &markFails{Store: st, hour: mustTime(t, "2026-11-25T11:00:00Z")}
		return crash
	})
	r.destination(api.DestinationSpec{Interval: "1h", Backfill: "0"})
	ids := r.post(3)
	r.advance("2026-11-25T11:00:00Z") // delivers 1-3 (committed in hour 11); digest 10, empty
	ids = append(ids, r.post(2)...)
	r.advance("2026-11-25T12:00:00Z") // delivers 4-5; digest 11 PUT, its mark fails

	saved, err := r.store.LastDigest(context.Background(), "dst_1")
	if err != nil || !saved.Hour.Equal(mustTime(t, "2026-11-25T11:00:00Z")) || !saved.WrittenAt.IsZero() {
		t.Fatalf("after the failed mark, last digest = %s written %s, %v; want 11:00 saved, not written", saved.Hour, saved.WrittenAt, err)
	}
	if st, _ := r.store.GetStatus(context.Background(), "dst_1"); !strings.Contains(st.LastError, "integrity digest") {
		t.Errorf("status after the failed digest: last_error %q, want the digest's error", st.LastError)
	}

	r.clock.Set(mustTime(t, "2026-11-25T12:30:00Z"))
	rotated, err := r.keys.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, r.post(2)...)
	r.advance("2026-11-25T13:00:00Z") // delivers 6-7; digest 11 again (412), digest 12 with the new key
	r.advance("2026-11-25T14:00:00Z") // digest 13
	r.advance("2026-11-25T15:00:00Z") // digest 14: no commit in hour 14

	keys, ps := r.digests()
	var hours []string
	for _, p := range ps {
		hours = append(hours, p.Document.HourStart.Format("15"))
	}
	if want := []string{"10", "11", "12", "13", "14"}; !slices.Equal(hours, want) {
		t.Fatalf("digests of hours %v, want %v (keys %v)", hours, want, keys)
	}
	set := r.published()
	if len(set.Keys) != 2 || set.Keys[1].KeyID != rotated.KeyID || set.Keys[0].NotAfter == nil {
		t.Fatalf("published keys = %+v, want the retired first key and the rotated one", set.Keys)
	}

	wantRanges := [][2]int64{{1, 0}, {1, 3}, {4, 5}, {6, 7}, {8, 7}}
	var listed []string
	for i, p := range ps {
		doc := p.Document
		if err := set.Check(p); err != nil {
			t.Errorf("digest %s does not verify with the published keys: %v", keys[i], err)
		}
		if want := digest.Key("audit", "dst_1", doc.HourStart); keys[i] != want {
			t.Errorf("digest key %s, want %s", keys[i], want)
		}
		if doc.FirstSeq != wantRanges[i][0] || doc.LastSeq != wantRanges[i][1] || doc.NextSeq != doc.LastSeq+1 {
			t.Errorf("digest %s covers %d..%d next %d, want %d..%d", keys[i], doc.FirstSeq, doc.LastSeq, doc.NextSeq, wantRanges[i][0], wantRanges[i][1])
		}
		if i == 0 {
			if doc.Previous != nil || doc.ChainStart == nil || doc.ChainStart.Reason != digest.StartCreated {
				t.Errorf("first digest: previous %+v, chain start %+v; want a chain created", doc.Previous, doc.ChainStart)
			}
		} else {
			prev := ps[i-1]
			if doc.ChainStart != nil || doc.Previous == nil || *doc.Previous != *prev.Link(keys[i-1]) {
				t.Errorf("digest %s links %+v (chain start %+v), want %+v", keys[i], doc.Previous, doc.ChainStart, prev.Link(keys[i-1]))
			}
			if prev.Document.NextSeq != doc.FirstSeq {
				t.Errorf("digest %s starts at %d, the previous one's next is %d", keys[i], doc.FirstSeq, prev.Document.NextSeq)
			}
		}
		for _, o := range doc.Objects {
			body := r.moto.GetObject(t, r.bucket, o.Key)
			sum := sha256.Sum256(body)
			if hex.EncodeToString(sum[:]) != o.SHA256 || int64(len(body)) != o.Size {
				t.Errorf("digest lists %s with sha256 %s size %d; the bucket holds sha256 %x size %d", o.Key, o.SHA256, o.Size, sum, len(body))
			}
			if o.CommittedAt.Before(doc.HourStart) || !o.CommittedAt.Before(doc.HourEnd) {
				t.Errorf("%s committed at %s, outside digest hour %s", o.Key, o.CommittedAt, doc.HourStart)
			}
			listed = append(listed, o.Key)
		}
	}
	// Every data object is listed once.
	var data []string
	for _, k := range r.moto.ListKeys(t, r.bucket, "audit/") {
		if !strings.HasPrefix(k, "audit/_auditexport/") {
			data = append(data, k)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, data) || len(data) != 3 {
		t.Errorf("digests list %v, the bucket holds %v", listed, data)
	}
	if got := r.sink.messageCount(t, data); got != len(ids) {
		t.Errorf("bucket holds %d events, want %d", got, len(ids))
	}

	// The crashed digest was PUT again with the bytes saved before the
	// crash (412), never signed again; it and the next ones use the right key.
	if h := r.sink.history(keys[1]); !slices.Equal(h, []string{"put", "exists"}) {
		t.Errorf("uploads of %s: %v, want put then exists", keys[1], h)
	}
	if ps[1].SHA256 != saved.SHA256 || ps[1].Signature.Signature != saved.Signature {
		t.Errorf("digest 11 in the bucket differs from the one saved before the crash")
	}
	if ps[1].Signature.KeyID == rotated.KeyID || ps[2].Signature.KeyID != rotated.KeyID {
		t.Errorf("digest 11 signed by %s, 12 by %s; want the first key, then the rotated %s",
			ps[1].Signature.KeyID, ps[2].Signature.KeyID, rotated.KeyID)
	}
	written := testutil.ToFloat64(r.metrics.DigestsWritten.WithLabelValues("acme", "dst_1"))
	failed := testutil.ToFloat64(r.metrics.DigestsFailed.WithLabelValues("acme", "dst_1"))
	if written != 5 || failed != 1 {
		t.Errorf("metrics: %v digests written, %v failures; want 5 and 1", written, failed)
	}
}

// messageCount counts the NDJSON lines of the data objects.
func (s *recordingSink) messageCount(t *testing.T, keys []string) int {
	t.Helper()
	n := 0
	for _, k := range keys {
		body, err := s.ReadObject(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		plain := gunzip(t, body)
		n += strings.Count(string(plain), "\n")
	}
	return n
}

// TestDigestsCatchUpAfterPause: a destination paused for hours gets the
// paused hours' (empty) digests when resumed, so its chain has no hole.
func TestDigestsCatchUpAfterPause(t *testing.T) {
	signer := &deferredSigner{}
	r := newRigWith(t, "2026-11-25T10:20:00Z", func(o *Options) { o.Signer = signer })
	signer.Signer = newKeys(t, r.store) // before any destination loop reads it
	dest := r.destination(api.DestinationSpec{Interval: "1h"})
	r.advance("2026-11-25T11:00:00Z")
	r.setEnabled(dest.ID, false)
	deadline := time.Now().Add(time.Minute) // a hang guard, not a budget
	for r.loops() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the paused destination's loop never stopped")
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.clock.Set(mustTime(t, "2026-11-25T15:10:00Z"))
	r.setEnabled(dest.ID, true)
	r.waitAsleep()
	var hours []string
	for _, k := range r.sink.keys() {
		if _, h, ok := digest.ParseKey("audit", k); ok {
			hours = append(hours, h.Format("15"))
		}
	}
	if want := []string{"10", "11", "12", "13", "14"}; !slices.Equal(hours, want) {
		t.Errorf("digests of hours %v after the pause, want %v", hours, want)
	}
}

// deferredSigner is a Signer set once the rig's store exists.
type deferredSigner struct{ Signer }

func (r *rig) loops() int {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	return len(r.d.loops)
}

func gunzip(t *testing.T, body []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// expiringStore hands the destination's lease to another agent just
// before the call it intercepts, as when an agent pauses past its lease.
type expiringStore struct {
	store.Store
	clock  *clocktest.Fake
	onMark bool
}

func (s *expiringStore) takeOver(ctx context.Context) error {
	if _, err := s.RenewLeases(ctx, "agent-a", time.Millisecond); err != nil {
		return err
	}
	s.clock.Advance(time.Second)
	ls, err := s.ClaimLeases(ctx, "agent-b", 1, time.Hour)
	if err != nil || len(ls) != 1 {
		return fmt.Errorf("agent-b claimed %v: %w", ls, err)
	}
	return nil
}

func (s *expiringStore) SaveDigest(ctx context.Context, d store.SavedDigest) error {
	if !s.onMark {
		if err := s.takeOver(ctx); err != nil {
			return err
		}
	}
	return s.Store.SaveDigest(ctx, d)
}

func (s *expiringStore) MarkDigestWritten(ctx context.Context, destID string, hour, at time.Time, fence store.Lease) error {
	if s.onMark {
		if err := s.takeOver(ctx); err != nil {
			return err
		}
	}
	return s.Store.MarkDigestWritten(ctx, destID, hour, at, fence)
}

// TestDigestWriterFenced: a writer whose lease was taken over can neither
// save a digest nor mark one written.
func TestDigestWriterFenced(t *testing.T) {
	for _, onMark := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost before the mark %v", onMark), func(t *testing.T) {
			ctx := context.Background()
			clk := clocktest.NewFake(mustTime(t, "2026-11-25T10:20:00Z"))
			st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tenant, _ := st.CreateTenant(ctx, "acme", "ext")
			dest, err := st.CreateDestination(ctx, store.Destination{ID: "dst_1", TenantID: tenant.ID, Spec: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			ls, err := st.ClaimLeases(ctx, "agent-a", 1, time.Hour)
			if err != nil || len(ls) != 1 {
				t.Fatalf("ClaimLeases = %v, %v", ls, err)
			}
			sink := &memSink{objects: map[string][]byte{}}
			wrapped := &expiringStore{Store: st, clock: clk, onMark: onMark}
			d := New(wrapped, nil, nil, hclog.NewNullLogger(), Options{Clock: clk, Signer: newKeys(t, st)})
			clk.Set(mustTime(t, "2026-11-25T11:00:00Z"))
			tg := &target{dest: dest, spec: api.DestinationSpec{Bucket: "b", Prefix: "audit"}, tenant: tenant, sink: sink, fence: ls[0]}
			if _, err := d.digestPass(ctx, tg); !errors.Is(err, store.ErrLeaseLost) {
				t.Fatalf("digestPass with a lost lease: err = %v, want ErrLeaseLost", err)
			}
			last, err := st.LastDigest(ctx, "dst_1")
			switch {
			case !onMark && !errors.Is(err, store.ErrNotFound):
				t.Errorf("a writer without the lease saved a digest: %+v, %v", last, err)
			case !onMark && len(sink.keys()) != 0:
				t.Errorf("a writer whose save failed PUT %v", sink.keys())
			case onMark && (err != nil || !last.WrittenAt.IsZero()):
				t.Errorf("a writer without the lease marked its digest written: %+v, %v", last, err)
			}
		})
	}
}
