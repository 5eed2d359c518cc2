package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/store"
)

// testNow is the agent's clock in the parse tests.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// nowMs is testNow in Unix milliseconds: 1748779200000.
var nowMs = testNow.UnixMilli()

func parseAt(body string, f Fields, lim Limits) ([]store.Event, error) {
	return newParser(f, lim, testNow).parse([]byte(body))
}

func TestParseValid(t *testing.T) {
	const (
		a = `{"timestamp":1748779200000,"eventName":"user.login","messageId":"m1"}`
		b = `{"messageId":"m2","eventName":"user.logout","timestamp":"2025-06-01T12:00:00Z"}`
	)
	cases := []struct {
		name   string
		body   string
		fields Fields
		want   []store.Event
	}{
		{
			name: "one line without newline",
			body: a,
			want: []store.Event{{MessageID: "m1", EventName: "user.login", TimeMs: nowMs, Body: []byte(a)}},
		},
		{
			name: "blank lines CRLF and surrounding spaces",
			body: "\r\n  " + a + " \t\r\n\n   \n" + b + "\r\n",
			want: []store.Event{
				{MessageID: "m1", EventName: "user.login", TimeMs: nowMs, Body: []byte(a)},
				{MessageID: "m2", EventName: "user.logout", TimeMs: nowMs, Body: []byte(b)},
			},
		},
		{
			name: "array with whitespace",
			body: " [\n  " + a + " ,\n\t" + b + "\n]\n",
			want: []store.Event{
				{MessageID: "m1", EventName: "user.login", TimeMs: nowMs, Body: []byte(a)},
				{MessageID: "m2", EventName: "user.logout", TimeMs: nowMs, Body: []byte(b)},
			},
		},
		{
			name: "bytes kept as sent",
			body: `{ "z" : 1.0 , "big":12345678901234567890, "e":1E2, "timestamp" : 1748779200000 , "eventName":"x", "messageId":"m1", "u":"\u00e9" }`,
			want: []store.Event{{MessageID: "m1", EventName: "x", TimeMs: nowMs,
				Body: []byte(`{ "z" : 1.0 , "big":12345678901234567890, "e":1E2, "timestamp" : 1748779200000 , "eventName":"x", "messageId":"m1", "u":"\u00e9" }`)}},
		},
		{
			name: "nested fields with the same names are ignored",
			body: `{"actor":{"messageId":"inner","eventName":"inner","timestamp":1},"list":[{"messageId":"x"}],"timestamp":1748779200000,"eventName":"outer","messageId":"outer"}`,
			want: []store.Event{{MessageID: "outer", EventName: "outer", TimeMs: nowMs,
				Body: []byte(`{"actor":{"messageId":"inner","eventName":"inner","timestamp":1},"list":[{"messageId":"x"}],"timestamp":1748779200000,"eventName":"outer","messageId":"outer"}`)}},
		},
		{
			name: "strings holding brackets quotes and escapes",
			body: `{"s":"}]{[\"\\","eventName":"a\"b\\","messageId":"m\u00e9","timestamp":1748779200000}`,
			want: []store.Event{{MessageID: "mé", EventName: `a"b\`, TimeMs: nowMs,
				Body: []byte(`{"s":"}]{[\"\\","eventName":"a\"b\\","messageId":"m\u00e9","timestamp":1748779200000}`)}},
		},
		{
			name: "escaped key names the field",
			body: `{"message\u0049d":"m1","eventName":"x","timestamp":1748779200000}`,
			want: []store.Event{{MessageID: "m1", EventName: "x", TimeMs: nowMs,
				Body: []byte(`{"message\u0049d":"m1","eventName":"x","timestamp":1748779200000}`)}},
		},
		{
			name:   "custom field names",
			body:   `{"published":"2025-06-01T12:00:00.250Z","eventType":"user.session.start","uuid":"u1","timestamp":"junk"}`,
			fields: Fields{Timestamp: "published", EventName: "eventType", MessageID: "uuid"},
			want: []store.Event{{MessageID: "u1", EventName: "user.session.start", TimeMs: nowMs + 250,
				Body: []byte(`{"published":"2025-06-01T12:00:00.250Z","eventType":"user.session.start","uuid":"u1","timestamp":"junk"}`)}},
		},
		{
			name: "empty body",
			body: "",
		},
		{
			name: "blank body",
			body: " \r\n\n\t",
		},
		{
			name: "empty array",
			body: " [ ] \n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAt(tc.body, tc.fields, Limits{})
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			assertEvents(t, got, tc.want)
		})
	}
}

func assertEvents(t *testing.T, got, want []store.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.MessageID != w.MessageID || g.EventName != w.EventName || g.TimeMs != w.TimeMs || string(g.Body) != string(w.Body) {
			t.Errorf("event %d:\n got  %q %q %d %s\n want %q %q %d %s", i,
				g.MessageID, g.EventName, g.TimeMs, g.Body, w.MessageID, w.EventName, w.TimeMs, w.Body)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		name    string
		ts      string // raw JSON value of the timestamp field
		want    int64
		wantErr string
	}{
		{name: "epoch ms", ts: `1748779200000`, want: nowMs},
		{name: "epoch ms with fraction", ts: `1748779200000.9`, want: nowMs},
		{name: "epoch ms with exponent", ts: `1.7487792e12`, want: nowMs},
		{name: "numeric string", ts: `"1748779200000"`, want: nowMs},
		{name: "RFC 3339", ts: `"2025-06-01T12:00:00Z"`, want: nowMs},
		{name: "RFC 3339 fraction", ts: `"2025-06-01T12:00:00.123456789Z"`, want: nowMs + 123},
		{name: "RFC 3339 offset", ts: `"2025-06-01T14:00:00.5+02:00"`, want: nowMs + 500},
		{name: "start of 2000", ts: `946684800000`, want: 946684800000},
		{name: "a day ahead", ts: `1748865600000`, want: nowMs + 24*3600*1000},

		{name: "epoch seconds", ts: `1748779200`,
			wantErr: `line 1: field "timestamp": 1748779200 looks like epoch seconds; send milliseconds (1748779200000)`},
		{name: "epoch seconds string", ts: `"1748779200"`, wantErr: "looks like epoch seconds; send milliseconds"},
		{name: "epoch seconds float", ts: `1748779200.123`, wantErr: "looks like epoch seconds; send milliseconds"},
		{name: "epoch microseconds", ts: `1748779200000000`, wantErr: "looks like epoch microseconds; send milliseconds (1748779200000)"},
		{name: "epoch nanoseconds", ts: `1748779200000000000`, wantErr: "looks like epoch nanoseconds; send milliseconds (1748779200000)"},
		{name: "before 2000", ts: `946684799999`, wantErr: "is before 2000-01-01"},
		{name: "before 2000 RFC 3339", ts: `"1999-12-31T23:59:59Z"`, wantErr: "is before 2000-01-01"},
		{name: "negative", ts: `-5`, wantErr: "is before 2000-01-01"},
		{name: "zero", ts: `0`, wantErr: "is before 2000-01-01"},
		{name: "far future", ts: `"2025-06-02T12:00:00.001Z"`, wantErr: "ahead of the agent's clock"},
		{name: "huge number", ts: `1e300`, wantErr: "out of range"},
		{name: "no time zone", ts: `"2025-06-01T12:00:00"`, wantErr: "has no time zone"},
		{name: "not a time", ts: `"yesterday"`, wantErr: `"yesterday" is neither an RFC 3339 time`},
		{name: "empty string", ts: `""`, wantErr: "is neither an RFC 3339 time"},
		{name: "null", ts: `null`, wantErr: "must be epoch milliseconds (a number) or an RFC 3339 string, got a JSON null"},
		{name: "object", ts: `{"ms":1}`, wantErr: "got a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"eventName":"e","messageId":"m","timestamp":` + tc.ts + `}`
			got, err := parseAt(body, Fields{}, Limits{})
			if tc.wantErr != "" {
				_ = assertLineError(t, err, 1, "timestamp", tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got[0].TimeMs != tc.want {
				t.Errorf("TimeMs = %d, want %d", got[0].TimeMs, tc.want)
			}
		})
	}
}

// assertLineError checks that err is a *LineError for line and field whose
// message contains want.
func assertLineError(t *testing.T, err error, line int, field, want string) *LineError {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("got error %v (%T), want a *LineError", err, err)
	}
	if le.Line != line || le.Field != field {
		t.Errorf("got line %d field %q, want line %d field %q (%v)", le.Line, le.Field, line, field, err)
	}
	if !strings.Contains(le.Error(), want) {
		t.Errorf("error %q does not contain %q", le.Error(), want)
	}
	return le
}

func TestParseInvalid(t *testing.T) {
	const good = `{"timestamp":1748779200000,"eventName":"e","messageId":"m"}`
	long := strings.Repeat("x", MaxMessageIDBytes+1)
	cases := []struct {
		name     string
		body     string
		line     int
		element  bool
		field    string
		want     string
		tooLarge bool
	}{
		{
			name:  "missing messageId",
			body:  good + "\n" + good + "\n" + `{"timestamp":1748779200000,"eventName":"e"}` + "\n",
			line:  3,
			field: "messageId",
			want:  `line 3: field "messageId": missing; every event needs a non-empty string messageId`,
		},
		{
			name:  "first bad line wins",
			body:  good + "\n" + `{"timestamp":1748779200000,"messageId":"m"}` + "\n" + good + "\n{",
			line:  2,
			field: "eventName",
			want:  `line 2: field "eventName": missing; every event needs a non-empty string eventName`,
		},
		{
			name:  "blank lines count",
			body:  "\n\r\n" + `{"eventName":"e","messageId":"m"}`,
			line:  3,
			field: "timestamp",
			want:  `line 3: field "timestamp": missing; every event needs a timestamp in epoch milliseconds or RFC 3339`,
		},
		{
			name:  "field name differs in case",
			body:  `{"timestamp":1748779200000,"eventName":"e","MessageID":"m"}`,
			line:  1,
			field: "messageId",
			want:  `missing (found "MessageID"; field names are case-sensitive)`,
		},
		{
			name:  "only nested messageId",
			body:  `{"timestamp":1748779200000,"eventName":"e","meta":{"messageId":"m"}}`,
			line:  1,
			field: "messageId",
			want:  "missing",
		},
		{
			name:  "empty messageId",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":""}`,
			line:  1,
			field: "messageId",
			want:  "is empty; every event needs a non-empty string messageId",
		},
		{
			name:  "numeric messageId",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":42}`,
			line:  1,
			field: "messageId",
			want:  "must be a string, got a JSON number",
		},
		{
			name:  "messageId too long",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":"` + long + `"}`,
			line:  1,
			field: "messageId",
			want:  "is 257 bytes; the limit is 256 bytes",
		},
		{
			name:  "messageId with NUL",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":"a\u0000b"}`,
			line:  1,
			field: "messageId",
			want:  "contains a control character",
		},
		{
			name:  "null eventName",
			body:  `{"timestamp":1748779200000,"eventName":null,"messageId":"m"}`,
			line:  1,
			field: "eventName",
			want:  "must be a string, got a JSON null",
		},
		{
			name:  "duplicate top-level messageId",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":"a","messageId":"b"}`,
			line:  1,
			field: "messageId",
			want:  "appears more than once at the top level",
		},
		{
			name:  "duplicate through an escaped key",
			body:  `{"timestamp":1748779200000,"eventName":"e","messageId":"a","message\u0049d":"b"}`,
			line:  1,
			field: "messageId",
			want:  "appears more than once",
		},
		{
			name: "invalid JSON",
			body: good + "\n" + `{"timestamp":1748779200000,"eventName":"e","messageId":"m",}`,
			line: 2,
			want: "line 2: invalid JSON at byte 60: invalid character '}' looking for beginning of object key string",
		},
		{
			name: "invalid JSON offset counts leading spaces",
			body: `   {"a":x}`,
			line: 1,
			want: "invalid JSON at byte 9:",
		},
		{
			name: "pretty-printed event",
			body: "{\n  \"timestamp\": 1748779200000\n}",
			line: 1,
			want: "NDJSON needs each event complete on one line",
		},
		{
			name: "byte order mark",
			body: "\xEF\xBB\xBF" + good,
			line: 1,
			want: "remove the UTF-8 byte order mark",
		},
		{
			name: "array on a later line",
			body: good + "\n[" + good + "]",
			line: 2,
			want: "line 2: event is a JSON array, not an object",
		},
		{
			name: "string event",
			body: `"hello"`,
			line: 1,
			want: "event is a JSON string, not an object",
		},
		{
			name: "invalid UTF-8",
			body: `{"timestamp":1748779200000,"eventName":"e","messageId":"m","x":"` + "\xff" + `"}`,
			line: 1,
			want: "event is not valid UTF-8",
		},
		{
			name: "data after the object",
			body: good + ` {"x":1}`,
			line: 1,
			want: "line 1: invalid JSON at byte 61: invalid character '{' after top-level value",
		},
		{
			name: "nesting too deep",
			body: `{"timestamp":1748779200000,"eventName":"e","messageId":"m","x":` + nest(10001) + `}`,
			line: 1,
			want: "exceeded max depth",
		},
		{
			name: "invalid JSON before invalid UTF-8",
			body: "{\"x\":\"\xff\",}",
			line: 1,
			want: "invalid JSON at byte 10: invalid character '}' looking for beginning of object key string",
		},
		{
			name: "invalid JSON that is not an object",
			body: good + "\n" + `[1,`,
			line: 2,
			want: "line 2: invalid JSON at byte 3",
		},
		{
			name:    "invalid UTF-8 in an array element",
			body:    `[` + good + `,{"timestamp":1748779200000,"eventName":"e","messageId":"m","x":"` + "\xc3\x28" + `"}]`,
			line:    2,
			element: true,
			want:    "element 2: event is not valid UTF-8",
		},
		{
			name:     "array element too large",
			body:     `[` + good + `,{"pad":"` + strings.Repeat("p", 200) + `"}]`,
			line:     2,
			element:  true,
			want:     "element 2: event is 210 bytes; the limit is 100 bytes",
			tooLarge: true,
		},
		{
			name:     "event too large and invalid",
			body:     `{"pad":"` + strings.Repeat("p", 200) + `",}`,
			line:     1,
			want:     "line 1: event is 211 bytes; the limit is 100 bytes",
			tooLarge: true,
		},
		{
			name:     "event too large",
			body:     good + "\n" + `{"pad":"` + strings.Repeat("p", 200) + `"}`,
			line:     2,
			want:     "line 2: event is 210 bytes; the limit is 100 bytes",
			tooLarge: true,
		},
		{
			name:    "bad array element",
			body:    `[` + good + `,{"timestamp":1748779200000,"eventName":"e"}]`,
			line:    2,
			element: true,
			field:   "messageId",
			want:    `element 2: field "messageId": missing`,
		},
		{
			name:    "non-object array element",
			body:    `[` + good + `, 7]`,
			line:    2,
			element: true,
			want:    "element 2: event is a JSON number, not an object",
		},
		{
			name:    "invalid JSON in an array element",
			body:    `[{"a":tru}]`,
			line:    1,
			element: true,
			want:    "element 1: invalid JSON at byte",
		},
		{
			name:    "missing comma",
			body:    `[` + good + ` ` + good + `]`,
			line:    1,
			element: true,
			want:    `element 1: expected ',' or ']' after the element, found '{'`,
		},
		{
			name:    "trailing comma",
			body:    `[` + good + `,]`,
			line:    2,
			element: true,
			want:    "trailing comma",
		},
		{
			name:    "leading comma",
			body:    `[,` + good + `]`,
			line:    1,
			element: true,
			want:    `expected an event object, found ','`,
		},
		{
			name: "array not closed",
			body: `[` + good + `,` + good,
			line: 0,
			want: "body: the JSON array is not closed",
		},
		{
			name: "data after the array",
			body: `[` + good + "]\n" + good,
			line: 0,
			want: "body: unexpected data after the closing ']'",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lim := Limits{}
			if tc.tooLarge {
				lim.MaxEventBytes = 100
			}
			events, err := parseAt(tc.body, Fields{}, lim)
			if events != nil {
				t.Errorf("got %d events with an error, want none", len(events))
			}
			le := assertLineError(t, err, tc.line, tc.field, tc.want)
			if le.Element != tc.element || le.TooLarge != tc.tooLarge {
				t.Errorf("Element, TooLarge = %v, %v; want %v, %v", le.Element, le.TooLarge, tc.element, tc.tooLarge)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	ev := `{"timestamp":1748779200000,"eventName":"e","messageId":"m"}`
	cases := []struct {
		name string
		max  int
		ok   bool
	}{
		{name: "exactly the limit", max: len(ev), ok: true},
		{name: "one byte over", max: len(ev) - 1},
		{name: "default limit", max: 0, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Surrounding whitespace does not count toward the limit.
			_, err := parseAt("  "+ev+"  \r\n", Fields{}, Limits{MaxEventBytes: tc.max})
			if tc.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.ok {
				var le *LineError
				if !errors.As(err, &le) || !le.TooLarge {
					t.Fatalf("got %v, want a TooLarge *LineError", err)
				}
			}
		})
	}
}

func TestParseDefaultSizeLimit(t *testing.T) {
	pad := strings.Repeat("p", DefaultMaxEventBytes)
	body := `{"timestamp":1748779200000,"eventName":"e","messageId":"m","pad":"` + pad + `"}`
	_, err := parseAt(body, Fields{}, Limits{})
	var le *LineError
	if !errors.As(err, &le) || !le.TooLarge {
		t.Fatalf("got %v, want a TooLarge *LineError", err)
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	input := []byte(`{"timestamp":"` + now + `","eventName":"e","messageId":"m"}` + "\n" +
		`{"timestamp":"` + now + `","eventName":"e","messageId":"n"}`)
	events, err := Parse(input, DefaultFields(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	first := string(events[0].Body)
	for i := range input {
		input[i] = 'X'
	}
	if string(events[0].Body) != first {
		t.Errorf("Body changed with the input: %s", events[0].Body)
	}
	// Appending to one body must not overwrite the next one.
	second := string(events[1].Body)
	_ = append(events[0].Body, "garbage"...)
	if string(events[1].Body) != second {
		t.Errorf("append to event 0 changed event 1: %s", events[1].Body)
	}
}

func TestLineErrorMessage(t *testing.T) {
	cases := []struct {
		err  LineError
		want string
	}{
		{LineError{Line: 3, Field: "messageId", Reason: "missing"}, `line 3: field "messageId": missing`},
		{LineError{Line: 2, Element: true, Reason: "bad"}, `element 2: bad`},
		{LineError{Reason: "not closed"}, `body: not closed`},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
