package ocsf

import (
	"fmt"
	"testing"
)

// TestDefaultMappingOutputValid maps an event for every built-in rule (and
// events that fall back to Base Event) and validates each output against
// the 1.3.0 required attributes and enums of its class; every class the
// default mapping emits is covered.
func TestDefaultMappingOutputValid(t *testing.T) {
	m := testMapper(t, Config{})
	shapes := []string{
		`"actor":{"id":"usr_1","email":"a@example.com","name":"Ann","type":"admin"},"target":{"id":"t_1","type":"project","name":"P"},` +
			`"context":{"ip":"10.0.0.1","userAgent":"UA","requestId":"r1"},"location":{"city":"Oslo","country":"NO","region":"Oslo"},"outcome":"failure","role":"admin","tenantId":"t-9","description":"d"`,
		`"user":{"id":"usr_2","email":"b@example.com"},"ip":"10.0.0.2","status":"weird"`,
		`"userId":"u3"`,
		``,
	}
	classes := map[int32]int{}
	for _, r := range DefaultRules {
		name := r.Event
		for _, from := range []string{"*", "?"} {
			name = replaceAll(name, from, "x")
		}
		for i, shape := range shapes {
			sep := ","
			if shape == "" {
				sep = ""
			}
			raw := fmt.Sprintf(`{"timestamp":1764064800123,"eventName":%q,"messageId":"m%d"%s%s}`, name, i, sep, shape)
			ev, err := m.Map([]byte(raw), int64(i))
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(ev.JSON); err != nil {
				t.Errorf("%s (shape %d): %v\n%s", name, i, err, ev.JSON)
			}
			checkAttributes(t, m, ev)
			classes[ev.ClassUID]++
		}
	}
	for _, c := range Classes() {
		if classes[c.UID] == 0 {
			t.Errorf("no output of class %s (%d)", c.Name, c.UID)
		}
	}
}

// checkAttributes asserts that every scalar the event holds is among the
// mapper's Attributes for its class, which columnar encoders rely on.
func checkAttributes(t *testing.T, m *Mapper, ev Event) {
	t.Helper()
	known := map[string]bool{}
	for _, p := range m.Attributes(ev.ClassUID) {
		known[p] = true
	}
	var walk func(v *Value, prefix string)
	walk = func(v *Value, prefix string) {
		for i := range v.Fields {
			f := &v.Fields[i]
			if f.Value.Kind == KindObject && !f.Value.Array {
				walk(&f.Value, prefix+f.Name+".")
				continue
			}
			if !known[prefix+f.Name] {
				t.Errorf("class %d: %s%s is set but not among Attributes", ev.ClassUID, prefix, f.Name)
			}
		}
	}
	root := ev.Value()
	walk(&root, "")
}

// TestAttributesPruned pins what Attributes leaves out and keeps.
func TestAttributesPruned(t *testing.T) {
	m := testMapper(t, Config{})
	off := false
	noRaw := testMapper(t, Config{RawData: &off})
	for _, c := range Classes() {
		got := map[string]bool{}
		for _, p := range m.Attributes(c.UID) {
			got[p] = true
		}
		for _, p := range []string{"class_uid", "type_uid", "time", "metadata.version", "metadata.product.vendor_name", "raw_data", "unmapped", "severity"} {
			if !got[p] {
				t.Errorf("%s: %s missing", c.Name, p)
			}
		}
		if got["observables"] || got["enrichments"] || got["dst_endpoint.ip"] {
			t.Errorf("%s: attributes no rule fills are kept", c.Name)
		}
		if len(got) > 80 {
			t.Errorf("%s: %d attributes", c.Name, len(got))
		}
		for _, p := range noRaw.Attributes(c.UID) {
			if p == "raw_data" {
				t.Errorf("%s: raw_data kept with raw_data = false", c.Name)
			}
		}
	}
	if m.Attributes(4001) != nil {
		t.Error("Attributes of an unknown class")
	}
}

func replaceAll(s, from, to string) string {
	out := ""
	for _, c := range s {
		if string(c) == from {
			out += to
		} else {
			out += string(c)
		}
	}
	return out
}

// TestValidateCatches makes sure the validator fails what it should.
func TestValidateCatches(t *testing.T) {
	base := `"category_uid":3,"class_uid":3002,"activity_id":1,"type_uid":300201,"severity_id":1,"time":1,"metadata":{"version":"1.3.0","product":{"vendor_name":"A"}},"user":{"uid":"u"}`
	tests := []struct {
		name, doc, want string
	}{
		{"valid", `{` + base + `}`, ""},
		{"missing user", `{"category_uid":3,"class_uid":3002,"activity_id":1,"type_uid":300201,"severity_id":1,"time":1,"metadata":{"version":"1.3.0","product":{"vendor_name":"A"}}}`, "user: required"},
		{"type_uid", `{"category_uid":3,"class_uid":3002,"activity_id":2,"type_uid":300201,"severity_id":1,"time":1,"metadata":{"version":"1.3.0","product":{"vendor_name":"A"}},"user":{}}`, "type_uid"},
		{"enum", `{` + base + `,"status_id":7}`, "status_id: 7 is not a value"},
		{"type", `{` + base + `,"src_endpoint":{"ip":1}}`, "src_endpoint.ip: want string"},
		{"unknown", `{` + base + `,"bogus":1}`, "bogus: not an attribute"},
		{"vendor", `{"category_uid":3,"class_uid":3002,"activity_id":1,"type_uid":300201,"severity_id":1,"time":1,"metadata":{"version":"1.3.0","product":{}},"user":{}}`, "metadata.product.vendor_name: required"},
		{"class", `{"class_uid":4001}`, "not a class"},
		{"device profile", `{` + base + `,"metadata":{"version":"1.3.0","profiles":["host"],"product":{"vendor_name":"A"}},"device":{}}`, "device.type_id: required"},
	}
	for _, tt := range tests {
		err := Validate([]byte(tt.doc))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
