package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditexport/auditexport/internal/store"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"\n\n",
		`{"timestamp":1748779200000,"eventName":"user.login","messageId":"m1"}`,
		"{\"timestamp\":\"2025-06-01T12:00:00.5Z\",\"eventName\":\"a\",\"messageId\":\"b\"}\r\n\r\n" +
			"  {\"timestamp\":\"1748779200000\",\"eventName\":\"c\",\"messageId\":\"d\"}  \n",
		`[{"timestamp":1748779200000,"eventName":"a","messageId":"b"}, {"timestamp":1748779200000,"eventName":"c","messageId":"d"}]`,
		`[]`,
		`[{"timestamp":1748779200000,"eventName":"a","messageId":"b"},]`,
		`{"a":{"messageId":"x"},"message\u0049d":"m","eventName":"e\"\\","timestamp":1.7487792e12}`,
		`{"timestamp":1748779200000,"eventName":"e","messageId":"a","messageId":"b"}`,
		`{"timestamp":1748779200,"eventName":"e","messageId":"a"}`,
		`{"timestamp":"2025-06-01T12:00:00","eventName":"e","messageId":"a"}`,
		`{"s":"}]\"{[","timestamp":1748779200000,"eventName":"e","messageId":"a","n":[1,{"b":[]}]}`,
		"{\"timestamp\":1748779200000,\"eventName\":\"e\",\"messageId\":\"\xff\"}",
		`{"timestamp":1748779200000,"eventName":"e","messageId":"a"} {"x":1}`,
		`[{"a":1}`,
		`[1,"a",null]`,
		`{`,
		`"`,
		`[`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		events, err := newParser(DefaultFields(), Limits{}, testNow).parse(input)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 0 || le.Reason == "" {
				t.Fatalf("bad error %#v", err)
			}
			if events != nil {
				t.Fatalf("got %d events with error %v", len(events), err)
			}
			return
		}
		for i, ev := range events {
			checkEvent(t, i, ev, input)
		}
		if i := skipSpace(input, 0); i < len(input) && input[i] == '[' {
			checkArray(t, events, input)
			return
		}
		if want := nonBlankLines(input); len(events) != want {
			t.Fatalf("got %d events from %d non-blank lines", len(events), want)
		}
	})
}

// checkEvent checks one parsed event against encoding/json's reading of it.
func checkEvent(t *testing.T, i int, ev store.Event, input []byte) {
	t.Helper()
	if !json.Valid(ev.Body) || ev.Body[0] != '{' {
		t.Fatalf("event %d: body is not a JSON object: %q", i, ev.Body)
	}
	if !bytes.Contains(input, ev.Body) {
		t.Fatalf("event %d: body %q is not in the input", i, ev.Body)
	}
	if isSpace(ev.Body[0]) || isSpace(ev.Body[len(ev.Body)-1]) {
		t.Fatalf("event %d: body %q is not trimmed", i, ev.Body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(ev.Body, &top); err != nil {
		t.Fatalf("event %d: %v", i, err)
	}
	var id, name string
	if json.Unmarshal(top["messageId"], &id) != nil || id != ev.MessageID {
		t.Fatalf("event %d: messageId %q, encoding/json reads %s", i, ev.MessageID, top["messageId"])
	}
	if json.Unmarshal(top["eventName"], &name) != nil || name != ev.EventName {
		t.Fatalf("event %d: eventName %q, encoding/json reads %s", i, ev.EventName, top["eventName"])
	}
	if id == "" || len(id) > MaxMessageIDBytes || name == "" {
		t.Fatalf("event %d: bad messageId %q or eventName %q", i, id, name)
	}
	w := newTimeWindow(testNow)
	if ev.TimeMs < w.min || ev.TimeMs > w.max {
		t.Fatalf("event %d: TimeMs %d outside [%d, %d]", i, ev.TimeMs, w.min, w.max)
	}
}

// checkArray checks that the events are the array's elements, in order.
func checkArray(t *testing.T, events []store.Event, input []byte) {
	t.Helper()
	var elems []json.RawMessage
	if err := json.Unmarshal(input, &elems); err != nil {
		t.Fatalf("accepted an array that encoding/json rejects: %v", err)
	}
	if len(elems) != len(events) {
		t.Fatalf("got %d events from %d elements", len(events), len(elems))
	}
	for i := range elems {
		if !bytes.Equal(elems[i], events[i].Body) {
			t.Fatalf("event %d: body %q, element %q", i, events[i].Body, elems[i])
		}
	}
}

func nonBlankLines(input []byte) int {
	n := 0
	for _, line := range strings.Split(string(input), "\n") {
		if strings.Trim(line, " \t\r\n") != "" {
			n++
		}
	}
	return n
}

// FuzzScanObject checks the single-pass validator against encoding/json: it
// must accept exactly the inputs that json.Valid accepts, flag invalid UTF-8
// exactly when utf8.Valid would, and find the same top-level values that
// encoding/json decodes.
func FuzzScanObject(f *testing.F) {
	seeds := []string{
		`{}`,
		` {"a" : [1, -0.5e+3, true, false, null, {"b": {}}], "b":"\u00e9\"\\\/\b\f\n\r\t", "c":{}} `,
		`{"a":1,"a":2,"\u0061":3,"A":4}`,
		`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e+}`, `{"a":.5}`, `{"a":tru}`, `{"a":nulll}`,
		`{"a":"\u12g4"}`, `{"a":"\x"}`, "{\"a\":\"\t\"}", "{\"a\":\"\xff\"}", "{\"\xed\xa0\x80\":1}",
		`{"a":[1,]}`, `{"a":1,}`, `{"a":1}}`, `{"a":1} x`, `{"a":[}`, `{"a"1}`, `{"a":1`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`[1,{"a":2}]`, `"x"`, ` 7 `,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	names := [numFields]string{"a", "b", "messageId"}
	f.Fuzz(func(t *testing.T, input []byte) {
		want := json.Valid(input)
		if got := validJSON(input); got != want {
			t.Fatalf("validJSON = %v, json.Valid = %v", got, want)
		}
		if i := skipSpace(input, 0); i >= len(input) || input[i] != '{' {
			return
		}
		var top topFields
		if got := validObject(input, &names, &top); got != want {
			t.Fatalf("scanObject valid = %v, json.Valid = %v", got, want)
		}
		if !want {
			return
		}
		if top.badUTF8 == utf8.Valid(input) {
			t.Fatalf("badUTF8 = %v, utf8.Valid = %v", top.badUTF8, utf8.Valid(input))
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(input, &m); err != nil {
			t.Fatalf("encoding/json cannot decode an object it calls valid: %v", err)
		}
		for f, name := range names {
			raw, ok := m[name]
			switch {
			case top.dup[f]:
				// encoding/json keeps the last copy; the parser rejects the event.
			case ok != (top.vals[f] != nil) || !bytes.Equal(raw, top.vals[f]):
				t.Fatalf("%s = %q, encoding/json reads %q", name, top.vals[f], raw)
			}
		}
	})
}
