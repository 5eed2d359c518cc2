package delivery

import (
	"fmt"
	"strings"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

// KeyParts are the values of one object's key.
type KeyParts struct {
	Template    string // a validated api key template; empty means the default
	Prefix      string
	EventType   string
	Day         time.Time // start of the object's group: its day, or its hour with {hh}
	Tenant      string
	WindowStart time.Time
	WindowEnd   time.Time
	FirstSeq    int64
	LastSeq     int64
	Part        int
	Ext         string // ".ndjson.gz"

	// Security Lake's partitions and the OCSF class of the object.
	Source  string // the destination's source_name
	Region  string
	Account string
	Class   string // OCSF class name, "" for raw events
}

// Key renders the destination's key template under its prefix, e.g. with the
// default template
// {prefix}/{event_type}/{yyyy}-{mm}-{dd}/{tenant}/{window_end}_{seq_from}-{seq_to}_{part}{ext}.
// seq_from-seq_to is the range of the object's group (one event type and day
// of one plan) and part numbers the objects the group is split into. Numbers
// are zero-padded so keys sort, and every key of a destination is unique
// because the groups' sequence ranges never share a bound.
func Key(p KeyParts) string {
	tmpl := strings.TrimPrefix(api.ExpandKeyTemplate(p.Template), "{prefix}/")
	if tmpl == "" {
		tmpl = api.DefaultKeyTemplate
	}
	day := p.Day.UTC()
	r := strings.NewReplacer(
		"{tenant}", p.Tenant,
		"{event_type}", SafeSegment(p.EventType),
		"{yyyy}", day.Format("2006"), "{mm}", day.Format("01"), "{dd}", day.Format("02"), "{hh}", day.Format("15"),
		"{window_start}", p.WindowStart.UTC().Format("20060102T150405Z"),
		"{window_end}", p.WindowEnd.UTC().Format("20060102T150405Z"),
		"{seq_from}", fmt.Sprintf("%012d", p.FirstSeq),
		"{seq_to}", fmt.Sprintf("%012d", p.LastSeq),
		"{part}", fmt.Sprintf("%04d", p.Part),
		"{source}", p.Source, "{region}", p.Region, "{account}", p.Account,
		"{yyyymmdd}", day.Format("20060102"), "{class}", SafeSegment(p.Class),
	)
	key := r.Replace(tmpl) + p.Ext
	if p.Prefix != "" {
		key = strings.TrimSuffix(p.Prefix, "/") + "/" + key
	}
	return key
}

// groupSpan is the time span of a destination's groups: an hour when its
// key template partitions by hour, else a day.
func groupSpan(tmpl string) time.Duration {
	if strings.Contains(api.ExpandKeyTemplate(tmpl), "{hh}") {
		return time.Hour
	}
	return 24 * time.Hour
}

// SafeSegment makes an event name usable as one key segment: characters
// outside [A-Za-z0-9._-] become "_", so a name can never add a "/" or "..".
func SafeSegment(s string) string {
	if s == "" {
		return "_unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if !isSafe(c) {
			b[i] = '_'
		}
	}
	out := string(b)
	if strings.Trim(out, ".") == "" {
		return strings.Repeat("_", len(out))
	}
	if len(out) > 200 {
		out = out[:200]
	}
	return out
}

func isSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
