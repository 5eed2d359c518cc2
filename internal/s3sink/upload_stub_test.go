package s3sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// s3Stub answers PutObject and the multipart calls just enough for the SDK,
// recording each request. It proves how an upload is sent, not that S3
// accepts it: TestUpload does that against moto.
type s3Stub struct {
	mu   sync.Mutex
	reqs []stubRequest
}

type stubRequest struct {
	op          string
	ifNoneMatch string
	checksum    bool
	size        int
}

func (s *s3Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	q := r.URL.Query()
	op := "PutObject"
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		op = "CreateMultipartUpload"
		fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		op = "CompleteMultipartUpload"
		fmt.Fprint(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		op = "UploadPart"
		w.Header().Set("ETag", `"e"`)
	case r.Method == http.MethodPut:
		w.Header().Set("ETag", `"e"`)
	default:
		op = r.Method
		w.WriteHeader(http.StatusNotImplemented)
	}
	hasSum := r.Header.Get("X-Amz-Checksum-Crc32c") != "" ||
		strings.Contains(r.Header.Get("X-Amz-Trailer"), "crc32c")
	s.mu.Lock()
	s.reqs = append(s.reqs, stubRequest{op: op, ifNoneMatch: r.Header.Get("If-None-Match"), checksum: hasSum, size: int(n)})
	s.mu.Unlock()
}

func (s *s3Stub) take() []stubRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

func newStubWriter(tb testing.TB) (*Writer, *s3Stub) {
	tb.Helper()
	stub := &s3Stub{}
	return writerFor(tb, stub, nil), stub
}

