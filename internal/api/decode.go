package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/auditexport/auditexport/internal/suggest"
	"io"
	"reflect"
	"slices"
	"strings"
)

// DecodeError is a destination body that cannot be read as a
// DestinationSpec. Its message is in the API's words (JSON field names and
// JSON types), never Go's.
type DecodeError struct {
	// Field is the JSON field at fault; empty when the body as a whole is.
	Field   string
	Message string
}

func (e *DecodeError) Error() string { return e.Message }

// specField is one JSON field of DestinationSpec.
type specField struct {
	name string
	kind string // what a value must be, as the error says it: "a string", …
}

// specFields are DestinationSpec's JSON fields, in declaration order.
var specFields = func() []specField {
	t := reflect.TypeFor[DestinationSpec]()
	fields := make([]specField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields = append(fields, specField{name: name, kind: jsonKind(f.Type)})
	}
	return fields
}()

// jsonKind says what JSON value a Go type of DestinationSpec takes.
func jsonKind(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	}
	panic("api: no JSON kind for " + t.String())
}

func lookupField(name string) (specField, bool) {
	i := slices.IndexFunc(specFields, func(f specField) bool { return f.name == name })
	if i < 0 {
		return specField{}, false
	}
	return specFields[i], true
}

// DecodeDestinationSpec reads one JSON object as a DestinationSpec. Unlike
// encoding/json it is strict, and says what is wrong in the API's words:
// field names match exactly (a misspelt or unknown field is refused, with
// the nearest field suggested), a value of the wrong JSON type names the
// field and the type it must be, and nothing may follow the object. It does
// not apply defaults nor validate values; call Normalize for that, except
// for one rule only the body can tell: an explicit "max_object_bytes": 0 is
// refused rather than read as "use the default".
func DecodeDestinationSpec(r io.Reader) (DestinationSpec, error) {
	var spec DestinationSpec
	data, err := io.ReadAll(r)
	if err != nil {
		return spec, fmt.Errorf("reading the destination body: %w", err)
	}
	fields, err := decodeObject(data)
	if err != nil {
		return spec, err
	}
	if err := checkFieldNames(fields); err != nil {
		return spec, err
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return DestinationSpec{}, describeJSONError(err)
	}
	if raw, ok := fields["max_object_bytes"]; ok && spec.MaxObjectBytes == 0 && !isNull(raw) {
		return DestinationSpec{}, fieldErr("max_object_bytes", "must be between %d (5 MiB) and %d (5 TiB), got 0; leave it out for the default, %d (256 MiB)",
			MinObjectBytes, int64(MaxObjectBytes), DefaultMaxObjectBytes)
	}
	return spec, nil
}

// decodeObject reads data as exactly one JSON object and returns its fields.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &DecodeError{Message: "destination body is empty: send a JSON object such as {\"bucket\": \"…\", \"region\": \"…\"}"}
		}
		return nil, describeJSONError(err)
	}
	if fields == nil {
		return nil, &DecodeError{Message: "destination body must be a JSON object, got null"}
	}
	end := dec.InputOffset()
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		// Counted from 1, like the offsets of syntax errors.
		at := len(data) - len(rest) + 1
		return nil, &DecodeError{Message: fmt.Sprintf("destination body: unexpected data after the JSON object, at byte %d", at)}
	}
	return fields, nil
}

// checkFieldNames refuses the first unknown field (in name order, so the
// answer does not depend on map order), suggesting the nearest known one.
func checkFieldNames(fields map[string]json.RawMessage) error {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := lookupField(name); ok {
			continue
		}
		if near := nearestField(name); near != "" {
			return &DecodeError{Field: name, Message: fmt.Sprintf("unknown field %q; did you mean %q?", name, near)}
		}
		known := make([]string, len(specFields))
		for i, f := range specFields {
			known[i] = f.name
		}
		return &DecodeError{Field: name, Message: fmt.Sprintf("unknown field %q; the fields are %s", name, strings.Join(known, ", "))}
	}
	return nil
}

// describeJSONError turns encoding/json's errors into the API's words.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return &DecodeError{Message: fmt.Sprintf("destination body must be a JSON object, got %s", jsonValueName(typeErr.Value))}
	case errors.As(err, &typeErr):
		name, _, _ := strings.Cut(typeErr.Field, ".")
		f, ok := lookupField(name)
		if !ok {
			return &DecodeError{Field: name, Message: fmt.Sprintf("%s: wrong type of value", name)}
		}
		return &DecodeError{Field: name, Message: fmt.Sprintf("%s: must be %s, got %s", name, f.kind, jsonValueName(typeErr.Value))}
	case errors.As(err, &syntaxErr):
		return &DecodeError{Message: fmt.Sprintf("destination body is not valid JSON: %s (at byte %d)", syntaxErr.Error(), syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeError{Message: "destination body is not valid JSON: it ends before the object is complete"}
	}
	return &DecodeError{Message: "destination body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// jsonValueName names a JSON value as UnmarshalTypeError.Value describes it
// ("string", "number 1.5", "array", …) with an article.
func jsonValueName(v string) string {
	kind, detail, _ := strings.Cut(v, " ")
	switch kind {
	case "array", "object":
		return "an " + kind
	case "number":
		if detail != "" {
			return "the number " + detail
		}
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// nearestField is the known field closest to name, or "" when none is near
// enough to be a likely misspelling: a few edits away (one for a very short
// name), or a field that contains the name or is contained in it.
func nearestField(name string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", -1
	for _, f := range specFields {
		d := suggest.Distance(lower, f.name)
		if bestDist < 0 || d < bestDist {
			best, bestDist = f.name, d
		}
	}
	limit := max(2, len(best)/3)
	if len(lower) <= 3 {
		limit = 1
	}
	if bestDist <= limit {
		return best
	}
	if len(lower) >= 4 {
		for _, f := range specFields {
			if strings.Contains(f.name, lower) || strings.Contains(lower, f.name) {
				return f.name
			}
		}
	}
	return ""
}
