package ocsf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Mapper turns stored audit events into OCSF events. It is safe for
// concurrent use.
type Mapper struct {
	rules    []rule
	fallback *rule
	product  Value
	rawData  bool
	tsField  string
	name     string
	idField  string
}

// Event is one mapped event.
type Event struct {
	ClassUID int32  // objects hold one class each
	Time     int64  // epoch milliseconds (the OCSF time attribute)
	Seq      int64  // the stored event's sequence number
	JSON     []byte // the OCSF event as JSON, one line of an NDJSON object
	Root     Value  // the same event as values, for columnar encoders
}

// New compiles cfg. The error lists every problem with the rules, each
// naming the rule and attribute and suggesting the nearest known name.
func New(cfg Config) (*Mapper, error) {
	rules, err := compile(&cfg)
	if err != nil {
		return nil, err
	}
	m := &Mapper{rules: rules, rawData: cfg.rawData()}
	m.fallback = &m.rules[len(m.rules)-1]
	m.tsField, m.name, m.idField = cfg.names()
	m.product = Value{Kind: KindObject}
	if cfg.ProductName != "" {
		m.product.insert("name", stringValue(cfg.ProductName))
	}
	m.product.insert("vendor_name", stringValue(cfg.VendorName))
	if cfg.ProductVersion != "" {
		m.product.insert("version", stringValue(cfg.ProductVersion))
	}
	return m, nil
}

// Map maps one stored event (its JSON as ingested) with sequence number seq.
func (m *Mapper) Map(raw []byte, seq int64) (Event, error) {
	ev := Event{Seq: seq}
	// One copy of the event, which raw_data keeps, that the parse tree and
	// the event's strings point into: text() returns substrings of it.
	own := string(raw)
	doc, err := parseJSON(unsafe.Slice(unsafe.StringData(own), len(own)))
	if err != nil {
		return ev, fmt.Errorf("event %d: %w", seq, err)
	}
	if doc.kind != jObject {
		return ev, fmt.Errorf("event %d: a JSON %s, not an object", seq, doc.kind)
	}
	name, ok := m.stringField(&doc, m.name)
	if !ok {
		return ev, fmt.Errorf("event %d: no %s string", seq, m.name)
	}
	ms, err := m.timestamp(&doc)
	if err != nil {
		return ev, fmt.Errorf("event %d: %s: %w", seq, m.tsField, err)
	}
	msgID, _ := m.stringField(&doc, m.idField)
	r := m.match(name)
	root, ok := m.apply(r, &doc, name, msgID, ms)
	if !ok && r != m.fallback {
		clearUsed(&doc)
		for _, k := range []string{m.tsField, m.name, m.idField} {
			if v := doc.field(k); v != nil {
				v.used = 2
			}
		}
		root, _ = m.apply(m.fallback, &doc, name, msgID, ms)
		r = m.fallback
	}
	if u := unmappedJSON(&doc, nil); u != nil {
		root.insert("unmapped", Value{Kind: KindJSON, Str: string(u)})
	}
	if m.rawData {
		root.insert("raw_data", stringValue(own))
	}
	ev.ClassUID, ev.Time, ev.Root = r.class.UID, ms, root
	ev.JSON = root.AppendJSON(make([]byte, 0, len(raw)*2+256))
	return ev, nil
}

// stringField reads a top-level string (or number) and marks it used.
func (m *Mapper) stringField(doc *jvalue, key string) (string, bool) {
	v := doc.field(key)
	if v == nil {
		return "", false
	}
	s, ok := v.text()
	if ok {
		v.used = 2
	}
	return s, ok
}

