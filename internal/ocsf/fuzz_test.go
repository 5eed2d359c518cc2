package ocsf

import (
	"encoding/json"
	"testing"
)

// FuzzMapperPath fuzzes the event path of a mapping and the event: compiling
// either fails with an error or maps without panicking into valid JSON and
// valid OCSF.
func FuzzMapperPath(f *testing.F) {
	f.Add("actor.email", `{"actor":{"email":"a@b"}}`)
	f.Add("tags.1", `{"tags":["a","b"]}`)
	f.Add("a..b", `{}`)
	f.Add("x|y.z|", `{"y":{"z":3}}`)
	f.Add("$eventName", `{"n":"\u00e9\ud83d\ude00"}`)
	f.Add("deep.0.0.0", `{"deep":[[[1]]]}`)
	f.Fuzz(func(t *testing.T, path, extra string) {
		m, err := New(Config{VendorName: "A", Rules: []Rule{{Event: "e*", Class: "api_activity",
			Fields: map[string]string{"api.operation": path, "src_endpoint.ip": path, "metadata.labels": path, "src_endpoint.port": path}}}})
		if err != nil {
			return
		}
		if !json.Valid([]byte(extra)) || len(extra) == 0 || extra[0] != '{' {
			return
		}
		raw := `{"timestamp":1764064800123,"eventName":"ev","messageId":"m","x":` + extra + `}`
		if extra != "{}" {
			raw = `{"timestamp":1764064800123,"eventName":"ev","messageId":"m",` + extra[1:]
		}
		ev, err := m.Map([]byte(raw), 1)
		if err != nil {
			// Duplicate or odd top-level fields may make the event unusable;
			// only valid events must map.
			return
		}
		if !json.Valid(ev.JSON) {
			t.Fatalf("invalid JSON: %s", ev.JSON)
		}
		if err := Validate(ev.JSON); err != nil {
			t.Fatalf("invalid OCSF: %v\n%s", err, ev.JSON)
		}
	})
}

// FuzzParseJSON checks the mapper's JSON reader agrees with encoding/json
// on what is valid.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `"\ud800"`, `1e5`, `-0.5`, `[`, `{"a":}`, `tru`, `01`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := parseJSON([]byte(s))
		valid := json.Valid([]byte(s))
		tooDeep := valid && err != nil && depthExceeded(s)
		if valid != (err == nil) && !tooDeep {
			t.Fatalf("parseJSON(%q) error %v, encoding/json valid %v", s, err, valid)
		}
	})
}

func depthExceeded(s string) bool {
	d, maxD := 0, 0
	for _, c := range s {
		switch c {
		case '{', '[':
			d++
			maxD = max(maxD, d)
		case '}', ']':
			d--
		}
	}
	return maxD > maxDepth
}
