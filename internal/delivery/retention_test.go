package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// TestRetentionManyTenants sweeps many tenants whose events were stored on
// three days, with destinations whose cursors stop at different points: the
// events older than the retention and delivered everywhere go, everything
// else stays, sweep after sweep.
func TestRetentionManyTenants(t *testing.T) {
	r := newRig(t, "2026-11-01T00:00:00Z")
	ctx := context.Background()
	const perDay = 4
	days := []string{"2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-07T00:00:00Z"}

	// cursor is where the tenant's destination stands, as a count of
	// events; -1 means the tenant has no destination.
	kinds := []struct {
		name   string
		cursor int64
	}{
		{"no destination", -1},
		{"all delivered", int64(len(days) * perDay)},
		{"half of the first day delivered", perDay / 2},
		{"first two days delivered", 2 * perDay},
		{"nothing delivered", 0},
	}
	type tenant struct {
		store.Tenant
		cursor int64
	}
	var tenants []tenant
	for i := range 40 {
		k := kinds[i%len(kinds)]
		tn, err := r.store.CreateTenant(ctx, fmt.Sprintf("t%02d", i), fmt.Sprintf("ext-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant{tn, k.cursor})
	}
	for _, day := range days {
		r.clock.Set(mustTime(t, day))
		for _, tn := range tenants {
			var evs []store.Event
			for j := range perDay {
				id := fmt.Sprintf("%s-%s-%d", tn.Name, day, j)
				evs = append(evs, store.Event{MessageID: id, EventName: "user.login", TimeMs: r.clock.Now().UnixMilli(),
					Body: []byte(fmt.Sprintf(`{"messageId":%q}`, id))})
			}
			if _, err := r.store.Append(ctx, []store.AppendBatch{{TenantID: tn.ID, Events: evs}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Paused destinations, so that only the sweep moves anything.
	off := false
	spec := api.DestinationSpec{Interval: "1h", Enabled: &off, Bucket: "bucket", Region: "us-east-1",
		RoleARN: "arn:aws:iam::123456789012:role/r"}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(spec)
	for _, tn := range tenants {
		if tn.cursor < 0 {
			continue
		}
		if _, err := r.store.CreateDestination(ctx, store.Destination{ID: "dst_" + tn.Name, TenantID: tn.ID, Spec: data, Cursor: tn.cursor}); err != nil {
			t.Fatal(err)
		}
	}

	// The rig's retention is 7 days. Each step sweeps at a time and says
	// how many of the days have expired.
	steps := []struct {
		at      string
		expired int
	}{
		{"2026-11-07T23:59:59Z", 0},
		{"2026-11-08T00:00:01Z", 1},
		{"2026-11-08T00:00:02Z", 1}, // a second sweep finds nothing more
		{"2026-11-09T00:00:01Z", 2},
		{"2026-11-20T00:00:00Z", 3},
	}
	for _, st := range steps {
		r.clock.Set(mustTime(t, st.at))
		r.d.sweep(ctx)
		for _, tn := range tenants {
			// Events 1..expired*perDay are past the retention; those up
			// to the cursor (all, without a destination) may go.
			deletable := int64(st.expired * perDay)
			if tn.cursor >= 0 {
				deletable = min(deletable, tn.cursor)
			}
			first, count := storedRange(t, r.store, tn.ID)
			wantCount := int64(len(days)*perDay) - deletable
			if count != wantCount || (count > 0 && first != deletable+1) {
				t.Errorf("%s: tenant %s (cursor %d) keeps %d events from seq %d, want %d from seq %d",
					st.at, tn.Name, tn.cursor, count, first, wantCount, deletable+1)
			}
			if tn.cursor < 0 {
				got := testutil.ToFloat64(r.metrics.EventsExpired.WithLabelValues(tn.Name))
				if int64(got) != deletable {
					t.Errorf("%s: tenant %s: expired undelivered = %v, want %d", st.at, tn.Name, got, deletable)
				}
			}
		}
	}
}

// storedRange returns the first stored seq and how many events the tenant
// keeps.
func storedRange(t *testing.T, s store.Store, tenantID int64) (first, count int64) {
	t.Helper()
	head, err := s.Head(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := s.GroupsBy(context.Background(), tenantID, 1, head, nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		if i == 0 {
			first = g.FirstSeq
		}
		count += g.Count
	}
	return first, count
}
