package testenv

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeS3 answers every request with the status its path asks for
// (".../412" → 412, else 200) and records what reached it.
type fakeS3 struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD host path?query body"
}

func startFakeS3(t *testing.T) *fakeS3 {
	f := &fakeS3{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.Host+" "+r.URL.RequestURI()+" "+string(body))
		f.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/412"):
			w.WriteHeader(http.StatusPreconditionFailed)
		case strings.HasSuffix(r.URL.Path, "/error-in-200"):
			_, _ = io.WriteString(w, "<Error><Code>InternalError</Code></Error>")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeS3) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// send makes one request through the proxy on a fresh connection.
func send(t *testing.T, p *FaultProxy, method, path string, conditional bool) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL()+path, strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "s3.example.test"
	if conditional {
		req.Header.Set("If-None-Match", "*")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), nil
}

func TestFaultProxyInjectsEachFault(t *testing.T) {
	tests := []struct {
		kind      string
		opts      FaultOptions
		status    int    // 0: the request fails
		inBody    string // in the answer's body
		forwarded bool
	}{
		{FaultInternalError, FaultOptions{InternalError: 1}, 500, "<Code>InternalError</Code>", false},
		{FaultSlowDown, FaultOptions{SlowDown: 1}, 503, "<Code>SlowDown</Code>", false},
		{FaultReset, FaultOptions{Reset: 1}, 0, "", false},
		{FaultResponseLost, FaultOptions{ResponseLost: 1}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			up := startFakeS3(t)
			p := StartFaultProxy(t, up.URL, tt.opts)
			resp, body, err := send(t, p, http.MethodPut, "/bucket/dir/key.gz?x-id=PutObject", true)
			switch {
			case tt.status == 0 && err == nil:
				t.Fatalf("got HTTP %d, want the request to fail", resp.StatusCode)
			case tt.status != 0 && err != nil:
				t.Fatalf("request failed: %v", err)
			case tt.status != 0 && (resp.StatusCode != tt.status || !strings.Contains(body, tt.inBody)):
				t.Fatalf("got HTTP %d %q, want %d with %q", resp.StatusCode, body, tt.status, tt.inBody)
			}
			if tt.kind == FaultReset && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("err = %v, want a connection reset", err)
			}
			if got := len(up.received()); got != map[bool]int{false: 0, true: 1}[tt.forwarded] {
				t.Errorf("the server received %d requests, forwarded = %v", got, tt.forwarded)
			}
			if got := p.Injected(); len(got) != 1 || got[tt.kind] != 1 {
				t.Errorf("Injected() = %v, want one %q", got, tt.kind)
			}
			wantWrites := map[bool]int{false: 0, true: 1}[tt.forwarded]
			if got := p.SuccessfulWrites()["bucket/dir/key.gz"]; got != wantWrites {
				t.Errorf("SuccessfulWrites() counts %d writes of the key, want %d", got, wantWrites)
			}
		})
	}
}

func TestFaultProxyRecordsWrites(t *testing.T) {
	up := startFakeS3(t)
	p := StartFaultProxy(t, up.URL, FaultOptions{InternalError: 1})
	p.SetEnabled(false)

	requests := []struct {
		method, path string
		conditional  bool
		status       int
	}{
		{http.MethodPut, "/b/k1?x-id=PutObject", true, 200},
		{http.MethodPut, "/b/k1/412?x-id=PutObject", true, 412},
		{http.MethodPut, "/b/k2?partNumber=1&uploadId=u&x-id=UploadPart", false, 200},
		{http.MethodPost, "/b/k2?uploadId=u&x-id=CompleteMultipartUpload", true, 200},
		// A retried completion of the same upload is acknowledged again.
		{http.MethodPost, "/b/k2?uploadId=u&x-id=CompleteMultipartUpload", true, 200},
		{http.MethodPost, "/b/k3/error-in-200?uploadId=u", true, 200},
		{http.MethodPut, "/b/k4?x-id=PutObject", false, 200},
		{http.MethodPut, "/b/k5?tagging", false, 200},
		{http.MethodHead, "/b", false, 200},
		{http.MethodGet, "/b?list-type=2", false, 200},
		{http.MethodDelete, "/b/k1?x-id=DeleteObject", false, 200},
	}
	for _, r := range requests {
		resp, _, err := send(t, p, r.method, r.path, r.conditional)
		if err != nil || resp.StatusCode != r.status {
			t.Fatalf("%s %s: %v %v, want HTTP %d", r.method, r.path, resp, err, r.status)
		}
	}
	got := up.received()
	if len(got) != len(requests) {
		t.Fatalf("the server received %d requests, want all %d:\n%s", len(got), len(requests), strings.Join(got, "\n"))
	}
	for i, r := range got {
		if !strings.Contains(r, " s3.example.test ") {
			t.Errorf("request %d reached the server with another Host: %s", i, r)
		}
		if requests[i].method == http.MethodPut && !strings.HasSuffix(r, " payload") {
			t.Errorf("request %d lost its body: %s", i, r)
		}
	}
	want := map[string]int{"b/k1": 1, "b/k2": 1, "b/k4": 1}
	if s := p.SuccessfulWrites(); !equalCounts(s, want) {
		t.Errorf("SuccessfulWrites() = %v, want %v", s, want)
	}
	if s := p.PreconditionFailed(); !equalCounts(s, map[string]int{"b/k1/412": 1}) {
		t.Errorf("PreconditionFailed() = %v", s)
	}
	if u := p.UnconditionalWrites(); len(u) != 1 || u[0] != "b/k4" {
		t.Errorf("UnconditionalWrites() = %v, want [b/k4]", u)
	}
	if n := p.Writes(); n != 7 {
		t.Errorf("Writes() = %d, want the 7 object writes", n)
	}
	if n := p.Recompleted(); n != 1 {
		t.Errorf("Recompleted() = %d, want 1", n)
	}
	if h := p.History("b/k2"); len(h) != 3 || !strings.HasSuffix(h[2], "CompleteMultipartUpload upload u: 200") {
		t.Errorf("History(b/k2) = %q", h)
	}
	wantOps := map[string]int{OpPutObject: 3, OpUploadPart: 1, OpCompleteMultipartUpload: 3}
	if ops := p.WritesByOp(); !equalCounts(ops, wantOps) {
		t.Errorf("WritesByOp() = %v, want %v", ops, wantOps)
	}
	if i := p.Injected(); len(i) != 0 {
		t.Errorf("Injected() = %v while disabled", i)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
