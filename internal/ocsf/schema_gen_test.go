package ocsf

import (
	"bytes"
	"os"
	"testing"

	"github.com/auditexport/auditexport/internal/ocsf/internal/schemagen"
)

// schemaDir is $OCSF_SCHEMA_DIR: a checkout of the OCSF schema repository
// at v1.3.0 (github.com/ocsf/ocsf-schema). "" when it is not set.
func schemaDir() string {
	return os.Getenv("OCSF_SCHEMA_DIR")
}

// TestSchemaGenUpToDate regenerates the table from the schema repository and
// fails when schema_gen.go differs: the committed table is the schema.
func TestSchemaGenUpToDate(t *testing.T) {
	dir := schemaDir()
	if dir == "" {
		t.Skip("no OCSF schema repository (set OCSF_SCHEMA_DIR)")
	}
	want, err := schemagen.Generate(schemagen.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("schema_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("schema_gen.go is stale: run `OCSF_SCHEMA_DIR=%s go generate ./internal/ocsf`", dir)
	}
}

// TestSchemaTable checks facts of OCSF 1.3.0 the mapper relies on, as the
// generator resolved them from extends, includes and the dictionary.
func TestSchemaTable(t *testing.T) {
	if SchemaVersion != "1.3.0" {
		t.Fatalf("SchemaVersion = %q", SchemaVersion)
	}
	tests := []struct {
		class       int32
		name        string
		category    int32
		required    []string
		activity    int32
		activityCap string
	}{
		{0, "base_event", 0, []string{"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"}, 99, "Other"},
		{6003, "api_activity", 6, []string{"actor", "api", "src_endpoint", "time", "metadata"}, 4, "Delete"},
		{3002, "authentication", 3, []string{"user", "time", "metadata"}, 1, "Logon"},
		{3001, "account_change", 3, []string{"user"}, 3, "Password Change"},
		{3004, "entity_management", 3, []string{"entity"}, 13, "Resume"},
	}
	for _, tt := range tests {
		c := ClassByUID(tt.class)
		if c == nil || c.Name != tt.name || c.CategoryUID != tt.category || ClassByName(tt.name) != c {
			t.Fatalf("class %d: %+v", tt.class, c)
		}
		for _, r := range tt.required {
			a := c.Attribute(r)
			if a == nil || a.Requirement != Required {
				t.Errorf("%s.%s: %+v, want required", tt.name, r, a)
			}
		}
		caption, ok := c.Attribute("activity_id").EnumCaption(tt.activity)
		if !ok || caption != tt.activityCap {
			t.Errorf("%s activity %d = %q, want %q", tt.name, tt.activity, caption, tt.activityCap)
		}
	}
	// Profile attributes keep their profile; "profile": null removes it.
	if a := ClassByName("authentication").Attribute("device"); a.Profile != "host" {
		t.Errorf("authentication.device profile = %q, want host", a.Profile)
	}
	if a := ClassByName("api_activity").Attribute("api"); a.Profile != "" || a.Requirement != Required {
		t.Errorf("api_activity.api = %+v, want core and required", a)
	}
	// Objects resolve extends (user extends _entity) and type overrides.
	u := ObjectByName("user")
	if a := u.Attribute("uid"); a == nil || a.Kind != KindString {
		t.Errorf("user.uid = %+v", a)
	}
	if a := u.Attribute("name"); a == nil || a.Type != "username_t" {
		t.Errorf("user.name = %+v", a)
	}
	if a := ObjectByName("product").Attribute("vendor_name"); a == nil || a.Requirement != Required {
		t.Errorf("product.vendor_name = %+v", a)
	}
	if a := ObjectByName("network_endpoint").Attribute("location"); a == nil || a.Object != "location" {
		t.Errorf("network_endpoint.location = %+v", a)
	}
}
