// Package ingest turns the body of an events request into store events and
// commits the events of many requests to the store together (group commit).
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/store"
)

// DefaultMaxEventBytes is the default size limit of one event.
const DefaultMaxEventBytes = 256 << 10

// MaxMessageIDBytes is the size limit of a messageId.
const MaxMessageIDBytes = 256

// MaxEventNameBytes is the size limit of an eventName. Event names end up in
// object keys, whose total length S3 caps at 1024 bytes.
const MaxEventNameBytes = 256

// Fields names the top-level fields that every event must carry. The operator
// may rename them to match the platform's event shape.
type Fields struct {
	Timestamp string
	EventName string
	MessageID string
}

// DefaultFields returns the field names of the common SaaS audit event shape.
func DefaultFields() Fields {
	return Fields{Timestamp: "timestamp", EventName: "eventName", MessageID: "messageId"}
}

// withDefaults fills empty names with the defaults.
func (f Fields) withDefaults() Fields {
	d := DefaultFields()
	if f.Timestamp == "" {
		f.Timestamp = d.Timestamp
	}
	if f.EventName == "" {
		f.EventName = d.EventName
	}
	if f.MessageID == "" {
		f.MessageID = d.MessageID
	}
	return f
}

// Limits bounds what Parse accepts.
type Limits struct {
	// MaxEventBytes caps the size of one event. Zero means
	// DefaultMaxEventBytes.
	MaxEventBytes int
}

// LineError describes the first bad event of a request body.
type LineError struct {
	// Line is the 1-based line of an NDJSON body, or the 1-based element
	// index of a JSON array body (see Element). Zero means the body as a
	// whole, such as an array that is never closed.
	Line int
	// Element is true when Line counts the elements of a JSON array.
	Element bool
	// Field is the offending field, or empty when the problem is the event
	// itself (invalid JSON, not an object, too large).
	Field string
	// Reason says what is wrong and how to fix it.
	Reason string
	// TooLarge is true when the event exceeds Limits.MaxEventBytes, so that
	// the server can answer 413 rather than 400.
	TooLarge bool
}

