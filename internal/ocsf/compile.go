package ocsf

import (
	"errors"
	"fmt"
	"github.com/auditexport/auditexport/internal/suggest"
	"sort"
	"strconv"
	"strings"
)

// rule is a compiled Rule.
type rule struct {
	event    string // the pattern, for messages
	glob     bool
	class    *Class
	activity int32
	severity int32
	fields   []field

	activityName string // the activity's caption
	typeName     string // "<class caption>: <activity caption>"
	layout       *Layout
}

// field is one compiled mapping: an attribute path and the event paths
// that may fill it, first present wins.
type field struct {
	target  []*Attribute
	name    string // the target path as written
	sources [][]string
	values  map[string]int32 // enum translation for the target (or, for a caption, its id sibling)
	idAttr  *Attribute       // the enum id attribute derived from a caption target (status -> status_id)
	profile string           // the profile the target belongs to, "" for the core schema

	// Set when the rule's Layout is built.
	last         *Attribute // the target attribute
	node, idNode int32      // the target's node and idAttr's (-1 without)
	profileBit   int64      // profile's bit in the layout's profile set, 0 without
}

// derived are the attributes the mapper sets itself.
var derived = map[string]string{
	"activity_id":         "set by the rule's activity",
	"activity_name":       "set by the rule's activity",
	"category_uid":        "derived from the class",
	"category_name":       "derived from the class",
	"class_uid":           "derived from the class",
	"class_name":          "derived from the class",
	"type_uid":            "derived as class_uid * 100 + activity_id",
	"type_name":           "derived from the class and activity",
	"time":                "set from the event's timestamp field",
	"raw_data":            "the original event (raw_data = false turns it off)",
	"unmapped":            "what no mapping consumed",
	"metadata.version":    "the OCSF schema version",
	"metadata.uid":        "the event's message id",
	"metadata.product":    "set from product_name, vendor_name and product_version",
	"metadata.profiles":   "derived from the attributes mapped",
	"metadata.event_code": "the event's name",
}

func (c *Config) names() (ts, name, id string) {
	return orDefault(c.TimestampField, "timestamp"), orDefault(c.EventNameField, "eventName"), orDefault(c.MessageIDField, "messageId")
}

