package ocsf

import (
	"encoding/json"
	"strings"
	"testing"
)

func testMapper(t testing.TB, cfg Config) *Mapper {
	t.Helper()
	if cfg.VendorName == "" {
		cfg.VendorName = "Acme"
		cfg.ProductName = "Acme Cloud"
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	return out
}

// get follows a dotted path through decoded JSON.
func get(doc map[string]any, path string) any {
	var cur any = doc
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

const (
	tsMillis = 1764064800123 // 2025-11-25T10:00:00.123Z
	tsText   = `"2025-11-25T10:00:00.123Z"`
)

func TestMapDefaultRules(t *testing.T) {
	m := testMapper(t, Config{})
	common := `"messageId":"m-1","actor":{"id":"usr_1","email":"a@example.com","name":"Ann"},` +
		`"context":{"ip":"10.1.2.3","userAgent":"curl/8"},"location":{"city":"Lyon","country":"FR"}`
	tests := []struct {
		name  string
		event string
		class int32
		want  map[string]any // path -> value (numbers as float64)
	}{
		{"login", `{"timestamp":` + tsText + `,"eventName":"user.login",` + common + `,"outcome":"success"}`, 3002, map[string]any{
			"activity_id": 1.0, "activity_name": "Logon", "type_uid": 300201.0, "category_uid": 3.0,
			"user.uid": "usr_1", "user.email_addr": "a@example.com", "actor.user.name": "Ann",
			"src_endpoint.ip": "10.1.2.3", "src_endpoint.location.city": "Lyon", "src_endpoint.location.country": "FR",
			"http_request.user_agent": "curl/8", "status_id": 1.0, "status": "Success",
		}},
		{"login failed", `{"timestamp":` + tsText + `,"eventName":"user.login_failed",` + common + `,"outcome":"denied"}`, 3002, map[string]any{
			"status_id": 2.0, "status": "Failure", "type_uid": 300201.0,
		}},
		{"logout", `{"timestamp":1764064800123,"eventName":"user.logout",` + common + `}`, 3002, map[string]any{
			"activity_id": 2.0, "type_uid": 300202.0,
		}},
		{"user created", `{"timestamp":"1764064800123","eventName":"user.created",` + common + `,"target":{"id":"usr_2","type":"user"}}`, 3001, map[string]any{
			"activity_id": 1.0, "type_uid": 300101.0, "user.uid": "usr_2", "actor.user.uid": "usr_1",
			"unmapped.target.type": "user",
		}},
		{"role granted", `{"timestamp":` + tsText + `,"eventName":"role.granted",` + common + `,"target":{"id":"usr_2"},"role":{"name":"admin"}}`, 3001, map[string]any{
			"activity_id": 7.0, "policy.name": "admin", "type_uid": 300107.0,
		}},
		{"entity updated", `{"timestamp":` + tsText + `,"eventName":"document.updated",` + common + `,"target":{"id":"doc_9","type":"document"}}`, 3004, map[string]any{
			"activity_id": 3.0, "entity.uid": "doc_9", "entity.type": "document", "type_uid": 300403.0,
		}},
		{"api", `{"timestamp":` + tsText + `,"eventName":"billing.invoice.paid",` + common + `}`, 6003, map[string]any{
			"activity_id": 99.0, "activity_name": "billing.invoice.paid", "api.operation": "billing.invoice.paid",
			"type_uid": 600399.0, "category_uid": 6.0, "src_endpoint.ip": "10.1.2.3",
		}},
		{"api without ip falls back to base", `{"timestamp":` + tsText + `,"eventName":"billing.invoice.paid","messageId":"m-1","actor":{"id":"usr_1"},"amount":12}`, 0, map[string]any{
			"activity_id": 99.0, "type_uid": 99.0, "category_uid": 0.0, "unmapped.actor.id": "usr_1", "unmapped.amount": 12.0,
		}},
		{"entity without target falls back to base", `{"timestamp":` + tsText + `,"eventName":"x.deleted","messageId":"m-1"}`, 0, map[string]any{
			"class_uid": 0.0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.event)
			ev, err := m.Map(raw, 42)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ClassUID != tt.class || ev.Time != tsMillis || ev.Seq != 42 {
				t.Fatalf("class %d time %d seq %d, want class %d time %d", ev.ClassUID, ev.Time, ev.Seq, tt.class, tsMillis)
			}
			if err := Validate(ev.JSON); err != nil {
				t.Fatalf("invalid OCSF: %v\n%s", err, ev.JSON)
			}
			doc := decode(t, ev.JSON)
			if u, ok := doc["unmapped"].(map[string]any); ok {
				// unmapped is an object; tests address it by path.
				doc["unmapped"] = u
			}
			base := map[string]any{
				"class_uid": float64(tt.class), "time": float64(tsMillis), "severity_id": 1.0, "severity": "Informational",
				"metadata.version": "1.3.0", "metadata.uid": "m-1", "metadata.product.vendor_name": "Acme",
				"metadata.product.name": "Acme Cloud", "raw_data": tt.event,
			}
			for k, v := range tt.want {
				base[k] = v
			}
			for path, want := range base {
				if got := get(doc, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			if t.Failed() {
				t.Logf("%s", ev.JSON)
			}
		})
	}
}

func TestMapConfig(t *testing.T) {
	off := false
	m := testMapper(t, Config{
		RawData:        &off,
		DefaultRules:   &off,
		EventNameField: "type",
		TimestampField: "ts",
		MessageIDField: "id",
		Rules: []Rule{{
			Event: "invoice.*", Class: "API Activity", Activity: "update", Severity: "low",
			Fields: map[string]string{
				"api.operation":               "$eventName",
				"actor.user.email_addr":       "who.mail|who.email",
				"src_endpoint.ip":             "net.addrs.1",
				"src_endpoint.port":           "net.port",
				"status_id":                   "res",
				"metadata.labels":             "tags",
				"src_endpoint.location.lat":   "net.lat",
				"http_request.length":         "net.len",
				"http_request.url.url_string": "net.url",
			},
			Values: map[string]map[string]string{"status_id": {"paid": "Success"}},
		}},
	})
	raw := `{"ts":1764064800123,"type":"invoice.paid","id":"i-1","who":{"email":"b@example.com"},` +
		`"net":{"addrs":["1.1.1.1","2.2.2.2"],"port":"8443","lat":45.7,"len":12,"url":"https://x"},"res":"paid","tags":["a","b"]}`
	ev, err := m.Map([]byte(raw), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(ev.JSON); err != nil {
		t.Fatalf("invalid OCSF: %v\n%s", err, ev.JSON)
	}
	doc := decode(t, ev.JSON)
	want := map[string]any{
		"class_uid": 6003.0, "activity_id": 3.0, "type_uid": 600303.0, "severity_id": 2.0, "severity": "Low",
		"api.operation": "invoice.paid", "actor.user.email_addr": "b@example.com", "src_endpoint.ip": "2.2.2.2",
		"src_endpoint.port": 8443.0, "status_id": 1.0, "status": "Success", "metadata.uid": "i-1",
		"src_endpoint.location.lat": 45.7, "http_request.length": 12.0, "http_request.url.url_string": "https://x",
		"raw_data": nil, "unmapped.net.port": nil, "unmapped.res": nil, "unmapped.who": nil,
	}
	for path, w := range want {
		if got := get(doc, path); got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
	if got, _ := json.Marshal(get(doc, "metadata.labels")); string(got) != `["a","b"]` {
		t.Errorf("metadata.labels = %s", got)
	}
	// An event no declared rule matches is a Base Event.
	ev, err = m.Map([]byte(`{"ts":1764064800123,"type":"other","id":"i-2"}`), 2)
	if err != nil || ev.ClassUID != 0 {
		t.Fatalf("class %d, %v", ev.ClassUID, err)
	}
	if err := Validate(ev.JSON); err != nil {
		t.Fatalf("invalid OCSF: %v\n%s", err, ev.JSON)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"vendor", Config{VendorName: "-"}, nil},
		{"no vendor", Config{VendorName: ""}, []string{"vendor_name is required"}},
		{"class", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "authentification"}}}, []string{`class "authentification"`, `did you mean "authentication"`}},
		{"class uid", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "4001"}}}, []string{`class "4001" is not an OCSF class`}},
		{"activity", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Activity: "logn"}}}, []string{`"logn" is not a value of activity_id`, `did you mean "Logon"`}},
		{"activity id", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Activity: "42"}}}, []string{"42 is not a value of activity_id"}},
		{"severity", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Severity: "hgih"}}}, []string{`did you mean "High"`}},
		{"attribute", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"src_endpoint.ipp": "ip"}}}}, []string{`network_endpoint has no attribute "ipp"`, `did you mean "ip"`}},
		{"top attribute", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"usr.uid": "ip"}}}}, []string{`authentication has no attribute "usr"`, `did you mean "user"`}},
		{"object target", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"src_endpoint": "ip"}}}}, []string{"is a network_endpoint object; map its attributes"}},
		{"derived", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"type_uid": "ip"}}}}, []string{"class_uid * 100 + activity_id"}},
		{"derived product", Config{VendorName: "A", Fields: map[string]string{"metadata.product.name": "p"}}, []string{"product_name"}},
		{"scalar parent", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"message.x": "ip"}}}}, []string{"message is a string, not an object"}},
		{"unexpanded object", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"actor.process.name": "p"}}}}, []string{"process object, whose attributes this version does not map"}},
		{"empty path", Config{VendorName: "A", Rules: []Rule{{Event: "x", Class: "3002", Fields: map[string]string{"message": "a..b"}}}}, []string{"empty segment"}},
		{"common nowhere", Config{VendorName: "A", Fields: map[string]string{"src_endpoint.ipp": "ip"}}, []string{`"src_endpoint.ipp" fits no rule's class`, `did you mean "ip"`}},
		{"values", Config{VendorName: "A", Values: map[string]map[string]string{"status_id": {"ok": "Fine"}}}, []string{`"Fine" is not a value of status_id`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"user.login*", "user.login", true},
		{"user.login*", "user.login_failed", true},
		{"user.login*", "user.logout", false},
		{"*.created", "document.created", true},
		{"*.created", "document.created.x", false},
		{"*", "", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a*b", "xxaxxb", true},
		{"*a*b", "xxaxxbc", false},
		{"exact", "exact", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}
