package server

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/store"
)

// Page sizes of GET /v1/destinations/{id}/objects.
const (
	defaultObjectsLimit = 100
	maxObjectsLimit     = 1000
)

// publishedKeys is every digest signing key, oldest first, in the digest
// format's published form.
func (s *Server) publishedKeys(ctx context.Context) (digest.KeySet, error) {
	ks, err := s.store.SigningKeys(ctx)
	if err != nil {
		return digest.KeySet{}, err
	}
	set := digest.KeySet{Keys: make([]digest.PublicKey, 0, len(ks))}
	for _, k := range ks {
		var notAfter *time.Time
		if !k.NotAfter.IsZero() {
			t := k.NotAfter.UTC()
			notAfter = &t
		}
		set.Keys = append(set.Keys, digest.Published(ed25519.PublicKey(k.PublicKey), k.NotBefore, notAfter))
	}
	return set, nil
}

// signingKeys answers GET /v1/signing-keys without a token: public keys are
// public, and whoever verifies a bucket's digests (an auditor, a SIEM job)
// need not hold a tenant's token.
func (s *Server) signingKeys(w http.ResponseWriter, r *http.Request) {
	set, err := s.publishedKeys(r.Context())
	if err != nil {
		s.internalError(w, "signing keys lookup", err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// listObjects answers GET /v1/destinations/{id}/objects: a page of the
// destination's delivery log.
func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) {
	q, apiErr := objectQuery(r)
	if apiErr != nil {
		writeError(w, http.StatusBadRequest, *apiErr)
		return
	}
	tenant, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	dest, ok := s.destinationOf(w, r, tenant)
	if !ok {
		return
	}
	limit := q.Limit
	q.Limit++ // one more tells whether there is a next page
	objects, err := s.store.DeliveredObjects(r.Context(), tenant.ID, dest.ID, q)
	if err != nil {
		s.internalError(w, "delivery log lookup", err)
		return
	}
	out := api.DeliveredObjects{Objects: make([]api.DeliveredObject, 0, min(len(objects), limit))}
	if len(objects) > limit {
		objects = objects[:limit]
		last := objects[limit-1]
		out.NextPageToken = objectsPageToken(last.CommitSeq, last.Ord)
	}
	for _, o := range objects {
		out.Objects = append(out.Objects, o.Digest())
	}
	writeJSON(w, http.StatusOK, out)
}

// objectQuery reads the route's query parameters.
func objectQuery(r *http.Request) (store.ObjectQuery, *api.Error) {
	v := r.URL.Query()
	q := store.ObjectQuery{Limit: defaultObjectsLimit}
	bad := func(field, format string, args ...any) (store.ObjectQuery, *api.Error) {
		return q, &api.Error{Code: "invalid_parameter", Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxObjectsLimit {
			return bad("limit", "%q is not a page size: use 1 to %d", s, maxObjectsLimit)
		}
		q.Limit = n
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad(p.name, "%q is not an RFC 3339 time, such as 2026-11-25T10:00:00Z", s)
			}
			*p.to = t
		}
	}
	if s := v.Get("page_token"); s != "" {
		seq, ord, ok := parseObjectsPageToken(s)
		if !ok {
			return bad("page_token", "not a token this API gave: pass a previous page's next_page_token as it is")
		}
		q.AfterSeq, q.AfterOrd = seq, ord
	}
	return q, nil
}

// objectsPageToken is opaque to clients: the place of the page's last object in
// commit order.
func objectsPageToken(commitSeq int64, ord int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(commitSeq, 10) + "." + strconv.Itoa(ord)))
}

func parseObjectsPageToken(tok string) (int64, int, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(string(raw), ".")
	seq, err1 := strconv.ParseInt(a, 10, 64)
	ord, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || seq < 0 || ord < 0 {
		return 0, 0, false
	}
	return seq, ord, true
}
