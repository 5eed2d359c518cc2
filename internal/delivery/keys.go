package delivery

import (
	"fmt"
	"strings"
	"time"
)

// KeyParts are the values of one object's key.
type KeyParts struct {
	Prefix    string
	EventType string
	Day       time.Time
	Tenant    string
	WindowEnd time.Time
	FirstSeq  int64
	LastSeq   int64
	Part      int
	Ext       string // ".ndjson.gz"
}

// Key builds the default key layout:
// {prefix}/{event_type}/{yyyy}-{mm}-{dd}/{tenant}/{window_end}_{seq_from}-{seq_to}_{part}{ext}.
// seq_from-seq_to is the range of the object's group (one event type and day
// of one plan) and part numbers the objects the group is split into. Numbers
// are zero-padded so keys sort, and every key of a destination is unique
// because the groups' sequence ranges never share a bound.
func Key(p KeyParts) string {
	name := fmt.Sprintf("%s_%012d-%012d_%04d%s", p.WindowEnd.UTC().Format("20060102T150405Z"), p.FirstSeq, p.LastSeq, p.Part, p.Ext)
	parts := []string{SafeSegment(p.EventType), p.Day.UTC().Format("2006-01-02"), p.Tenant, name}
	if p.Prefix != "" {
		parts = append([]string{strings.TrimSuffix(p.Prefix, "/")}, parts...)
	}
	return strings.Join(parts, "/")
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