// timestamp reads the event time: epoch milliseconds (a number or a string
// of digits) or RFC 3339, as ingest accepts it.
func (m *Mapper) timestamp(doc *jvalue) (int64, error) {
	v := doc.field(m.tsField)
	if v == nil {
		return 0, errors.New("missing")
	}
	v.used = 2
	s, ok := v.text()
	if !ok {
		return 0, fmt.Errorf("a JSON %s, not a time", v.kind)
	}
	if isInteger(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	if v.kind == jNumber {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < -9e18 || f > 9e18 {
			return 0, fmt.Errorf("%s is out of range", s)
		}
		return int64(math.Floor(f)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither epoch milliseconds nor RFC 3339", s)
	}
	return t.UnixMilli(), nil
}

func (m *Mapper) match(name string) *rule {
	for i := range m.rules {
		r := &m.rules[i]
		if r.glob {
			if globMatch(r.event, name) {
				return r
			}
		} else if r.event == name {
			return r
		}
	}
	return m.fallback
}

// apply builds the OCSF event of r. ok is false when a required attribute
// has no value, so the event needs the fallback class.
func (m *Mapper) apply(r *rule, doc *jvalue, name, msgID string, ms int64) (Value, bool) {
	root := Value{Kind: KindObject, Fields: make([]Field, 0, 24)}
	var profiles map[string]bool // nil (no allocation) without profiles
	for i := range r.fields {
		f := &r.fields[i]
		if m.applyField(&root, f, doc) && f.profile != "" {
			if profiles == nil {
				profiles = map[string]bool{}
			}
			profiles[f.profile] = true
		}
	}
	c := r.class
	actName := r.activityName
	if r.activity == 99 {
		actName = name
	}
	root.insert("activity_id", intValue(KindInteger, int64(r.activity)))
	root.insert("activity_name", stringValue(actName))
	root.insert("category_uid", intValue(KindInteger, int64(c.CategoryUID)))
	root.insert("category_name", stringValue(c.CategoryName))
	root.insert("class_uid", intValue(KindInteger, int64(c.UID)))
	root.insert("class_name", stringValue(c.Caption))
	if root.Field("severity_id") == nil {
		root.insert("severity_id", intValue(KindInteger, int64(r.severity)))
	}
	root.insert("time", intValue(KindTimestamp, ms))
	root.insert("type_uid", intValue(KindLong, int64(c.UID)*100+int64(r.activity)))
	root.insert("type_name", stringValue(r.typeName))

	md := root.Field("metadata")
	if md == nil {
		md = root.insert("metadata", Value{Kind: KindObject, Fields: make([]Field, 0, 8)})
	}
	md.insert("event_code", stringValue(name))
	md.insert("product", m.product)
	if msgID != "" {
		md.insert("uid", stringValue(msgID))
	}
	md.insert("version", stringValue(SchemaVersion))
	if len(profiles) > 0 {
		p := Value{Kind: KindString, Array: true}
		for _, name := range sortedKeys(profiles) {
			p.Items = append(p.Items, stringValue(name))
		}
		md.insert("profiles", p)
	}
	fillUnknownIDs(&root, c.Attributes)
	fillCaptions(&root, c.Attributes)
	return root, complete(&root, c.Attributes, profiles)
}

// applyField fills one target from the first source alternative that is
// present and converts; it reports whether the target got a value.
func (m *Mapper) applyField(root *Value, f *field, doc *jvalue) bool {
	last := f.target[len(f.target)-1]
	for _, src := range f.sources {
		v := lookup(doc, src)
		if v == nil || v.kind == jNull {
			continue
		}
		val, ok := convert(v, last, f)
		if !ok {
			continue
		}
		if f.idAttr != nil && !val.Array {
			// A caption fills its id; OCSF wants the caption normalised
			// to the enum's, except for Other, whose caption is the source's.
			id := captionID(f.idAttr, val.Str, f.values)
			if c, ok := f.idAttr.EnumCaption(id); ok && id != 99 {
				val.Str = c
			}
			path := append(append([]*Attribute(nil), f.target[:len(f.target)-1]...), f.idAttr)
			root.set(path, intValue(KindInteger, int64(id)))
		}
		if !root.set(f.target, val) {
			return false
		}
		markUsed(doc, src)
		return true
	}
	return false
}

// captionID is the enum id of a caption: a translation, a caption match,
// else Other (99) or, without Other, Unknown (0).
func captionID(a *Attribute, s string, values map[string]int32) int32 {
	if len(values) > 0 {
		if id, ok := values[strings.ToLower(s)]; ok {
			return id
		}
	}
	for _, v := range a.Enum {
		if sameCaption(v.Caption, s) {
			return v.ID
		}
	}
	if _, ok := a.EnumCaption(99); ok {
		return 99
	}
	return 0
}

// convert turns an event value into the target's kind.
func convert(v *jvalue, a *Attribute, f *field) (Value, bool) {
	if a.Array {
		out := Value{Kind: a.Kind, Array: true}
		if v.kind != jArray {
			one, ok := convertScalar(v, a, f)
			if !ok {
				return out, false
			}
			out.Items = []Value{one}
			return out, true
		}
		for i := range v.items {
			if one, ok := convertScalar(&v.items[i], a, f); ok {
				out.Items = append(out.Items, one)
			}
		}
		return out, len(out.Items) > 0
	}
	return convertScalar(v, a, f)
}

func convertScalar(v *jvalue, a *Attribute, f *field) (Value, bool) {
	if a.Kind == KindJSON {
		return Value{Kind: KindJSON, Str: string(v.raw)}, true
	}
	s, ok := v.text()
	if !ok {
		return Value{}, false
	}
	switch a.Kind {
	case KindString:
		return stringValue(s), true
	case KindBoolean:
		b, err := strconv.ParseBool(s)
		return Value{Kind: KindBoolean, Bool: b}, err == nil
	case KindFloat:
		x, err := strconv.ParseFloat(s, 64)
		return Value{Kind: KindFloat, Float: x}, err == nil && !math.IsInf(x, 0)
	case KindInteger, KindLong, KindTimestamp:
		if len(a.Enum) > 0 {
			if !isInteger(s) {
				return intValue(a.Kind, int64(captionID(a, s, f.values))), true
			}
			if n, err := strconv.ParseInt(s, 10, 32); err == nil {
				if _, ok := a.EnumCaption(int32(n)); ok {
					return intValue(a.Kind, n), true
				}
			}
			return intValue(a.Kind, int64(captionID(a, s, f.values))), true
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			x, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || x < -9e18 || x > 9e18 {
				return Value{}, false
			}
			n = int64(x)
		}
		if a.Kind == KindInteger && (n < math.MinInt32 || n > math.MaxInt32) {
			return Value{}, false
		}
		return intValue(a.Kind, n), true
	}
	return Value{}, false
}

// isInteger reports whether s is an optional '-' and digits, so parsing it
// as a number is worth trying (a failed strconv call allocates its error).
func isInteger(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lookup follows an event path; nil when any step is missing.
func lookup(v *jvalue, path []string) *jvalue {
	for _, seg := range path {
		switch v.kind {
		case jObject:
			v = v.field(seg)
		case jArray:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v.items) {
				return nil
			}
			v = &v.items[i]
		default:
			return nil
		}
		if v == nil {
			return nil
		}
	}
	return v
}

func markUsed(v *jvalue, path []string) {
	for _, seg := range path {
		if v.used == 0 {
			v.used = 1
		}
		if v = lookup(v, []string{seg}); v == nil {
			return
		}
	}
	v.used = 2
}

func clearUsed(v *jvalue) {
	v.used = 0
	for i := range v.fields {
		clearUsed(&v.fields[i].val)
	}
	for i := range v.items {
		clearUsed(&v.items[i])
	}
}

// unmappedJSON is what no mapping consumed, as a JSON object, or nil.
// Arrays partly used are kept whole.
func unmappedJSON(v *jvalue, b []byte) []byte {
	n := 0
	for i := range v.fields {
		f := &v.fields[i]
		if f.val.used == 2 {
			continue
		}
		var inner []byte
		if f.val.used == 1 && f.val.kind == jObject {
			if inner = unmappedJSON(&f.val, nil); inner == nil {
				continue
			}
		} else {
			inner = f.val.raw
		}
		if n == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = appendQuoted(b, string(f.key))
		b = append(b, ':')
		b = append(b, inner...)
		n++
	}
	if n == 0 {
		return nil
	}
	return append(b, '}')
}

// fillUnknownIDs sets Unknown (0) on required enum ids of the objects
// present (device.type_id): OCSF requires them once the object exists.
func fillUnknownIDs(v *Value, attrs []Attribute) {
	for i := range attrs {
		a := &attrs[i]
		switch {
		case a.Kind == KindObject && !a.Array:
			if f := v.Field(a.Name); f != nil {
				if o := ObjectByName(a.Object); o != nil {
					fillUnknownIDs(f, o.Attributes)
				}
			}
		case a.Requirement == Required && len(a.Enum) > 0 && v.Field(a.Name) == nil && v != nil:
			if _, ok := a.EnumCaption(0); ok && a.Name != "activity_id" && a.Name != "severity_id" {
				v.insert(a.Name, intValue(a.Kind, 0))
				if a.Sibling != "" && find(attrs, a.Sibling) != nil && v.Field(a.Sibling) == nil {
					v.insert(a.Sibling, stringValue("Unknown"))
				}
			}
		}
	}
}

// fillCaptions sets the caption sibling of each enum id present
// (severity_id -> severity) when no mapping did.
func fillCaptions(v *Value, attrs []Attribute) {
	for i := range attrs {
		a := &attrs[i]
		f := v.Field(a.Name)
		if f == nil {
			continue
		}
		if a.Kind == KindObject && !a.Array {
			if o := ObjectByName(a.Object); o != nil {
				fillCaptions(f, o.Attributes)
			}
			continue
		}
		if a.Sibling == "" || len(a.Enum) == 0 || f.Array || find(attrs, a.Sibling) == nil || v.Field(a.Sibling) != nil {
			continue
		}
		if c, ok := a.EnumCaption(int32(f.Int)); ok && f.Int != 99 {
			v.insert(a.Sibling, stringValue(c))
		}
	}
}

// complete reports whether every required attribute is present, in the
// event and in each object present. An attribute of a profile counts only
// when the profile is used.
func complete(v *Value, attrs []Attribute, profiles map[string]bool) bool {
	for i := range attrs {
		a := &attrs[i]
		f := v.Field(a.Name)
		if f == nil {
			if a.Requirement == Required && (a.Profile == "" || profiles[a.Profile]) {
				return false
			}
			continue
		}
		if a.Kind == KindObject && !a.Array {
			if o := ObjectByName(a.Object); o != nil && !complete(f, o.Attributes, profiles) {
				return false
			}
		}
	}
	return true
}

// globMatch matches name against a pattern where * is any run of
// characters and ? any one byte.
func globMatch(pattern, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextNx = px, nx+1
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if nextNx > 0 && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false
	}
	return true
}