// writerFor is a Writer with static keys for a server running h. before,
// when set, runs before the server is closed (cleanups run last first).
func writerFor(tb testing.TB, h http.Handler, before func()) *Writer {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	if before != nil {
		tb.Cleanup(before)
	}
	for _, v := range []string{"AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"} {
		tb.Setenv(v, "")
	}
	p, err := NewPrincipal(context.Background(), Options{
		Region: "us-east-1", S3Endpoint: srv.URL, STSEndpoint: srv.URL, UsePathStyle: true,
		AccessKeyID: "AKIDSTUB", SecretAccessKey: "stub-secret", PrincipalARN: "arn:aws:iam::000000000000:user/stub",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p.Writer(Target{Bucket: "audit", Region: "us-east-1", AccessKeyID: "AKIDSTUB", SecretAccessKey: "stub-secret"})
}

// TestUploadRequests checks which requests an upload makes: an object that
// fits one part is a single conditional PutObject, a larger one a multipart
// upload of full parts, every body with a CRC32C checksum.
func TestUploadRequests(t *testing.T) {
	w, stub := newStubWriter(t)
	tests := []struct {
		name string
		size int
		want []stubRequest
	}{
		{"empty", 0, []stubRequest{{op: "PutObject", ifNoneMatch: "*", checksum: true}}},
		{"small", 2000, []stubRequest{{op: "PutObject", ifNoneMatch: "*", checksum: true, size: 2000}}},
		{"just under a part", MinPartSize - 1, []stubRequest{{op: "PutObject", ifNoneMatch: "*", checksum: true, size: MinPartSize - 1}}},
		// A full buffer is sent as a part before the caller says whether
		// more follows.
		{"one full part", MinPartSize, []stubRequest{
			{op: "CreateMultipartUpload"},
			{op: "UploadPart", checksum: true, size: MinPartSize},
			{op: "CompleteMultipartUpload", ifNoneMatch: "*"},
		}},
		{"two parts", MinPartSize + 10, []stubRequest{
			{op: "CreateMultipartUpload"},
			{op: "UploadPart", checksum: true, size: MinPartSize},
			{op: "UploadPart", checksum: true, size: 10},
			{op: "CompleteMultipartUpload", ifNoneMatch: "*"},
		}},
	}
	data := bytes.Repeat([]byte("0123456789abcdef\n"), (MinPartSize+100)/17+1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice, so that the second upload runs on a pooled buffer.
			for range 2 {
				u := w.NewUpload(context.Background(), "k", PutMeta{}, MinPartSize)
				for chunk := range chunks(data[:tt.size], 4099) {
					if _, err := u.Write(chunk); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := u.Close(); err != nil {
					t.Fatal(err)
				}
				got := stub.take()
				if len(got) != len(tt.want) {
					t.Fatalf("requests %+v, want %+v", got, tt.want)
				}
				for i := range got {
					// Only object bytes are compared; the XML bodies of
					// the multipart calls are the SDK's business.
					g, wnt := got[i], tt.want[i]
					if g.op != "PutObject" && g.op != "UploadPart" {
						g.size = 0
					}
					if g != wnt {
						t.Errorf("request %d: %+v, want %+v", i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

// BenchmarkSmallUpload measures one small object (about what a quiet
// destination delivers per window) through a stub S3: the allocations per
// object are the figure that matters.
func BenchmarkSmallUpload(b *testing.B) {
	w, _ := newStubWriter(b)
	body := bytes.Repeat([]byte(`{"messageId":"m","eventName":"user.login","timestamp":1}`+"\n"), 2048/57)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		u := w.NewUpload(ctx, "small.ndjson.gz", PutMeta{ContentType: "application/x-ndjson"}, DefaultPartSize)
		if _, err := u.Write(body); err != nil {
			b.Fatal(err)
		}
		if _, err := u.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSmallUploadAllocatesLittle guards the point of the growing buffer: a
// small object must not cost a part-sized allocation.
func TestSmallUploadAllocatesLittle(t *testing.T) {
	w, _ := newStubWriter(t)
	body := bytes.Repeat([]byte("x"), 2000)
	upload := func() {
		u := w.NewUpload(context.Background(), "small", PutMeta{}, DefaultPartSize)
		if _, err := u.Write(body); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Close(); err != nil {
			t.Fatal(err)
		}
	}
	upload() // warm up the SDK's caches
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 10
	for range n {
		upload()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1<<20 {
		t.Errorf("a 2 KB upload allocated %d bytes, want well under a part (%d)", per, DefaultPartSize)
	}
}

// heldParts is an s3Stub that holds each UploadPart until released.
type heldParts struct {
	*s3Stub
	got     chan struct{} // an UploadPart arrived
	release chan struct{}
	once    sync.Once
	fail    bool // answer the held part with a 403
}

// let releases the held parts.
func (h *heldParts) let() { h.once.Do(func() { close(h.release) }) }

func (h *heldParts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
		h.got <- struct{}{}
		<-h.release
		if h.fail {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<Error><Code>AccessDenied</Code><Message>denied</Message></Error>`)
			return
		}
	}
	h.s3Stub.ServeHTTP(w, r)
}

func newHeldWriter(t *testing.T, fail bool) (*Writer, *heldParts) {
	t.Helper()
	h := &heldParts{s3Stub: &s3Stub{}, got: make(chan struct{}, 10), release: make(chan struct{}), fail: fail}
	// A failed test must not leave a request held when the server closes.
	return writerFor(t, h, h.let), h
}

// TestPartSentWhileNextIsFilled: a full part goes out in the background,
// so the caller goes on writing the next one while S3 holds the first.
func TestPartSentWhileNextIsFilled(t *testing.T) {
	w, h := newHeldWriter(t, false)
	u := w.NewUpload(context.Background(), "k", PutMeta{}, MinPartSize)
	data := bytes.Repeat([]byte("x"), MinPartSize+100)
	wrote := make(chan error, 1)
	go func() {
		_, err := u.Write(data)
		wrote <- err
	}()
	<-h.got
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Write waited for the part's upload")
	}
	h.let()
	if _, err := u.Close(); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, r := range h.take() {
		if r.op != "UploadPart" {
			r.size = 0 // only object bytes are compared
		}
		ops = append(ops, fmt.Sprintf("%s:%d", r.op, r.size))
	}
	want := fmt.Sprintf("[CreateMultipartUpload:0 UploadPart:%d UploadPart:100 CompleteMultipartUpload:0]", MinPartSize)
	if got := fmt.Sprint(ops); got != want {
		t.Errorf("requests %s, want %s", got, want)
	}
}

// TestFailedPartFailsTheUpload: a part that fails in the background fails
// the upload at its next step, which aborts it, and nothing is completed.
func TestFailedPartFailsTheUpload(t *testing.T) {
	w, h := newHeldWriter(t, true)
	u := w.NewUpload(context.Background(), "k", PutMeta{}, MinPartSize)
	if _, err := u.Write(bytes.Repeat([]byte("x"), MinPartSize+100)); err != nil {
		t.Fatal(err)
	}
	<-h.got
	h.let()
	_, err := u.Close()
	if got := asError(t, err); got.Call != "UploadPart" || got.Code != "AccessDenied" {
		t.Fatalf("Close = %v, want UploadPart's AccessDenied", err)
	}
	aborted := false
	for _, r := range h.take() {
		if r.op == "CompleteMultipartUpload" {
			t.Error("the upload was completed after its part failed")
		}
		aborted = aborted || r.op == http.MethodDelete
	}
	if !aborted {
		t.Error("the failed upload was not aborted")
	}
}
