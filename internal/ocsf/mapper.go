package ocsf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	matched  sync.Map // event name -> *rule
	matchedN atomic.Int64
}

// Event is one mapped event. Its values are held by node of its rule's
// Layout; JSON is the event encoded.
type Event struct {
	ClassUID int32  // objects hold one class each
	Time     int64  // epoch milliseconds (the OCSF time attribute)
	Seq      int64  // the stored event's sequence number
	JSON     []byte // the OCSF event as JSON, one line of an NDJSON object
	// NoJSON, set by the caller, has MapTo leave JSON empty: a columnar
	// encoder reads the values by node (At, Has), and encoding the JSON
	// it would not use costs a third of the mapping.
	NoJSON bool

	layout *Layout
	vals   []Value
	state  []uint8
	parser jparser
	buf    []byte // unmapped
}

// Layout is the tree of attributes the event's rule can set; At and Has
// read the event's values by node index.
func (e *Event) Layout() *Layout { return e.layout }

// Has reports whether node i of the event's Layout has a value (an object
// node: whether any attribute below it has).
func (e *Event) Has(i int) bool { return e.state[i] != absent }

// At is the value of leaf node i of the event's Layout, valid when Has(i).
func (e *Event) At(i int) *Value { return &e.vals[i] }

// Value builds the event as a tree of values, sorted by name at each level.
func (e *Event) Value() Value { return e.layout.value(e, 0) }

func (e *Event) set(i int32, v Value) {
	e.vals[i], e.state[i] = v, present
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
	for i := range m.rules {
		r := &m.rules[i]
		if r.layout, err = m.layout(r); err != nil {
			return nil, fmt.Errorf("ocsf: rule %q: %w", r.event, err)
		}
	}
	return m, nil
}

// Map maps one stored event (its JSON as ingested) with sequence number
// seq. The event keeps its own copy of raw.
func (m *Mapper) Map(raw []byte, seq int64) (Event, error) {
	var ev Event
	// One copy of the event, which raw_data keeps, that the parse tree and
	// the event's strings point into: text() returns substrings of it.
	own := bytes.Clone(raw)
	err := m.MapTo(&ev, own, seq)
	return ev, err
}

// MapTo maps raw into ev, reusing ev's memory (the values, the parse
// tree, the JSON buffer) from the event it held before: mapping a stream
// of events into one Event allocates next to nothing. The event's strings
// point into raw, so raw must not change while ev is in use, and ev's
// previous contents (JSON included) are overwritten.
func (m *Mapper) MapTo(ev *Event, raw []byte, seq int64) error {
	ev.Seq, ev.ClassUID, ev.Time = seq, 0, 0
	doc, err := ev.parser.parse(raw)
	if err != nil {
		return fmt.Errorf("event %d: %w", seq, err)
	}
	if doc.kind != jObject {
		return fmt.Errorf("event %d: a JSON %s, not an object", seq, doc.kind)
	}
	name, ok := m.stringField(&doc, m.name)
	if !ok {
		return fmt.Errorf("event %d: no %s string", seq, m.name)
	}
	ms, err := m.timestamp(&doc)
	if err != nil {
		return fmt.Errorf("event %d: %s: %w", seq, m.tsField, err)
	}
	msgID, _ := m.stringField(&doc, m.idField)
	r := m.match(name)
	if !m.apply(ev, r, &doc, name, msgID, ms) && r != m.fallback {
		clearUsed(&doc)
		for _, k := range []string{m.tsField, m.name, m.idField} {
			if v := doc.field(k); v != nil {
				v.used = 2
			}
		}
		r = m.fallback
		m.apply(ev, r, &doc, name, msgID, ms)
	}
	l := r.layout
	if u := unmappedJSON(&doc, ev.buf[:0]); u != nil {
		ev.buf = u
		ev.set(l.unmapped, Value{Kind: KindJSON, Str: unsafe.String(unsafe.SliceData(u), len(u))})
	}
	if m.rawData {
		ev.set(l.rawData, stringValue(unsafe.String(unsafe.SliceData(raw), len(raw))))
	}
	ev.ClassUID, ev.Time, ev.layout = r.class.UID, ms, l
	ev.JSON = ev.JSON[:0]
	if !ev.NoJSON {
		ev.JSON = l.appendJSON(ev.JSON, ev, 0)
	}
	return nil
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

// matchCacheSize bounds the event names whose rule the mapper remembers:
// a platform's event names are a small vocabulary, matching them against
// every pattern for each event is not free, and a sender of random names
// must not grow the cache without bound.
const matchCacheSize = 4096

func (m *Mapper) match(name string) *rule {
	if r, ok := m.matched.Load(name); ok {
		return r.(*rule)
	}
	r := m.matchRules(name)
	if m.matchedN.Add(1) <= matchCacheSize {
		m.matched.Store(strings.Clone(name), r)
	}
	return r
}

func (m *Mapper) matchRules(name string) *rule {
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

// apply fills ev with the OCSF event of r. It reports false when a
// required attribute has no value, so the event needs the fallback class.
func (m *Mapper) apply(ev *Event, r *rule, doc *jvalue, name, msgID string, ms int64) bool {
	l := r.layout
	ev.vals = append(ev.vals[:0], l.vals...)
	ev.state = append(ev.state[:0], l.state...)
	var profiles int64
	for i := range r.fields {
		f := &r.fields[i]
		if applyField(ev, f, doc) {
			profiles |= f.profileBit
		}
	}
	if r.activity == 99 {
		ev.set(l.activityName, stringValue(name))
	}
	if ev.state[l.severity] == absent {
		ev.set(l.severity, intValue(KindInteger, int64(r.severity)))
	}
	ev.set(l.time, intValue(KindTimestamp, ms))
	ev.set(l.eventCode, stringValue(name))
	if msgID != "" {
		ev.set(l.uid, stringValue(msgID))
	}
	if profiles != 0 {
		ev.set(l.profiles, l.profileItems(profiles))
	}
	return l.fill(ev, profiles)
}

// applyField fills one target from the first source alternative that is
// present and converts; it reports whether the target got a value.
func applyField(ev *Event, f *field, doc *jvalue) bool {
	for _, src := range f.sources {
		v := lookup(doc, src)
		if v == nil || v.kind == jNull {
			continue
		}
		val, ok := convert(v, f.last, f)
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
			if ev.state[f.idNode] == absent {
				ev.set(f.idNode, intValue(f.idAttr.Kind, int64(id)))
			}
		}
		if ev.state[f.node] != absent {
			return false
		}
		ev.set(f.node, val)
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
	for i := range path {
		if v.used == 0 {
			v.used = 1
		}
		if v = lookup(v, path[i:i+1]); v == nil {
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
