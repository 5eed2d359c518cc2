package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/destination"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

const maxSpecBytes = 64 << 10

func (s *Server) createDestination(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	spec, ok := decodeSpec(w, r, s.opts.AllowedRegions)
	if !ok {
		return
	}
	warnings, ok := s.connectionTest(w, r.Context(), spec, tenant)
	if !ok {
		return
	}
	cursor, err := destination.BackfillCursor(r.Context(), s.store, tenant.ID, spec.Backfill, s.now())
	if err != nil {
		s.internalError(w, "backfill", err)
		return
	}
	data, _ := json.Marshal(spec)
	dest, err := s.store.CreateDestination(r.Context(), store.Destination{
		ID: newDestinationID(), TenantID: tenant.ID, Spec: data, Cursor: cursor,
	})
	if err != nil {
		s.internalError(w, "saving destination", err)
		return
	}
	s.notify()
	s.log.Info("destination created", "tenant", tenant.Name, "destination", dest.ID, "bucket", spec.Bucket)
	s.writeDestination(w, r.Context(), http.StatusCreated, tenant, dest, warnings)
}

func (s *Server) updateDestination(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	old, ok := s.destinationOf(w, r, tenant)
	if !ok {
		return
	}
	spec, ok := decodeSpec(w, r, s.opts.AllowedRegions)
	if !ok {
		return
	}
	keepSecret(&spec, old)
	if spec.AccessKeyID != "" && spec.SecretAccessKey == "" {
		writeError(w, http.StatusBadRequest, api.Error{Code: "invalid_field", Field: "secret_access_key", Message: "secret_access_key: required with a new access_key_id"})
		return
	}
	warnings, ok := s.connectionTest(w, r.Context(), spec, tenant)
	if !ok {
		return
	}
	data, _ := json.Marshal(spec)
	dest, err := s.store.UpdateDestination(r.Context(), tenant.ID, old.ID, data)
	if err != nil {
		s.internalError(w, "saving destination", err)
		return
	}
	s.notify()
	s.writeDestination(w, r.Context(), http.StatusOK, tenant, dest, warnings)
}

func (s *Server) getDestination(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	dest, ok := s.destinationOf(w, r, tenant)
	if !ok {
		return
	}
	s.writeDestination(w, r.Context(), http.StatusOK, tenant, dest, nil)
}

// listDestinations answers one page of the tenant's destinations, in the
// store's order (oldest first, then by id), which stays put as
// destinations are added: limit= is the page size (api.DefaultListLimit,
// at most api.MaxListLimit) and page_token= the next_page_token of the
// page before. Only the page's destinations have their status computed,
// the costly part of a destination.
func (s *Server) listDestinations(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	limit, after, ok := listParams(w, r)
	if !ok {
		return
	}
	dests, err := s.store.ListDestinations(r.Context(), tenant.ID)
	if err != nil {
		s.internalError(w, "listing destinations", err)
		return
	}
	start := 0
	if after != nil {
		start = len(dests)
		for i, d := range dests {
			if after.before(d) {
				start = i
				break
			}
		}
	}
	page := dests[start:]
	out := api.DestinationList{Destinations: []api.Destination{}}
	if len(page) > limit {
		page = page[:limit]
		out.NextPageToken = pageTokenOf(page[len(page)-1])
	}
	for _, d := range page {
		ad, err := s.apiDestination(r.Context(), tenant, d)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the list
		}
		if err != nil {
			s.internalError(w, "destination status", err)
			return
		}
		out.Destinations = append(out.Destinations, ad)
	}
	writeJSON(w, http.StatusOK, out)
}

// pagePosition is where a page ended: its last destination's creation
// time and id, the store's order.
type pagePosition struct {
	createdMs int64
	id        string
}

// before reports whether d comes after the position.
func (p *pagePosition) before(d store.Destination) bool {
	c := d.CreatedAt.UnixMilli()
	return c > p.createdMs || (c == p.createdMs && d.ID > p.id)
}

// pageTokenOf is the opaque token of the page ending with d.
func pageTokenOf(d store.Destination) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%d:%s", d.CreatedAt.UnixMilli(), d.ID)))
}

func parsePageToken(tok string) (*pagePosition, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	rest, ok := strings.CutPrefix(string(raw), "v1:")
	if !ok {
		return nil, false
	}
	ms, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return nil, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return nil, false
	}
	return &pagePosition{createdMs: n, id: id}, true
}

// listParams reads limit= and page_token=, answering 400 naming the
// parameter when one is wrong.
func listParams(w http.ResponseWriter, r *http.Request) (int, *pagePosition, bool) {
	q := r.URL.Query()
	limit := api.DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxListLimit {
			writeError(w, http.StatusBadRequest, api.Error{Code: "invalid_parameter", Field: "limit",
				Message: fmt.Sprintf("limit: must be a number from 1 to %d, got %q", api.MaxListLimit, v)})
			return 0, nil, false
		}
		limit = n
	}
	var after *pagePosition
	if v := q.Get("page_token"); v != "" {
		var ok bool
		if after, ok = parsePageToken(v); !ok {
			writeError(w, http.StatusBadRequest, api.Error{Code: "invalid_parameter", Field: "page_token",
				Message: "page_token: not a token from next_page_token; start again without page_token"})
			return 0, nil, false
		}
	}
	return limit, after, true
}

