package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// benchSTS answers STS AssumeRole for the many-destinations scenario: every
// tenant's role hands out the S3 server's user keys, so that the agent's
// role path (assume, cache, refresh) runs against a real S3 gateway that has
// no STS of its own. It throttles as STS does (400 Throttling past its
// rate) and counts the calls per role, so the report shows whether the
// agent assumed each role once and kept under the rate.
type benchSTS struct {
	url             string
	accessKey       string
	secret          string
	sessionDuration time.Duration

	limiter *rate.Limiter
	srv     *http.Server

	mu        sync.Mutex
	calls     map[string]int // role ARN -> AssumeRole calls answered with credentials
	throttled int
	first     time.Time // first and last AssumeRole answered
	last      time.Time
	lastNew   time.Time // the last answer to a role's first call
}

// stsStats are the AssumeRole figures of a run.
type stsStats struct {
	calls, roles, maxPerRole, throttled int
	span                                time.Duration // first to last answered call
	lastNew                             time.Time     // when the last role first assumed was answered
}

// startBenchSTS listens on a free loopback port. perSecond is the rate past
// which calls are throttled (0: none).
func startBenchSTS(accessKey, secret string, perSecond float64, session time.Duration) (*benchSTS, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &benchSTS{
		url: "http://" + ln.Addr().String(), accessKey: accessKey, secret: secret,
		sessionDuration: session, calls: map[string]int{},
		limiter: rate.NewLimiter(rate.Inf, 0),
	}
	if perSecond > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *benchSTS) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// stats returns the figures so far and starts counting afresh.
func (s *benchSTS) stats() stsStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stsStats{roles: len(s.calls), throttled: s.throttled, span: s.last.Sub(s.first), lastNew: s.lastNew}
	for _, n := range s.calls {
		st.calls += n
		st.maxPerRole = max(st.maxPerRole, n)
	}
	s.calls, s.throttled, s.first, s.last, s.lastNew = map[string]int{}, 0, time.Time{}, time.Time{}, time.Time{}
	return st
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
	Result  struct {
		Credentials stsCredentials `xml:"Credentials"`
		User        struct {
			Arn string `xml:"Arn"`
			ID  string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Type    string   `xml:"Error>Type"`
	Code    string   `xml:"Error>Code"`
	Message string   `xml:"Error>Message"`
	ID      string   `xml:"RequestId"`
}

func (s *benchSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
		writeXML(w, http.StatusBadRequest, stsErrorResponse{Type: "Sender", Code: "InvalidAction", Message: "only AssumeRole", ID: "bench"})
		return
	}
	role := r.Form.Get("RoleArn")
	if r.Form.Get("ExternalId") == "" {
		writeXML(w, http.StatusForbidden, stsErrorResponse{Type: "Sender", Code: "AccessDenied", Message: "external id required", ID: "bench"})
		return
	}
	if !s.limiter.Allow() {
		s.mu.Lock()
		s.throttled++
		s.mu.Unlock()
		writeXML(w, http.StatusBadRequest, stsErrorResponse{Type: "Sender", Code: "Throttling", Message: "Rate exceeded", ID: "bench"})
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.calls[role] == 0 {
		s.lastNew = now
	}
	s.calls[role]++
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	s.mu.Unlock()
	var out assumeRoleResponse
	out.Result.Credentials = stsCredentials{
		AccessKeyID: s.accessKey, SecretAccessKey: s.secret,
		Expiration: now.Add(s.sessionDuration).UTC().Format(time.RFC3339),
	}
	out.Result.User.Arn = role
	out.Result.User.ID = "AROABENCH:" + strconv.Itoa(len(role))
	out.RequestID = fmt.Sprintf("bench-%d", now.UnixNano())
	writeXML(w, http.StatusOK, out)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}