// compile validates cfg against the schema table and returns its rules
// (the fallback last). Every problem is reported, each naming the rule,
// the attribute and the nearest known name.
func compile(cfg *Config) ([]rule, error) {
	var errs []error
	if cfg.VendorName == "" {
		errs = append(errs, errors.New("ocsf: vendor_name is required (it is metadata.product.vendor_name, which OCSF requires): set it to the platform's vendor, e.g. vendor_name = \"Acme\""))
	}
	common := map[string]string{}
	values := map[string]map[string]string{}
	decls := append([]Rule(nil), cfg.Rules...)
	if cfg.defaultRules() {
		for k, v := range DefaultFields {
			common[k] = v
		}
		for k, v := range DefaultValues {
			values[k] = v
		}
		decls = append(decls, DefaultRules...)
	}
	for k, v := range cfg.Fields {
		common[k] = v
	}
	for k, v := range cfg.Values {
		values[k] = v
	}
	decls = append(decls, fallbackRule)
	_, eventName, _ := cfg.names()

	// A common field must fit at least one rule's class; in the others it
	// simply does not apply.
	fits := map[string]error{}
	var rules []rule
	for i, d := range decls {
		where := fmt.Sprintf("ocsf: rule %q", d.Event)
		if i >= len(cfg.Rules) {
			where = fmt.Sprintf("ocsf: built-in rule %q", d.Event)
		}
		r, err := compileRule(d, common, values, fits, eventName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		rules = append(rules, r)
	}
	names := make([]string, 0, len(common))
	for k := range common {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if err := fits[k]; err != nil {
			errs = append(errs, fmt.Errorf("ocsf: fields: %q fits no rule's class: %w", k, err))
		}
	}
	for k := range cfg.Values {
		if _, ok := common[k]; ok || strings.HasSuffix(k, "_id") {
			continue
		}
		errs = append(errs, fmt.Errorf("ocsf: values: %q is not an enum id attribute (translations are keyed by the _id attribute, e.g. status_id)", k))
	}
	return rules, errors.Join(errs...)
}

// compileRule compiles d with the common fields under its own. fits records,
// per common field, nil once it fitted a class, else its latest error.
func compileRule(d Rule, common map[string]string, values map[string]map[string]string, fits map[string]error, eventName string) (rule, error) {
	var errs []error
	r := rule{event: d.Event, glob: strings.ContainsAny(d.Event, "*?"), severity: 1, activity: 99}
	if d.Event == "" {
		errs = append(errs, errors.New("the event pattern is empty"))
	}
	r.class = lookupClass(d.Class)
	if r.class == nil {
		return r, fmt.Errorf("class %q is not an OCSF class this version maps (one of %s)%s", d.Class, classList(), didYouMean(d.Class, classNames()))
	}
	var err error
	if d.Activity != "" {
		if r.activity, err = enumID(r.class.Attribute("activity_id"), d.Activity); err != nil {
			errs = append(errs, fmt.Errorf("activity: %w", err))
		}
	}
	if d.Severity != "" {
		if r.severity, err = enumID(r.class.Attribute("severity_id"), d.Severity); err != nil {
			errs = append(errs, fmt.Errorf("severity: %w", err))
		}
	}
	r.activityName, _ = r.class.Attribute("activity_id").EnumCaption(r.activity)
	r.typeName = r.class.Caption + ": " + r.activityName
	merged := map[string]string{}
	fromRule := map[string]bool{}
	for k, v := range common {
		merged[k] = v
	}
	for k, v := range d.Fields {
		merged[k] = v
		fromRule[k] = true
	}
	vals := map[string]map[string]string{}
	for k, v := range values {
		vals[k] = v
	}
	for k, v := range d.Values {
		vals[k] = v
	}
	targets := make([]string, 0, len(merged))
	for k := range merged {
		targets = append(targets, k)
	}
	sort.Strings(targets)
	for _, t := range targets {
		f, err := compileField(r.class, t, merged[t], vals, eventName)
		if !fromRule[t] {
			// Keep the most telling error: one that got past the first
			// segment (a typo inside an object) over "no such attribute".
			first, _, _ := strings.Cut(t, ".")
			shallow := func(e error) bool {
				return e != nil && strings.Contains(e.Error(), fmt.Sprintf("has no attribute %q", first))
			}
			if prev, seen := fits[t]; !seen || (prev != nil && (err == nil || shallow(prev))) {
				fits[t] = err
			}
		}
		if err != nil {
			if fromRule[t] {
				errs = append(errs, err)
			}
			continue
		}
		r.fields = append(r.fields, f)
	}
	return r, errors.Join(errs...)
}

func compileField(c *Class, target, source string, values map[string]map[string]string, eventName string) (field, error) {
	f := field{name: target}
	for p := target; p != ""; {
		if why, ok := derived[p]; ok {
			return f, fmt.Errorf("fields: %q is %s; it cannot be mapped", target, why)
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	path, err := resolveTarget(c, target)
	if err != nil {
		return f, fmt.Errorf("fields: %w", err)
	}
	f.target = path
	for _, a := range path {
		if a.Profile != "" {
			f.profile = a.Profile
		}
	}
	for _, alt := range strings.Split(source, "|") {
		alt = strings.TrimSpace(alt)
		if alt == "$eventName" {
			alt = eventName
		}
		p, err := parseSourcePath(alt)
		if err != nil {
			return f, fmt.Errorf("fields: %q = %q: %w", target, source, err)
		}
		f.sources = append(f.sources, p)
	}
	last := path[len(path)-1]
	f.last = last
	enumAttr := last
	if last.Kind == KindString && len(path) >= 1 {
		// A caption (status) also fills its id (status_id).
		parent := c.Attributes
		if len(path) > 1 {
			parent = ObjectByName(path[len(path)-2].Object).Attributes
		}
		for i := range parent {
			if parent[i].Sibling == last.Name && len(parent[i].Enum) > 0 {
				f.idAttr = &parent[i]
				enumAttr = &parent[i]
			}
		}
	}
	if len(enumAttr.Enum) > 0 {
		if m, ok := values[enumAttr.Name]; ok {
			f.values = map[string]int32{}
			for k, v := range m {
				id, err := enumID(enumAttr, v)
				if err != nil {
					return f, fmt.Errorf("values: %s: %q: %w", enumAttr.Name, k, err)
				}
				f.values[strings.ToLower(k)] = id
			}
		}
	}
	return f, nil
}

// resolveTarget finds the attribute path of target ("src_endpoint.ip") in c.
func resolveTarget(c *Class, target string) ([]*Attribute, error) {
	if target == "" {
		return nil, errors.New("an empty attribute name")
	}
	segs := strings.Split(target, ".")
	attrs := c.Attributes
	owner := c.Name
	var path []*Attribute
	for i, s := range segs {
		a := find(attrs, s)
		if a == nil {
			names := make([]string, len(attrs))
			for j := range attrs {
				names[j] = attrs[j].Name
			}
			return nil, fmt.Errorf("%q: %s has no attribute %q%s", target, owner, s, didYouMean(s, names))
		}
		path = append(path, a)
		if i == len(segs)-1 {
			if a.Kind == KindObject {
				return nil, fmt.Errorf("%q is a %s object; map its attributes (e.g. %s.%s)", target, a.Object, target, firstAttr(a.Object))
			}
			break
		}
		if a.Kind != KindObject {
			return nil, fmt.Errorf("%q: %s is a %s, not an object", target, strings.Join(segs[:i+1], "."), a.Kind)
		}
		if a.Array {
			return nil, fmt.Errorf("%q: %s is an array of %s objects, which fields cannot fill", target, strings.Join(segs[:i+1], "."), a.Object)
		}
		o := ObjectByName(a.Object)
		if o == nil {
			return nil, fmt.Errorf("%q: %s is a %s object, whose attributes this version does not map", target, strings.Join(segs[:i+1], "."), a.Object)
		}
		attrs, owner = o.Attributes, o.Name
	}
	return path, nil
}

func firstAttr(object string) string {
	if o := ObjectByName(object); o != nil {
		for _, a := range o.Attributes {
			if a.Kind != KindObject {
				return a.Name
			}
		}
	}
	return "name"
}

// parseSourcePath splits an event path ("actor.email", "tags.0") into its
// segments; a segment of digits indexes an array.
func parseSourcePath(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("an empty event path")
	}
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("event path %q has an empty segment", p)
		}
	}
	return segs, nil
}

