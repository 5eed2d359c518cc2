package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault kinds injected by a FaultProxy, as counted by Injected.
const (
	// FaultInternalError answers 500 InternalError without forwarding.
	FaultInternalError = "500 InternalError"
	// FaultSlowDown answers 503 SlowDown without forwarding.
	FaultSlowDown = "503 SlowDown"
	// FaultReset resets the client's connection (TCP RST) without
	// forwarding.
	FaultReset = "connection reset"
	// FaultResponseLost forwards the request, lets the server store the
	// object, then closes the client's connection instead of answering.
	FaultResponseLost = "response lost"
)

// Object-write operations recognised by a FaultProxy.
const (
	OpPutObject               = "PutObject"
	OpUploadPart              = "UploadPart"
	OpCompleteMultipartUpload = "CompleteMultipartUpload"
)

// FaultOptions are the probabilities, per object-write request, of each
// fault. Their sum must not exceed 1; the rest of the requests are forwarded
// untouched.
type FaultOptions struct {
	// Seed seeds the proxy's random choices.
	Seed uint64
	// InternalError, SlowDown, Reset and ResponseLost are the
	// probabilities of FaultInternalError, FaultSlowDown, FaultReset and
	// FaultResponseLost. A kind with a nonzero probability p that was not
	// drawn for 1/p consecutive faultable writes is injected into the next
	// one, so a run of a few dozen writes meets every kind for certain,
	// while the moments stay random.
	InternalError float64
	SlowDown      float64
	Reset         float64
	ResponseLost  float64
	// BucketOwner, when set, is the account that owns every bucket behind
	// the proxy: a request whose x-amz-expected-bucket-owner names another
	// account is answered 403 AccessDenied without forwarding, as S3
	// answers it. Neither moto nor versitygw checks the header.
	BucketOwner string
}

// ProxiedRequest is one request the proxy received, of any kind.
type ProxiedRequest struct {
	// Method and Path are the request's; Query is its raw query.
	Method, Path, Query string
	// ExpectedBucketOwner is its x-amz-expected-bucket-owner header.
	ExpectedBucketOwner string
	// Refused tells that the proxy answered 403 for a wrong owner.
	Refused bool
}

// FaultProxy is an HTTP proxy placed between an S3 client and a path-style
// S3 server. It injects faults into object writes (PutObject, UploadPart,
// CompleteMultipartUpload) and records, per "bucket/key", every write the
// server acknowledged, so a test can prove that no key was written twice.
// Every other request passes through untouched.
//
// The proxy keeps the client's Host header, so SigV4 signatures computed by
// the client still verify at the server. It reads a write's whole body
// before it forwards it, and finishes a forwarded write even if the client
// goes away meanwhile: what reaches the server is always a complete request,
// as with S3, which stores an object only once it has all of it. Writes of
// one key are forwarded one at a time: S3 decides a conditional write
// atomically, while Moto checks If-None-Match and then stores, so two
// concurrent writes of a key (say, one of a killed agent that is still in
// flight and its successor's) could both succeed there.
type FaultProxy struct {
	upstream *url.URL
	opts     FaultOptions
	srv      *http.Server
	url      string
	pass     *httputil.ReverseProxy
	client   *http.Transport

	keyLocks sync.Map // "bucket/key" → *sync.Mutex
	holds    sync.Map // "bucket/prefix" → chan struct{}, closed on release
	holding  atomic.Int64
	enabled  atomic.Bool
	writes   atomic.Int64
	inFlight atomic.Int64

	mu            sync.Mutex
	rng           *rand.Rand
	byOp          map[string]int
	injectedByOp  map[string]int
	successful    map[string]int
	precondition  map[string]int
	injected      map[string]int
	draws         int            // faultable writes seen while enabled
	lastDrawn     map[string]int // per kind, the draw it was last injected at
	unconditional []string
	completed     map[string]bool     // "key\x00uploadId" of completed uploads
	reacked       int                 // retried completions answered 200 again
	history       map[string][]string // per key, what happened to each write
	started       time.Time
	requests      []ProxiedRequest
	bucketOwner   string
}