func (s *Server) deleteDestination(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	err := s.store.DeleteDestination(r.Context(), tenant.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		notFound(w, r.PathValue("id"))
		return
	}
	if err != nil {
		s.internalError(w, "deleting destination", err)
		return
	}
	s.metrics.ForgetDestination(tenant.Name, r.PathValue("id"))
	s.notify()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) notify() {
	if s.notifier != nil {
		s.notifier.Notify()
	}
}

func (s *Server) tenantOf(w http.ResponseWriter, r *http.Request) (store.Tenant, bool) {
	tenant, err := s.known.tenantByID(r.Context(), tokenFrom(r.Context()).TenantID)
	if err != nil {
		s.internalError(w, "tenant lookup", err)
		return store.Tenant{}, false
	}
	return tenant, true
}

// destinationOf loads the {id} destination of the token's tenant. Another
// tenant's destination answers 404, exactly like one that does not exist.
func (s *Server) destinationOf(w http.ResponseWriter, r *http.Request, tenant store.Tenant) (store.Destination, bool) {
	dest, err := s.store.GetDestination(r.Context(), tenant.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		notFound(w, r.PathValue("id"))
		return store.Destination{}, false
	}
	if err != nil {
		s.internalError(w, "destination lookup", err)
		return store.Destination{}, false
	}
	return dest, true
}

func notFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, api.Error{Code: "destination_not_found", Message: fmt.Sprintf("destination %q does not exist", id)})
}

func decodeSpec(w http.ResponseWriter, r *http.Request, allowedRegions []string) (api.DestinationSpec, bool) {
	var spec api.DestinationSpec
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, api.Error{Code: "request_too_large", Message: "destination body is larger than 64 KiB"})
		return spec, false
	}
	spec, err = api.DecodeDestinationSpec(bytes.NewReader(data))
	if err != nil {
		writeError(w, http.StatusBadRequest, decodeError(err))
		return spec, false
	}
	err = spec.Normalize()
	if err == nil {
		err = api.CheckRegionAllowed(spec.Region, allowedRegions)
	}
	if err != nil {
		var fe *api.FieldError
		field := ""
		if errors.As(err, &fe) {
			field = fe.Field
		}
		writeError(w, http.StatusBadRequest, api.Error{Code: "invalid_field", Field: field, Message: err.Error()})
		return spec, false
	}
	return spec, true
}

// decodeError answers a body that is not a destination, naming the field at
// fault when there is one.
func decodeError(err error) api.Error {
	e := api.Error{Code: "invalid_json", Message: err.Error()}
	var de *api.DecodeError
	var fe *api.FieldError
	switch {
	case errors.As(err, &de):
		e.Field = de.Field
	case errors.As(err, &fe):
		e.Code, e.Field = "invalid_field", fe.Field
	}
	return e
}

// keepSecret carries the stored static secret over an update that does not
// resend it (the API never returns it, so clients cannot).
func keepSecret(spec *api.DestinationSpec, old store.Destination) {
	if spec.SecretAccessKey != "" || spec.AccessKeyID == "" {
		return
	}
	prev, err := destination.Decode(old)
	if err == nil && prev.AccessKeyID == spec.AccessKeyID {
		spec.SecretAccessKey = prev.SecretAccessKey
	}
}

// connectionTest proves the destination works before it is saved. On
// failure it answers 422 with the failing call, the AWS error code and the fix.
func (s *Server) connectionTest(w http.ResponseWriter, ctx context.Context, spec api.DestinationSpec, tenant store.Tenant) ([]string, bool) {
	res, err := s.tester.Test(ctx, destination.TargetFor(spec, tenant.ExternalID))
	if err == nil {
		return res.Warnings, true
	}
	s.log.Info("connection test failed", "tenant", tenant.Name, "bucket", spec.Bucket, "error", err)
	e := api.Error{Code: "connection_test_failed", Message: "connection test failed: " + err.Error()}
	status := http.StatusUnprocessableEntity
	var se *s3sink.Error
	if errors.As(err, &se) {
		e.Call, e.AWSCode = se.Call, se.Code
		if se.Retryable {
			status = http.StatusBadGateway
		}
	}
	writeError(w, status, e)
	return nil, false
}

func (s *Server) writeDestination(w http.ResponseWriter, ctx context.Context, status int, tenant store.Tenant, dest store.Destination, warnings []string) {
	ad, err := s.apiDestination(ctx, tenant, dest)
	if err != nil {
		s.internalError(w, "destination status", err)
		return
	}
	ad.Warnings = warnings
	writeJSON(w, status, ad)
}

// apiDestination is dest as the API shows it. The destination is read again
// together with its status, so that the cursor and the counters shown are
// of one moment even while a delivery commits.
func (s *Server) apiDestination(ctx context.Context, tenant store.Tenant, dest store.Destination) (api.Destination, error) {
	dest, st, err := s.store.DestinationStatus(ctx, tenant.ID, dest.ID)
	if err != nil {
		return api.Destination{}, err
	}
	spec, err := destination.Decode(dest)
	if err != nil {
		return api.Destination{}, err
	}
	hasSecret := spec.SecretAccessKey != ""
	spec.SecretAccessKey = ""
	status, err := destination.Status(ctx, s.store, dest, st, spec, s.opts.FailingAfter, s.now())
	if err != nil {
		return api.Destination{}, err
	}
	return api.Destination{
		ID: dest.ID, Tenant: tenant.Name, DestinationSpec: spec, HasSecret: hasSecret,
		ExternalID: tenant.ExternalID, Status: status,
		CreatedAt: dest.CreatedAt.UTC(), UpdatedAt: dest.UpdatedAt.UTC(),
	}, nil
}

func newDestinationID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "dst_" + hex.EncodeToString(b)
}