// Error reads like `line 3: field "messageId": missing; ...`.
func (e *LineError) Error() string {
	where := "body"
	switch {
	case e.Line > 0 && e.Element:
		where = fmt.Sprintf("element %d", e.Line)
	case e.Line > 0:
		where = fmt.Sprintf("line %d", e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: field %q: %s", where, e.Field, e.Reason)
	}
	return where + ": " + e.Reason
}

// Parse splits body into events and validates each one. The body is NDJSON
// (one object per line; blank lines, surrounding spaces and CRLF line ends
// are ignored) or, when its first non-space byte is '[', a JSON array of
// objects.
//
// Each Body is the event's bytes exactly as sent, less surrounding
// whitespace. The bodies share one private copy of body, so the caller may
// reuse body as soon as Parse returns: that matters because a committed batch
// can outlive the request that submitted it (see Committer.Submit).
//
// Parse is all-or-nothing: on the first bad event it returns nil and a
// *LineError. An empty body gives no events and no error. Each event must be
// valid UTF-8 JSON, an object, and at most Limits.MaxEventBytes long.
//
// Only the three required fields are read, and only as top-level keys. A
// required field that appears twice at the top level is an error, because
// JSON parsers disagree on which copy wins and the agent must read the same
// value as the customer's SIEM. The event name and message id must be
// non-empty strings of at most 256 bytes without control characters. The
// timestamp is one of:
//
//   - a JSON number of epoch milliseconds (a fraction is dropped);
//   - a string of decimal digits, read as epoch milliseconds;
//   - an RFC 3339 string, with or without fractional seconds.
//
// It must lie between MinTime and MaxFuture past the agent's clock. A number
// that would fit once read as seconds, microseconds or nanoseconds gets an
// error that says so.
func Parse(body []byte, f Fields, lim Limits) ([]store.Event, error) {
	return ParseAt(body, f, lim, clock.Real{}.Now())
}

// ParseAt is Parse with the agent's clock read by the caller: timestamps
// are checked against now, so an agent run on a clock other than the
// system's (tests, replays) judges "too far in the future" by that clock.
func ParseAt(body []byte, f Fields, lim Limits, now time.Time) ([]store.Event, error) {
	return newParser(f, lim, now).parse(body)
}

// parser holds what stays the same for every event of one body.
type parser struct {
	names    [numFields]string
	maxBytes int
	window   timeWindow
}

func newParser(f Fields, lim Limits, now time.Time) *parser {
	f = f.withDefaults()
	p := &parser{
		names:    [numFields]string{f.Timestamp, f.EventName, f.MessageID},
		maxBytes: lim.MaxEventBytes,
		window:   newTimeWindow(now),
	}
	if p.maxBytes <= 0 {
		p.maxBytes = DefaultMaxEventBytes
	}
	return p
}

func (p *parser) parse(body []byte) ([]store.Event, error) {
	body = bytes.Clone(body)
	i := skipSpace(body, 0)
	if i < len(body) && body[i] == '[' {
		return p.parseArray(body, i)
	}
	return p.parseLines(body)
}

var (
	newline = []byte{'\n'}
	utf8BOM = []byte{0xEF, 0xBB, 0xBF}
)

// parseLines parses an NDJSON body.
func (p *parser) parseLines(body []byte) ([]store.Event, error) {
	events := make([]store.Event, 0, bytes.Count(body, newline)+1)
	for n := 1; len(body) > 0; n++ {
		var line []byte
		line, body, _ = bytes.Cut(body, newline)
		// Trailing spaces (and the CR of CRLF) never matter; leading ones
		// are kept until the JSON check so error offsets match the line.
		line = line[:trimRight(line)]
		if skipSpace(line, 0) == len(line) {
			continue
		}
		ev, err := p.event(line, n, false)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return events, nil
}

// parseArray parses a JSON array body; i is the index of its '['.
func (p *parser) parseArray(body []byte, i int) ([]store.Event, error) {
	var events []store.Event
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return finish(events, checkTail(body, i+1))
	}
	for n := 1; ; n++ {
		if i >= len(body) {
			return nil, &LineError{Reason: "the JSON array is not closed; expected ']' at the end of the body"}
		}
		ev, end, err := p.element(body, i, n)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)

		i = skipSpace(body, end)
		switch {
		case i >= len(body):
			return nil, &LineError{Reason: "the JSON array is not closed; expected ']' at the end of the body"}
		case body[i] == ']':
			return finish(events, checkTail(body, i+1))
		case body[i] != ',':
			return nil, &LineError{Line: n, Element: true,
				Reason: fmt.Sprintf("expected ',' or ']' after the element, found %q", body[i])}
		}
		i = skipSpace(body, i+1)
		if i < len(body) && body[i] == ']' {
			return nil, &LineError{Line: n + 1, Element: true, Reason: "expected an event after ',', found ']' (trailing comma)"}
		}
	}
}

// finish keeps Parse all-or-nothing: events or an error, never both.
func finish(events []store.Event, err error) ([]store.Event, error) {
	if err != nil {
		return nil, err
	}
	return events, nil
}

// checkTail rejects anything but whitespace after the array's closing ']'.
func checkTail(body []byte, i int) error {
	if skipSpace(body, i) < len(body) {
		return &LineError{Reason: "unexpected data after the closing ']' of the JSON array; send one array or NDJSON"}
	}
	return nil
}

// element parses the n-th element of an array body, which starts at
// body[i], and returns the index just past it.
func (p *parser) element(body []byte, i, n int) (store.Event, int, error) {
	if body[i] == '{' {
		var top topFields
		if end := scanObject(body[i:], &p.names, &top); end > 0 {
			obj := body[i : i+end]
			if err := p.checkSize(obj, n, true); err != nil {
				return store.Event{}, 0, err
			}
			ev, err := p.fields(obj, &top, n, true)
			return ev, i + end, err
		}
	}
	// Not a valid object: delimit the element by its brackets and quotes
	// alone, so that the error describes the element as sent.
	end := valueEnd(body, i)
	if end == i {
		return store.Event{}, 0, &LineError{Line: n, Element: true,
			Reason: fmt.Sprintf("expected an event object, found %q", body[i])}
	}
	ev, err := p.event(body[i:end], n, true)
	return ev, end, err
}

// event validates one event. raw has no trailing whitespace but may have
// leading whitespace, so that a syntax error's offset counts from the start
// of the line as sent.
func (p *parser) event(raw []byte, n int, elem bool) (store.Event, error) {
	fail := func(reason string) (store.Event, error) {
		return store.Event{}, &LineError{Line: n, Element: elem, Reason: reason}
	}
	body := raw[skipSpace(raw, 0):]
	if err := p.checkSize(body, n, elem); err != nil {
		return store.Event{}, err
	}
	if body[0] != '{' {
		if !validJSON(body) {
			return fail(syntaxReason(raw, elem))
		}
		return fail(fmt.Sprintf("event is a JSON %s, not an object; every event must be a JSON object", kind(body)))
	}
	var top topFields
	if scanObject(body, &p.names, &top) != len(body) {
		return fail(syntaxReason(raw, elem))
	}
	return p.fields(body, &top, n, elem)
}

