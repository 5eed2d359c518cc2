// Package server is the agent's HTTP API: event ingest for the platform,
// destinations and identity for the tenants' Terraform provider, health and
// metrics for the operator.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

// Tester runs a destination's connection test and names the delivery principal.
// *s3sink.Principal is one.
type Tester interface {
	Test(ctx context.Context, t s3sink.Target) (s3sink.TestResult, error)
	ARN(ctx context.Context) (string, error)
}

// Notifier is told when destinations change. *delivery.Deliverer is one.
type Notifier interface {
	Notify()
}

// Options configure the server.
type Options struct {
	Fields          ingest.Fields
	Limits          ingest.Limits
	MaxRequestBytes int64
	// TenantRate is the sustained events per second a tenant may post; 0 is unlimited.
	TenantRate  float64
	TenantBurst int
	// FailingAfter is how long a destination fails before its state is "failing".
	FailingAfter time.Duration
	// AuthFailuresPerMinute is how many requests without a valid token a
	// client address may send at once, and per minute after that, before
	// it is answered 429; 0 does not limit.
	AuthFailuresPerMinute int
	// AllowedRegions are the only regions a destination may be in; empty
	// allows all. Identity reports them so the provider checks at plan time.
	AllowedRegions []string
	// Now tells the time for rate limits, backfill and destination states;
	// the daemon passes its one clock. The system clock when nil.
	Now func() time.Time
}

// Server serves the API.
type Server struct {
	store     store.Store
	committer *ingest.Committer
	tester    Tester
	notifier  Notifier
	metrics   *metrics.Metrics
	log       hclog.Logger
	opts      Options

	mu        sync.Mutex
	limiters  map[int64]*rate.Limiter
	authLimit *authLimiter
	known     *known
}

// New returns a Server. notifier may be nil.
func New(s store.Store, c *ingest.Committer, t Tester, n Notifier, m *metrics.Metrics, log hclog.Logger, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = clock.Real{}.Now
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 16 << 20
	}
	return &Server{
		store: s, committer: c, tester: t, notifier: n, metrics: m,
		log: log.Named("api"), opts: opts, limiters: map[int64]*rate.Limiter{},
		authLimit: newAuthLimiter(opts.AuthFailuresPerMinute, opts.Now),
		known:     newKnown(s),
	}
}

func (s *Server) now() time.Time { return s.opts.Now().UTC() }

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/tenants/{tenant}/events", s.withToken(api.ScopeIngest, s.postEvents))
	mux.HandleFunc("GET /v1/identity", s.withToken(api.ScopeManage, s.identity))
	mux.HandleFunc("GET /v1/signing-keys", s.signingKeys)
	mux.HandleFunc("GET /v1/destinations/{id}/objects", s.withToken(api.ScopeManage, s.listObjects))
	mux.HandleFunc("POST /v1/destinations", s.withToken(api.ScopeManage, s.createDestination))
	mux.HandleFunc("GET /v1/destinations", s.withToken(api.ScopeManage, s.listDestinations))
	mux.HandleFunc("GET /v1/destinations/{id}", s.withToken(api.ScopeManage, s.getDestination))
	mux.HandleFunc("PUT /v1/destinations/{id}", s.withToken(api.ScopeManage, s.updateDestination))
	mux.HandleFunc("DELETE /v1/destinations/{id}", s.withToken(api.ScopeManage, s.deleteDestination))
	mux.HandleFunc("/", noRoute(mux))
	return mux
}

// routeMethods are the methods the API's routes use.
var routeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// noRoute answers what no route matched: 405 with Allow when the path is a
// route for other methods, else 404. The catch-all "/" pattern matches every
// method, so the mux's own 405 never applies.
func noRoute(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range routeMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, api.Error{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path + ": use " + strings.Join(allowed, " or ")})
			return
		}
		writeError(w, http.StatusNotFound, api.Error{Code: "not_found", Message: "no such API route: " + r.Method + " " + r.URL.Path})
	}
}

// healthz reports the agent's dependencies: "store" is "ok" or
// "unavailable: …", and the answer is 503 while the store is down, so that a
// load balancer stops sending ingest to an agent that cannot store it. It
// also reports the delivery principal ("delivery_principal": "ok" or
// "missing") when the Tester knows it, but a missing one does not fail the
// check: the agent still ingests, so load balancers must keep sending it
// events.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	body := map[string]string{"status": "ok", "store": "ok"}
	status := http.StatusOK
	if err := s.probeStore(r.Context()); err != nil {
		body["status"], body["store"] = "degraded", "unavailable: "+err.Error()
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
	}
	if p, ok := s.tester.(interface{ DeliveryPrincipal() string }); ok {
		body["delivery_principal"] = p.DeliveryPrincipal()
	}
	writeJSON(w, status, body)
}

