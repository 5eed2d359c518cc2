package server

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/store"
)

// postEvents stores a request's events durably. It answers 200 only after
// the commit is fsync'd; any bad event rejects the whole request (nothing of
// it is stored), so the platform can fix and resend it as a unit.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.ingestTenant(w, r)
	if !ok {
		return
	}
	body, ok := s.readBody(w, r, tenant.Name)
	if !ok {
		return
	}
	events, err := ingest.ParseAt(body, s.opts.Fields, s.opts.Limits, s.now())
	if err != nil {
		s.rejectEvents(w, tenant.Name, err)
		return
	}
	if len(events) == 0 {
		writeError(w, http.StatusBadRequest, api.Error{Code: "empty", Message: "the request has no events: send NDJSON, one JSON object per line, or a JSON array of objects"})
		return
	}
	if !s.allow(w, tenant, len(events)) {
		return
	}
	res, err := s.committer.Submit(r.Context(), store.AppendBatch{TenantID: tenant.ID, Events: events})
	if err != nil {
		s.internalError(w, "commit", err)
		return
	}
	s.metrics.EventsIngested.WithLabelValues(tenant.Name).Add(float64(res.Stored))
	s.metrics.EventsDuplicate.WithLabelValues(tenant.Name).Add(float64(res.Duplicates))
	writeJSON(w, http.StatusOK, api.IngestResponse{
		Accepted: len(events), Stored: res.Stored, Duplicates: res.Duplicates,
		FirstSeq: res.FirstSeq, LastSeq: res.LastSeq,
	})
}

// ingestTenant is the {tenant} of the path, which the ingest token must be
// valid for. A token bound to another tenant is refused before the path's
// tenant is looked up, so it cannot tell which tenants exist.
func (s *Server) ingestTenant(w http.ResponseWriter, r *http.Request) (store.Tenant, bool) {
	tok, name := tokenFrom(r.Context()), r.PathValue("tenant")
	if tok.TenantID != 0 {
		bound, err := s.known.tenantByID(r.Context(), tok.TenantID)
		if err != nil {
			s.internalError(w, "tenant lookup", err)
			return store.Tenant{}, false
		}
		if bound.Name != name {
			s.metrics.AuthFailures.WithLabelValues(authWrongTenant).Inc()
			writeError(w, http.StatusForbidden, api.Error{Code: "forbidden", Message: fmt.Sprintf("this ingest token is bound to tenant %s: post to /v1/tenants/%s/events, or use a token for tenant %s (`auditexport-agent token create -scope ingest -tenant %s`)", bound.Name, bound.Name, name, name)})
			return store.Tenant{}, false
		}
		return bound, true
	}
	tenant, err := s.known.tenantByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, api.Error{Code: "tenant_not_found", Message: fmt.Sprintf("tenant %q does not exist: create it with `auditexport-agent tenant create`", name)})
		return store.Tenant{}, false
	}
	if err != nil {
		s.internalError(w, "tenant lookup", err)
		return store.Tenant{}, false
	}
	return tenant, true
}

// readBody reads the request body, decoding a gzip or zstd body. The
// request limit applies to the decoded bytes, and reading stops just past
// it, so a small body that decodes to gigabytes costs no more than the
// limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, tenant string) ([]byte, bool) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		s.unsupported(w, tenant, err)
		return nil, false
	}
	if r.ContentLength > s.opts.MaxRequestBytes {
		s.tooLarge(w, tenant, r.ContentLength)
		return nil, false
	}
	dec, err := decoder(r.Header.Get("Content-Encoding"), http.MaxBytesReader(w, r.Body, s.opts.MaxRequestBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.tooLarge(w, tenant, -1)
		return nil, false
	case errors.Is(err, errUnsupportedEncoding):
		s.unsupported(w, tenant, err)
		return nil, false
	case err != nil:
		s.badBody(w, tenant, err)
		return nil, false
	}
	defer dec.Close()
	body, err := io.ReadAll(io.LimitReader(dec, s.opts.MaxRequestBytes+1))
	switch {
	case errors.As(err, &mbe):
		s.tooLarge(w, tenant, -1)
		return nil, false
	case err != nil:
		s.badBody(w, tenant, err)
		return nil, false
	case int64(len(body)) > s.opts.MaxRequestBytes:
		s.tooLarge(w, tenant, -1)
		return nil, false
	}
	return body, true
}