// StartFaultProxy starts a FaultProxy in front of upstream (e.g. a Moto URL)
// on a free loopback port, with faults enabled. It is stopped when the test
// ends.
func StartFaultProxy(t testing.TB, upstream string, opts FaultOptions) *FaultProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("fault proxy: bad upstream URL %q", upstream)
	}
	if sum := opts.InternalError + opts.SlowDown + opts.Reset + opts.ResponseLost; sum > 1 {
		t.Fatalf("fault proxy: fault probabilities add up to %g, more than 1", sum)
	}
	p := &FaultProxy{
		upstream:     u,
		opts:         opts,
		rng:          rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		byOp:         map[string]int{},
		injectedByOp: map[string]int{},
		completed:    map[string]bool{},
		history:      map[string][]string{},
		started:      time.Now(),
		successful:   map[string]int{},
		precondition: map[string]int{},
		injected:     map[string]int{},
		lastDrawn:    map[string]int{},
		client: &http.Transport{
			MaxIdleConnsPerHost: 32,
			// Bodies are passed on as the server sent them.
			DisableCompression: true,
		},
	}
	p.enabled.Store(true)
	p.bucketOwner = opts.BucketOwner
	p.pass = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// SetURL points Host at the upstream; the signature
			// covers the host the client addressed.
			pr.Out.Host = pr.In.Host
		},
		Transport: p.client,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		p.client.CloseIdleConnections()
	})
	return p
}

// URL is the proxy's endpoint, to be used as the client's S3 endpoint.
func (p *FaultProxy) URL() string { return p.url }

// SetEnabled turns fault injection on or off; recording goes on either way.
func (p *FaultProxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Writes is the number of object-write requests received so far.
func (p *FaultProxy) Writes() int64 { return p.writes.Load() }

// WritesByOp counts the object-write requests received, per operation
// (OpPutObject, OpUploadPart, OpCompleteMultipartUpload).
func (p *FaultProxy) WritesByOp() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.byOp)
}

// InFlight is the number of object-write requests being handled now.
func (p *FaultProxy) InFlight() int64 { return p.inFlight.Load() }

// SuccessfulWrites counts, per "bucket/key", the PutObject requests and the
// multipart uploads the server answered with success — also those whose
// answer the proxy then dropped (FaultResponseLost). A retried
// CompleteMultipartUpload of an upload that was already completed is
// answered 200 again by S3 (and Moto) without writing anything: it is not
// counted again (see Recompleted).
func (p *FaultProxy) SuccessfulWrites() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.successful)
}

// Recompleted is the number of CompleteMultipartUpload requests for an
// upload that was already completed, which the server acknowledged again.
func (p *FaultProxy) Recompleted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reacked
}

// History lists what happened to each write request of key ("bucket/key"),
// in order: time since the proxy started, operation, upload id, fault and
// the server's status.
func (p *FaultProxy) History(key string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.history[key]...)
}

// PreconditionFailed counts, per "bucket/key", the writes the server refused
// with 412 PreconditionFailed because the key already existed.
func (p *FaultProxy) PreconditionFailed() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.precondition)
}

// Injected counts the faults injected, per kind (FaultInternalError, ...).
func (p *FaultProxy) Injected() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.injected)
}

// InjectedByOp counts the faults injected, per operation (OpPutObject, ...).
func (p *FaultProxy) InjectedByOp() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.injectedByOp)
}

// UnconditionalWrites lists the "bucket/key" of every PutObject or
// CompleteMultipartUpload received without If-None-Match: *, which could
// overwrite an existing object.
func (p *FaultProxy) UnconditionalWrites() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unconditional...)
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetBucketOwner changes the account that owns the buckets (see
// FaultOptions.BucketOwner); "" stops checking.
func (p *FaultProxy) SetBucketOwner(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bucketOwner = account
}

// Requests lists every request received so far, in order.
func (p *FaultProxy) Requests() []ProxiedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxiedRequest(nil), p.requests...)
}

