package delivery

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// A destination whose key template names the event type writes an object
// per name; one whose template does not writes one object per window with
// every name's events in sequence order, the event_types filter applied.
func TestKeyTemplateGroupsObjects(t *testing.T) {
	const mixed = "{yyyy}/{mm}/{dd}/{tenant}/{window_end}_{seq_from}-{seq_to}_{part}"
	names := []string{"user.login", "user.logout", "user.login", "role.granted", "user.logout", "user.login"}
	tests := []struct {
		name string
		spec api.DestinationSpec
		want map[string][]string // key's start under audit/ → messageIds in order
	}{
		{
			name: "default template: an object per name",
			spec: api.DestinationSpec{Interval: "1m"},
			want: map[string][]string{
				"audit/role.granted/": {"m4"},
				"audit/user.login/":   {"m1", "m3", "m6"},
				"audit/user.logout/":  {"m2", "m5"},
			},
		},
		{
			name: "no {event_type}: one object",
			spec: api.DestinationSpec{Interval: "1m", KeyTemplate: mixed},
			want: map[string][]string{"audit/2026/11/25/acme/20261125T100100Z_000000000001-000000000006_0001": {"m1", "m2", "m3", "m4", "m5", "m6"}},
		},
		{
			name: "no {event_type}, filtered",
			spec: api.DestinationSpec{Interval: "1m", KeyTemplate: mixed, EventTypes: []string{"user.logout", "role.granted"}},
			want: map[string][]string{"audit/2026/11/25/acme/20261125T100100Z_000000000002-000000000005_0001": {"m2", "m4", "m5"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "2026-11-25T10:00:00Z")
			r.destination(tt.spec)
			r.postNamed("", names...)
			r.advance("2026-11-25T10:01:00Z")
			got := map[string][]string{}
			for _, k := range r.sink.keys() {
				var prefix string
				for p := range tt.want {
					if strings.HasPrefix(k, p) {
						prefix = p
					}
				}
				if prefix == "" {
					t.Fatalf("unexpected object %s (want objects under %v)", k, tt.want)
				}
				got[prefix] = objectIDs(t, k, r.sink.objects[k])
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("objects hold %v, want %v", got, tt.want)
			}
		})
	}
}

// A mixed group larger than max_object_bytes is split into parts like a
// group of one name: every event once, in sequence order across the parts.
func TestMixedGroupSplitsIntoParts(t *testing.T) {
	r := newRig(t, "2026-11-25T10:00:00Z")
	r.destination(api.DestinationSpec{Interval: "1m", Compression: "none", MaxObjectBytes: api.MinObjectBytes,
		KeyTemplate: "{tenant}/{window_end}_{seq_from}-{seq_to}_{part}"})
	// ~12 MiB of events of three names in one commit, so in chunks that
	// overlap: three parts.
	var names []string
	for i := range 12 * 16 {
		names = append(names, []string{"a", "b", "c"}[i%3])
	}
	want := r.postNamed(strings.Repeat("x", 64<<10), names...)
	r.advance("2026-11-25T10:01:00Z")
	keys := r.sink.keys()
	if len(keys) != 3 {
		t.Fatalf("got %d objects, want 3: %v", len(keys), keys)
	}
	var got []string
	for _, k := range keys {
		got = append(got, objectIDs(t, k, r.sink.objects[k])...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the parts hold %d events, want the %d posted in sequence order", len(got), len(want))
	}
}

// postNamed stores one event per name, in order, padded with pad, in one
// commit.
func (r *rig) postNamed(pad string, names ...string) []string {
	r.t.Helper()
	var ids []string
	var evs []store.Event
	for _, name := range names {
		r.seq++
		id := fmt.Sprintf("m%d", r.seq)
		ids = append(ids, id)
		ms := r.clock.Now().UnixMilli()
		body := fmt.Sprintf(`{"timestamp":%d,"eventName":%q,"messageId":%q,"pad":%q}`, ms, name, id, pad)
		evs = append(evs, store.Event{MessageID: id, EventName: name, TimeMs: ms, Body: []byte(body)})
	}
	if _, err := r.store.Append(context.Background(), []store.AppendBatch{{TenantID: r.tenant.ID, Events: evs}}); err != nil {
		r.t.Fatal(err)
	}
	return ids
}

// objectIDs is the messageIds of one NDJSON object, in order.
func objectIDs(t *testing.T, key string, data []byte) []string {
	t.Helper()
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for line := range strings.Lines(string(data)) {
		var ev struct{ MessageID string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		ids = append(ids, ev.MessageID)
	}
	return ids
}