// healthProbeTimeout bounds the store check of /healthz, well within the
// timeouts load balancers give a health check.
const healthProbeTimeout = 5 * time.Second

// probeStore makes one cheap read: a tenant that cannot exist answers
// ErrNotFound when the store works.
func (s *Server) probeStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthProbeTimeout)
	defer cancel()
	if _, err := s.store.TenantByID(ctx, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

type tokenKey struct{}

// Reasons a request fails to authenticate, as counted in
// auditexport_auth_failures_total.
const (
	authMissing     = "missing_token"
	authInvalid     = "invalid_token"
	authWrongScope  = "wrong_scope"
	authWrongTenant = "wrong_tenant"
	authThrottled   = "throttled"
)

// withToken checks the bearer token and its scope before calling next. The
// token is in the request context for next. A client address that keeps
// sending missing or unknown tokens is slowed (see authLimiter).
func (s *Server) withToken(scope string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if wait := s.authLimit.blocked(r); wait > 0 {
			s.metrics.AuthFailures.WithLabelValues(authThrottled).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			writeError(w, http.StatusTooManyRequests, api.Error{Code: "too_many_auth_failures", Message: fmt.Sprintf("too many requests from %s failed to authenticate: retry after %ss with a valid token", clientAddr(r), w.Header().Get("Retry-After"))})
			return
		}
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			s.authFailed(r, authMissing)
			w.Header().Set("WWW-Authenticate", `Bearer realm="auditexport"`)
			writeError(w, http.StatusUnauthorized, api.Error{Code: "unauthorized", Message: "missing bearer token: send \"Authorization: Bearer <token>\" with a token from `auditexport-agent token create`"})
			return
		}
		tok, err := s.known.token(r.Context(), tokens.Hash(strings.TrimSpace(raw)))
		if errors.Is(err, store.ErrNotFound) {
			s.authFailed(r, authInvalid)
			writeError(w, http.StatusUnauthorized, api.Error{Code: "unauthorized", Message: "the token is not valid: check the token in your configuration (tokens are shown once, at creation)"})
			return
		}
		if err != nil {
			s.internalError(w, "token lookup", err)
			return
		}
		if tok.Scope != scope {
			s.metrics.AuthFailures.WithLabelValues(authWrongScope).Inc()
			writeError(w, http.StatusForbidden, api.Error{Code: "forbidden", Message: "this is " + withArticle(tok.Scope) + " token; this call needs " + withArticle(scope) + " token"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	}
}

// authFailed counts a request without a valid token against its address.
func (s *Server) authFailed(r *http.Request, reason string) {
	s.metrics.AuthFailures.WithLabelValues(reason).Inc()
	s.authLimit.failed(r)
}

// withArticle puts "a" or "an" before a token scope: "an ingest", "a manage".
func withArticle(scope string) string {
	if scope != "" && strings.ContainsRune("aeiou", rune(scope[0])) {
		return "an " + scope
	}
	return "a " + scope
}

func tokenFrom(ctx context.Context) store.Token {
	tok, _ := ctx.Value(tokenKey{}).(store.Token)
	return tok
}

func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	tenant, err := s.known.tenantByID(r.Context(), tokenFrom(r.Context()).TenantID)
	if err != nil {
		s.internalError(w, "tenant lookup", err)
		return
	}
	arn, err := s.tester.ARN(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, api.Error{Code: "principal_unknown", Message: "the agent cannot tell its delivery principal: " + err.Error() + " (operator: set aws.principal_arn or give the agent AWS credentials)"})
		return
	}
	keys, err := s.publishedKeys(r.Context())
	if err != nil {
		s.internalError(w, "signing keys lookup", err)
		return
	}
	writeJSON(w, http.StatusOK, api.Identity{Tenant: tenant.Name, ExternalID: tenant.ExternalID, PrincipalARN: arn,
		AllowedRegions: s.opts.AllowedRegions, SigningKeys: keys.Keys})
}

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 for a store
// that cannot be reached: long enough not to hammer a database that is
// restarting, short enough that a failover costs little.
const unavailableRetryAfter = 5

// internalError answers a failed store or commit call. A store that could not
// be reached is 503 with Retry-After: nothing of the request was stored (or,
// when the outcome of a commit is unknown, a retry is recognised as a
// duplicate), so the client retries it as it is.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		s.log.Warn("store unavailable", "during", what, "error", err)
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
		writeError(w, http.StatusServiceUnavailable, api.Error{Code: "store_unavailable", Message: "the agent's store is unavailable during " + what + ": retry after " + strconv.Itoa(unavailableRetryAfter) + "s; nothing of this request was stored"})
		return
	}
	s.log.Error("internal error", "during", what, "error", err)
	writeError(w, http.StatusInternalServerError, api.Error{Code: "internal", Message: "internal error during " + what + "; see the agent's log"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, e api.Error) {
	writeJSON(w, status, api.ErrorResponse{Error: e})
}