// refuseOwner records r and tells whether its expected bucket owner is not
// the buckets' owner, which S3 answers with 403 AccessDenied.
func (p *FaultProxy) refuseOwner(r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	req := ProxiedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		ExpectedBucketOwner: r.Header.Get("X-Amz-Expected-Bucket-Owner")}
	req.Refused = p.bucketOwner != "" && req.ExpectedBucketOwner != "" && req.ExpectedBucketOwner != p.bucketOwner
	p.requests = append(p.requests, req)
	return req.Refused
}

// Hold makes the proxy keep every object write whose "bucket/key" starts
// with prefix, its body read and its connection open, without forwarding
// it, until release is called (or the client gives up): a PUT stuck on a
// slow connection. Released writes go on as usual.
func (p *FaultProxy) Hold(prefix string) (release func()) {
	ch := make(chan struct{})
	p.holds.Store(prefix, ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.holds.Delete(prefix)
			close(ch)
		})
	}
}

// Holding is the number of object writes being held by Hold now.
func (p *FaultProxy) Holding() int64 { return p.holding.Load() }

// hold waits while a Hold covers key.
func (p *FaultProxy) hold(r *http.Request, key string) {
	p.holds.Range(func(prefix, ch any) bool {
		if !strings.HasPrefix(key, prefix.(string)) {
			return true
		}
		p.holding.Add(1)
		defer p.holding.Add(-1)
		select {
		case <-ch.(chan struct{}):
		case <-r.Context().Done():
		}
		return false
	})
}

