package ocsf

import (
	"sort"
	"strings"
)

// Attributes returns the dotted paths of the scalar attributes the mapper
// may set on events of class classUID ("src_endpoint.ip", "metadata.uid"),
// sorted, plus every required scalar of the class and of the required
// objects below it, so a columnar encoder can leave out the columns that
// would always be null. It returns nil for a class the table lacks.
//
// The set follows Map: the rules' targets for the class (with the enum id
// a caption also fills), the derived attributes, the caption of each enum
// id, and the required enum ids Map sets to Unknown in each object present.
func (m *Mapper) Attributes(classUID int32) []string {
	c := ClassByUID(classUID)
	if c == nil {
		return nil
	}
	set := map[string]bool{}
	for _, p := range []string{"activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid", "type_name",
		"unmapped", "metadata.event_code", "metadata.uid", "metadata.version"} {
		set[p] = true
	}
	if m.rawData {
		set["raw_data"] = true
	}
	for _, f := range m.product.Fields {
		set["metadata.product."+f.Name] = true
	}
	for i := range m.rules {
		r := &m.rules[i]
		if r.class != c {
			continue
		}
		for j := range r.fields {
			f := &r.fields[j]
			set[f.name] = true
			if f.idAttr != nil {
				set[parentPath(f.name)+f.idAttr.Name] = true
			}
			if f.profile != "" {
				set["metadata.profiles"] = true
			}
		}
	}
	addRequired(set, c.Attributes, "", map[string]bool{})
	// Captions of the enum ids present, and the required enum ids (with
	// their captions) of each object present.
	objects := map[string]bool{"": true}
	for p := range set {
		for q := p; strings.Contains(q, "."); {
			q = q[:strings.LastIndexByte(q, '.')]
			objects[q+"."] = true
		}
	}
	for obj := range objects {
		attrs := attrsAt(c, obj)
		for i := range attrs {
			a := &attrs[i]
			if len(a.Enum) == 0 || a.Array {
				continue
			}
			present := set[obj+a.Name]
			if !present && a.Requirement == Required && a.Name != "activity_id" && a.Name != "severity_id" {
				if _, ok := a.EnumCaption(0); ok {
					set[obj+a.Name], present = true, true
				}
			}
			if present && a.Sibling != "" && find(attrs, a.Sibling) != nil {
				set[obj+a.Sibling] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// addRequired adds the required scalars of attrs, and those of the required
// objects below, outside profiles.
func addRequired(set map[string]bool, attrs []Attribute, prefix string, onPath map[string]bool) {
	for i := range attrs {
		a := &attrs[i]
		if a.Requirement != Required || a.Profile != "" || a.Array && a.Kind == KindObject {
			continue
		}
		if a.Kind != KindObject {
			set[prefix+a.Name] = true
			continue
		}
		o := ObjectByName(a.Object)
		if o == nil || onPath[a.Object] {
			continue
		}
		onPath[a.Object] = true
		addRequired(set, o.Attributes, prefix+a.Name+".", onPath)
		delete(onPath, a.Object)
	}
}

// attrsAt returns the attributes of the object at prefix ("" the class,
// "src_endpoint.location." an object below), or nil.
func attrsAt(c *Class, prefix string) []Attribute {
	attrs := c.Attributes
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "."), ".") {
		if seg == "" {
			continue
		}
		a := find(attrs, seg)
		if a == nil || a.Kind != KindObject || a.Array {
			return nil
		}
		o := ObjectByName(a.Object)
		if o == nil {
			return nil
		}
		attrs = o.Attributes
	}
	return attrs
}

// parentPath is "a.b." for "a.b.c", "" for "c".
func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i+1]
	}
	return ""
}