// checkSize enforces Limits.MaxEventBytes on an event without surrounding
// whitespace.
func (p *parser) checkSize(body []byte, n int, elem bool) error {
	if len(body) > p.maxBytes {
		return &LineError{Line: n, Element: elem, TooLarge: true,
			Reason: fmt.Sprintf("event is %d bytes; the limit is %d bytes", len(body), p.maxBytes)}
	}
	return nil
}

// fields checks the required fields that scanObject found in the valid
// object body and makes the event.
func (p *parser) fields(body []byte, top *topFields, n int, elem bool) (store.Event, error) {
	fail := func(field, reason string) (store.Event, error) {
		return store.Event{}, &LineError{Line: n, Element: elem, Field: field, Reason: reason}
	}
	if top.badUTF8 {
		return fail("", "event is not valid UTF-8")
	}
	for i, name := range p.names {
		if top.dup[i] {
			return fail(name, "appears more than once at the top level; send it once")
		}
		if top.vals[i] == nil {
			return fail(name, missingReason(i, name, top.folded[i]))
		}
	}

	ts, reason := p.window.parse(top.vals[fieldTimestamp])
	if reason != "" {
		return fail(p.names[fieldTimestamp], reason)
	}
	name, reason := requiredString(top.vals[fieldEventName], p.names[fieldEventName], MaxEventNameBytes)
	if reason != "" {
		return fail(p.names[fieldEventName], reason)
	}
	id, reason := requiredString(top.vals[fieldMessageID], p.names[fieldMessageID], MaxMessageIDBytes)
	if reason != "" {
		return fail(p.names[fieldMessageID], reason)
	}
	// The full slice expression keeps an append to one Body from
	// overwriting the next event in the shared copy.
	return store.Event{MessageID: id, EventName: name, TimeMs: ts, Body: body[:len(body):len(body)]}, nil
}

// syntaxReason explains why raw is not valid JSON. It runs only on the error
// path, so the cost of a second pass does not matter.
func syntaxReason(raw []byte, elem bool) string {
	var se *json.SyntaxError
	err := json.Unmarshal(raw, new(json.RawMessage))
	if !errors.As(err, &se) {
		return "invalid JSON"
	}
	// Offset counts the bytes read up to and including the bad one, so it
	// is the bad byte's 1-based position.
	msg := se.Error()
	reason := fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, msg)
	switch {
	case bytes.HasPrefix(raw[skipSpace(raw, 0):], utf8BOM):
		reason += "; remove the UTF-8 byte order mark at the start of the body"
	case !elem && (strings.Contains(msg, "end of JSON input") || strings.Contains(msg, "EOF")):
		// Typically a pretty-printed event split over several lines.
		reason += "; NDJSON needs each event complete on one line"
	}
	return reason
}

// missingReason explains a missing required field, pointing out a key that
// differs only in case since that is the usual cause.
func missingReason(i int, name, folded string) string {
	reason := "missing"
	if folded != "" {
		reason = fmt.Sprintf("missing (found %q; field names are case-sensitive)", folded)
	}
	if i == fieldTimestamp {
		return reason + fmt.Sprintf("; every event needs a %s in epoch milliseconds or RFC 3339", name)
	}
	return reason + fmt.Sprintf("; every event needs a non-empty string %s", name)
}

// requiredString reads a required non-empty string field.
func requiredString(raw []byte, name string, limit int) (string, string) {
	if raw[0] != '"' {
		return "", fmt.Sprintf("must be a string, got a JSON %s; every event needs a non-empty string %s", kind(raw), name)
	}
	s, ok := stringValue(raw)
	switch {
	case !ok:
		return "", "is not a valid JSON string"
	case s == "":
		return "", "is empty; every event needs a non-empty string " + name
	case len(s) > limit:
		return "", fmt.Sprintf("is %d bytes; the limit is %d bytes", len(s), limit)
	case hasControl(s):
		return "", "contains a control character; it is used in storage keys and must be printable"
	}
	return s, ""
}

// hasControl reports whether s holds an ASCII control character (including
// NUL, which PostgreSQL text columns reject).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// kind names the JSON type of a valid value for error messages.
func kind(raw []byte) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