// ServeHTTP injects faults into object writes and passes the rest through.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.refuseOwner(r) {
		writeS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied", strings.TrimPrefix(r.URL.Path, "/"))
		return
	}
	op, key := objectWrite(r)
	if op == "" {
		p.pass.ServeHTTP(w, r)
		return
	}
	p.writes.Add(1)
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.mu.Lock()
	p.byOp[op]++
	p.mu.Unlock()

	// A client that dies while it sends the body never reaches the server.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	p.hold(r, key)
	if r.Context().Err() != nil {
		return
	}
	if op != OpUploadPart && r.Header.Get("If-None-Match") != "*" {
		p.mu.Lock()
		p.unconditional = append(p.unconditional, key)
		p.mu.Unlock()
	}
	fault := p.chooseFault(op)
	uploadID := r.URL.Query().Get("uploadId")
	switch fault {
	case FaultInternalError, FaultSlowDown, FaultReset:
		p.note(key, op, uploadID, fault, "not forwarded")
	}
	switch fault {
	case FaultInternalError:
		writeS3Error(w, http.StatusInternalServerError, "InternalError",
			"We encountered an internal error. Please try again.", key)
		return
	case FaultSlowDown:
		writeS3Error(w, http.StatusServiceUnavailable, "SlowDown",
			"Please reduce your request rate.", key)
		return
	case FaultReset:
		hijackAndClose(w, true)
		return
	}

	lock, _ := p.keyLocks.LoadOrStore(key, new(sync.Mutex))
	lock.(*sync.Mutex).Lock()
	resp, respBody, err := p.forward(r, body)
	if err == nil {
		p.record(op, key, uploadID, fault, resp.StatusCode, respBody)
	} else {
		p.note(key, op, uploadID, fault, "upstream: "+err.Error())
	}
	lock.(*sync.Mutex).Unlock()
	if err != nil {
		http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	if fault == FaultResponseLost {
		hijackAndClose(w, false)
		return
	}
	for k, vs := range resp.Header {
		if !hopByHop(k) {
			w.Header()[k] = vs
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(respBody)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// chooseFault draws the fault for one write of op, "" for none.
func (p *FaultProxy) chooseFault(op string) string {
	if !p.enabled.Load() {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draws++
	kinds := []struct {
		kind string
		prob float64
	}{
		{FaultInternalError, p.opts.InternalError},
		{FaultSlowDown, p.opts.SlowDown},
		{FaultReset, p.opts.Reset},
		{FaultResponseLost, p.opts.ResponseLost},
	}
	x := p.rng.Float64()
	for _, f := range kinds {
		if f.prob > 0 && float64(p.draws-p.lastDrawn[f.kind]) >= 1/f.prob {
			return p.injectLocked(f.kind, op)
		}
	}
	for _, f := range kinds {
		if x < f.prob {
			return p.injectLocked(f.kind, op)
		}
		x -= f.prob
	}
	return ""
}

func (p *FaultProxy) injectLocked(kind, op string) string {
	p.injected[kind]++
	p.injectedByOp[op]++
	p.lastDrawn[kind] = p.draws
	return kind
}

// forward sends the write to the server and reads the whole answer. The
// request is not tied to the client's connection: once the body is here,
// the write completes whatever happens to the client.
func (p *FaultProxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme = p.upstream.Scheme
	out.URL.Host = p.upstream.Host
	out.Host = r.Host // signed by the client
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	for k := range out.Header {
		if hopByHop(k) {
			out.Header.Del(k)
		}
	}
	resp, err := p.client.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, respBody, nil
}

// record counts the server's answer to a write.
func (p *FaultProxy) record(op, key, uploadID, fault string, status int, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noteLocked(key, op, uploadID, fault, strconv.Itoa(status))
	switch {
	case status == http.StatusPreconditionFailed:
		p.precondition[key]++
	case status != http.StatusOK || op == OpUploadPart:
	case op == OpCompleteMultipartUpload && bytes.Contains(body, []byte("<Error>")):
		// S3 may report a failed completion in a 200 answer.
	case op == OpCompleteMultipartUpload && p.completed[key+"\x00"+uploadID]:
		p.reacked++
	default:
		if op == OpCompleteMultipartUpload {
			p.completed[key+"\x00"+uploadID] = true
		}
		p.successful[key]++
	}
}

func (p *FaultProxy) note(key, op, uploadID, fault, outcome string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noteLocked(key, op, uploadID, fault, outcome)
}

func (p *FaultProxy) noteLocked(key, op, uploadID, fault, outcome string) {
	line := fmt.Sprintf("%8.3fs %s", time.Since(p.started).Seconds(), op)
	if uploadID != "" {
		line += " upload " + uploadID
	}
	if fault != "" {
		line += " [" + fault + "]"
	}
	p.history[key] = append(p.history[key], line+": "+outcome)
}

// objectWrite classifies a path-style request: the write operation and its
// "bucket/key", or "" for anything else.
func objectWrite(r *http.Request) (op, key string) {
	bucket, object, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket == "" || object == "" {
		return "", ""
	}
	q := r.URL.Query()
	key = bucket + "/" + object
	switch {
	case r.Method == http.MethodPut && q.Has("uploadId") && q.Has("partNumber"):
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return "", "" // UploadPartCopy
		}
		return OpUploadPart, key
	case r.Method == http.MethodPut:
		// Subresource writes (?acl, ?tagging, ...) are not object writes;
		// the Go SDK adds x-id=PutObject to a plain PutObject.
		for k := range q {
			if k != "x-id" {
				return "", ""
			}
		}
		return OpPutObject, key
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return OpCompleteMultipartUpload, key
	}
	return "", ""
}

// writeS3Error answers with an S3 XML error document.
func writeS3Error(w http.ResponseWriter, status int, code, message, key string) {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><Resource>/%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		code, message, key)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// hijackAndClose takes the client's connection and closes it without an
// answer: with reset, as a TCP RST (SO_LINGER 0), else as an orderly close
// (the client reads EOF where it expected the answer).
func hijackAndClose(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(fmt.Sprintf("fault proxy: hijack: %v", err))
	}
	if tcp, ok := conn.(*net.TCPConn); ok && reset {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// hopByHop reports whether a header belongs to one connection only and is
// not passed on by a proxy.
func hopByHop(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