func (s *Server) unsupported(w http.ResponseWriter, tenant string, err error) {
	s.metrics.IngestRejected.WithLabelValues(tenant, "unsupported_media_type").Inc()
	writeError(w, http.StatusUnsupportedMediaType, api.Error{Code: "unsupported_media_type", Message: err.Error()})
}

func (s *Server) badBody(w http.ResponseWriter, tenant string, err error) {
	s.metrics.IngestRejected.WithLabelValues(tenant, "read_failed").Inc()
	writeError(w, http.StatusBadRequest, api.Error{Code: "read_failed", Message: "reading the request body: " + err.Error()})
}

func (s *Server) tooLarge(w http.ResponseWriter, tenant string, size int64) {
	s.metrics.IngestRejected.WithLabelValues(tenant, "request_too_large").Inc()
	msg := fmt.Sprintf("the request body, decoded, is larger than the limit of %d bytes: split it into smaller requests", s.opts.MaxRequestBytes)
	if size > 0 {
		msg = fmt.Sprintf("the request body (%d bytes) is larger than the limit of %d bytes: split it into smaller requests", size, s.opts.MaxRequestBytes)
	}
	writeError(w, http.StatusRequestEntityTooLarge, api.Error{Code: "request_too_large", Message: msg})
}

func (s *Server) rejectEvents(w http.ResponseWriter, tenant string, err error) {
	stored := 0
	var le *ingest.LineError
	if !errors.As(err, &le) {
		s.metrics.IngestRejected.WithLabelValues(tenant, "invalid").Inc()
		writeJSON(w, http.StatusBadRequest, api.ErrorResponse{Stored: &stored, Error: api.Error{Code: "invalid_body", Message: err.Error() + "; no event of this request was stored"}})
		return
	}
	status, code := http.StatusBadRequest, "invalid_event"
	if le.TooLarge {
		status, code = http.StatusRequestEntityTooLarge, "event_too_large"
	}
	s.metrics.IngestRejected.WithLabelValues(tenant, code).Inc()
	writeJSON(w, status, api.ErrorResponse{Stored: &stored, Error: api.Error{
		Code: code, Line: le.Line, Field: le.Field,
		Message: le.Error() + "; no event of this request was stored, fix the line and resend the request",
	}})
}

// allow applies the tenant's rate limit to n events.
func (s *Server) allow(w http.ResponseWriter, tenant store.Tenant, n int) bool {
	if s.opts.TenantRate <= 0 {
		return true
	}
	lim := s.limiter(tenant.ID)
	if n > lim.Burst() {
		s.metrics.IngestRejected.WithLabelValues(tenant.Name, "too_many_events").Inc()
		writeError(w, http.StatusRequestEntityTooLarge, api.Error{Code: "too_many_events", Message: fmt.Sprintf("the request has %d events, more than the per-tenant burst of %d: split it", n, lim.Burst())})
		return false
	}
	res := lim.ReserveN(s.opts.Now(), n)
	if delay := res.DelayFrom(s.opts.Now()); delay > 0 {
		res.CancelAt(s.opts.Now())
		s.metrics.IngestRejected.WithLabelValues(tenant.Name, "rate_limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(delay.Seconds()))))
		writeError(w, http.StatusTooManyRequests, api.Error{Code: "rate_limited", Message: fmt.Sprintf("tenant %q is over its limit of %.0f events/s: retry after %s", tenant.Name, s.opts.TenantRate, w.Header().Get("Retry-After")+"s")})
		return false
	}
	return true
}

func (s *Server) limiter(tenantID int64) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim, ok := s.limiters[tenantID]
	if !ok {
		burst := max(s.opts.TenantBurst, 1)
		lim = rate.NewLimiter(rate.Limit(s.opts.TenantRate), burst)
		s.limiters[tenantID] = lim
	}
	return lim
}
