package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeDestinationSpec(t *testing.T) {
	valid := `{"bucket": "acme-audit", "region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/r"}`
	tests := []struct {
		name  string
		body  string
		field string // "" for an error about the whole body
		want  string // exact message; "" means the body decodes
	}{
		{"valid", valid, "", ""},
		{"every field", `{"bucket":"b","region":"r","prefix":"p","role_arn":"a","access_key_id":"k","secret_access_key":"s",
			"interval":"1h","daily_at":"05:00","format":"json","compression":"zstd","event_types":["a"],"encryption":"sse-kms",
			"kms_key_arn":"k","acl":"private","storage_class":"STANDARD","max_object_bytes":5242880,"backfill":"0",
			"key_template":"t","enabled":false}`, "", ""},
		{"null max_object_bytes is unset", `{"bucket":"b","max_object_bytes":null}`, "", ""},
		{"trailing whitespace", valid + "\n\t ", "", ""},

		{"number for a string", `{"bucket": 42}`, "bucket", "bucket: must be a string, got a number"},
		{"object for a string", `{"region": {}}`, "region", "region: must be a string, got an object"},
		{"string for an integer", `{"max_object_bytes": "5MiB"}`, "max_object_bytes", "max_object_bytes: must be an integer, got a string"},
		{"fraction for an integer", `{"max_object_bytes": 1.5}`, "max_object_bytes", "max_object_bytes: must be an integer, got the number 1.5"},
		{"string for a boolean", `{"enabled": "yes"}`, "enabled", "enabled: must be true or false, got a string"},
		{"string for an array", `{"event_types": "user.login"}`, "event_types", "event_types: must be an array of strings, got a string"},
		{"number in an array", `{"event_types": ["a", 1]}`, "event_types", "event_types: must be an array of strings, got a number"},
		{"boolean for a string", `{"format": true}`, "format", "format: must be a string, got a boolean"},

		{"misspelt", `{"buckett": "acme-audit"}`, "buckett", `unknown field "buckett"; did you mean "bucket"?`},
		{"swapped letters", `{"regoin": "us-east-1"}`, "regoin", `unknown field "regoin"; did you mean "region"?`},
		{"wrong case", `{"Bucket": "acme-audit"}`, "Bucket", `unknown field "Bucket"; did you mean "bucket"?`},
		{"camel case", `{"roleArn": "x"}`, "roleArn", `unknown field "roleArn"; did you mean "role_arn"?`},
		{"part of a name", `{"kms_key": "x"}`, "kms_key", `unknown field "kms_key"; did you mean "kms_key_arn"?`},
		// The whole list is checked in TestUnknownFieldListsEveryField.
		{"output field", `{"id": "dst_1"}`, "id", `unknown field "id"; the fields are bucket, region, prefix, role_arn, …`},

		{"explicit zero max_object_bytes", `{"bucket":"b","max_object_bytes":0}`, "max_object_bytes",
			"max_object_bytes: must be between 5242880 (5 MiB) and 5497558138880 (5 TiB), got 0; leave it out for the default, 268435456 (256 MiB)"},

		{"empty", ``, "", `destination body is empty: send a JSON object such as {"bucket": "…", "region": "…"}`},
		{"null", `null`, "", "destination body must be a JSON object, got null"},
		{"array", `[{"bucket":"b"}]`, "", "destination body must be a JSON object, got an array"},
		{"string", `"bucket"`, "", "destination body must be a JSON object, got a string"},
		{"syntax", `{"bucket": acme}`, "", "destination body is not valid JSON: invalid character 'a' looking for beginning of value (at byte 12)"},
		{"cut short", `{"bucket": "acme"`, "", "destination body is not valid JSON: it ends before the object is complete"},
		{"two objects", valid + ` {}`, "", "destination body: unexpected data after the JSON object, at byte 97"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := DecodeDestinationSpec(strings.NewReader(tt.body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var de *DecodeError
			var fe *FieldError
			switch {
			case errors.As(err, &de):
				if de.Field != tt.field {
					t.Errorf("field = %q, want %q", de.Field, tt.field)
				}
			case errors.As(err, &fe):
				if fe.Field != tt.field {
					t.Errorf("field = %q, want %q", fe.Field, tt.field)
				}
			default:
				t.Fatalf("err = %v (%T), want a *DecodeError or *FieldError", err, err)
			}
			if head, ok := strings.CutSuffix(tt.want, "…"); ok && strings.HasPrefix(err.Error(), head) {
				// A prefix is enough.
			} else if err.Error() != tt.want {
				t.Errorf("message\n got %s\nwant %s", err, tt.want)
			}
			if !isZeroSpec(spec) {
				t.Errorf("spec = %+v on error, want zero", spec)
			}
		})
	}
}

// An unknown field with no near one lists every field a body may have: the
// JSON names of DestinationSpec, read here from a marshalled spec with every
// field set, not from the code under test.
func TestUnknownFieldListsEveryField(t *testing.T) {
	on := true
	full := DestinationSpec{
		Bucket: "b", Region: "r", Prefix: "p", RoleARN: "a", AccessKeyID: "k", SecretAccessKey: "s",
		ExpectedBucketOwner: "o", Interval: "i", DailyAt: "d", Format: "f", Compression: "c",
		EventTypes: []string{"e"}, Encryption: "e", KMSKeyARN: "k", ACL: "a", StorageClass: "s",
		MaxObjectBytes: 1, Backfill: "b", KeyTemplate: "t", Enabled: &on, EventSchema: "o", SourceName: "s",
	}
	var fields map[string]any
	if err := json.Unmarshal(mustJSON(t, full), &fields); err != nil {
		t.Fatal(err)
	}
	_, err := DecodeDestinationSpec(strings.NewReader(`{"id": "dst_1"}`))
	if err == nil {
		t.Fatal("id accepted")
	}
	_, list, _ := strings.Cut(err.Error(), "the fields are ")
	got := strings.Split(list, ", ")
	if len(got) != len(fields) {
		t.Errorf("listed %d fields %v, want the %d of a spec", len(got), got, len(fields))
	}
	for _, name := range got {
		if _, ok := fields[name]; !ok {
			t.Errorf("listed %q, which is not a field of the body", name)
		}
	}
}

func TestDecodeDestinationSpecValues(t *testing.T) {
	off := false
	spec, err := DecodeDestinationSpec(strings.NewReader(
		`{"bucket":"acme-audit","region":"eu-west-1","event_types":["a","b"],"max_object_bytes":6000000,"enabled":false}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DestinationSpec{Bucket: "acme-audit", Region: "eu-west-1", EventTypes: []string{"a", "b"}, MaxObjectBytes: 6000000, Enabled: &off}
	if got, _ := json.Marshal(spec); string(got) != string(mustJSON(t, want)) {
		t.Errorf("decoded %s, want %s", got, mustJSON(t, want))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isZeroSpec(s DestinationSpec) bool {
	b, _ := json.Marshal(s)
	return string(b) == `{"bucket":"","region":""}`
}

func TestCheckRegionAllowed(t *testing.T) {
	allowed := []string{"us-east-1", "eu-west-1"}
	for _, c := range []struct {
		region  string
		allowed []string
		want    string
	}{
		{"ap-south-1", nil, ""},
		{"us-east-1", allowed, ""},
		{"eu-west-1", allowed, ""},
		{"ap-south-1", allowed, `region: "ap-south-1" is not allowed by this agent: use one of us-east-1, eu-west-1`},
	} {
		err := CheckRegionAllowed(c.region, c.allowed)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s in %v: %v, want allowed", c.region, c.allowed, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%s in %v: %v, want %s", c.region, c.allowed, err, c.want)
		}
	}
}

// FuzzDecodeDestinationSpec checks that any body either decodes to a spec
// that survives a round trip, or is refused in the API's words.
func FuzzDecodeDestinationSpec(f *testing.F) {
	for _, seed := range []string{
		`{"bucket":"acme-audit","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r"}`,
		`{"bucket":1}`, `{"buckett":"x"}`, `{"event_types":["a",2]}`, `{"enabled":"no"}`,
		`{"max_object_bytes":0}`, `{"max_object_bytes":1e3}`, `[]`, `null`, `{} {}`, `{"a":`, ``,
		`{"bucket":"a","Bucket":"b"}`, `{"key_template":"{tenant}/{seq_from}"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := DecodeDestinationSpec(bytes.NewReader(body))
		if err != nil {
			msg := err.Error()
			for _, goWords := range []string{"json:", "Go ", "api.", "DestinationSpec", "int64", "[]string", "*bool"} {
				if strings.Contains(msg, goWords) {
					t.Fatalf("message %q speaks Go (%q)", msg, goWords)
				}
			}
			var de *DecodeError
			var fe *FieldError
			if !errors.As(err, &de) && !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *DecodeError or *FieldError", err, err)
			}
			if de != nil && de.Field != "" && !strings.Contains(msg, de.Field) && !strings.Contains(msg, strconv.Quote(de.Field)) {
				t.Fatalf("message %q does not name its field %q", msg, de.Field)
			}
			return
		}
		again, err := DecodeDestinationSpec(bytes.NewReader(mustJSON(t, spec)))
		if err != nil {
			t.Fatalf("re-encoded spec %s is refused: %v", mustJSON(t, spec), err)
		}
		if a, b := mustJSON(t, spec), mustJSON(t, again); !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the spec: %s -> %s", a, b)
		}
	})
}