func lookupClass(s string) *Class {
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return ClassByUID(int32(n))
	}
	key := normalize(s)
	for _, c := range Classes() {
		if normalize(c.Name) == key || normalize(c.Caption) == key {
			return c
		}
	}
	return nil
}

// enumID reads an enum value by id or caption (case, spaces and
// underscores ignored).
func enumID(a *Attribute, s string) (int32, error) {
	if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32); err == nil {
		if _, ok := a.EnumCaption(int32(n)); ok {
			return int32(n), nil
		}
		return 0, fmt.Errorf("%d is not a value of %s (%s)", n, a.Name, enumList(a))
	}
	key := normalize(s)
	names := make([]string, len(a.Enum))
	for i, v := range a.Enum {
		if normalize(v.Caption) == key {
			return v.ID, nil
		}
		names[i] = v.Caption
	}
	return 0, fmt.Errorf("%q is not a value of %s (%s)%s", s, a.Name, enumList(a), didYouMean(s, names))
}

func enumList(a *Attribute) string {
	parts := make([]string, len(a.Enum))
	for i, v := range a.Enum {
		parts[i] = fmt.Sprintf("%d %s", v.ID, v.Caption)
	}
	return strings.Join(parts, ", ")
}

// normalize lowercases s and drops spaces, underscores and hyphens, so
// "Password Change", "password_change" and "passwordchange" compare equal.
func normalize(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '_' || c == '-' || c == '\t':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// sameCaption is normalize(a) == normalize(b) without allocating.
func sameCaption(a, b string) bool {
	i, j := 0, 0
	for {
		for i < len(a) && (a[i] == ' ' || a[i] == '_' || a[i] == '-' || a[i] == '\t') {
			i++
		}
		for j < len(b) && (b[j] == ' ' || b[j] == '_' || b[j] == '-' || b[j] == '\t') {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		ca, cb := a[i], b[j]
		if ca >= 'A' && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if cb >= 'A' && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
		i++
		j++
	}
}

func classNames() []string {
	var out []string
	for _, c := range Classes() {
		out = append(out, c.Name)
	}
	return out
}

func classList() string {
	var parts []string
	for _, c := range Classes() {
		parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.UID))
	}
	return strings.Join(parts, ", ")
}

// didYouMean returns "; did you mean X?" for the candidate nearest to s, when
// one is near enough to be a likely typo.
func didYouMean(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := suggest.Distance(normalize(s), normalize(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}
