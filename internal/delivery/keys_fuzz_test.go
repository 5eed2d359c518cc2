package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

// FuzzKeyTemplate checks that every template the validator accepts renders,
// for any event name, a key under the prefix with no "." or ".." segment and
// within S3's 1024 bytes.
func FuzzKeyTemplate(f *testing.F) {
	f.Add(api.DefaultKeyTemplate, "user.login", "audit")
	f.Add("{prefix}/{yyyy}/{mm}/{dd}/{hh}/{seq_from}-{seq_to}_{part}", "../x", "a/b")
	f.Add("{event_type}/{seq_from}{seq_to}{part}", "..", "")
	f.Fuzz(func(t *testing.T, tmpl, eventName, prefix string) {
		if api.ValidatePrefix(prefix) != nil || api.ValidateKeyTemplate(tmpl, prefix) != nil {
			return
		}
		key := Key(KeyParts{
			Template: tmpl, Prefix: prefix, EventType: eventName, Day: time.Unix(0, 0), Tenant: "acme",
			WindowStart: time.Unix(0, 0), WindowEnd: time.Unix(3600, 0), FirstSeq: 1, LastSeq: 99999999999, Part: 9999, Ext: ".ndjson.zst",
		})
		if len(key) > api.MaxKeyBytes {
			t.Fatalf("key of %d bytes: %s", len(key), key)
		}
		if prefix != "" && !strings.HasPrefix(key, strings.TrimSuffix(prefix, "/")+"/") {
			t.Fatalf("key %q left the prefix %q", key, prefix)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("key %q has segment %q", key, seg)
			}
		}
	})
}
