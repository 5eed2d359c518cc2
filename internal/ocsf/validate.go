package ocsf

import (
	"errors"
	"fmt"
	"strconv"
)

// Validate checks an OCSF event (JSON) against the schema table: a known
// class; class_uid, category_uid and type_uid consistent; every required
// attribute present (an attribute of a profile only when metadata.profiles
// names it), in the event and in each object present; enum ids defined;
// values of the attribute's type; no attribute the class or object does not
// define. It reads the JSON on its own, so it checks the mapper's output
// rather than trusting its structures.
func Validate(doc []byte) error {
	v, err := parseJSON(doc)
	if err != nil {
		return err
	}
	if v.kind != jObject {
		return fmt.Errorf("a JSON %s, not an object", v.kind)
	}
	classUID, ok := intField(&v, "class_uid")
	if !ok {
		return errors.New("class_uid: missing or not an integer")
	}
	c := ClassByUID(int32(classUID))
	if c == nil {
		return fmt.Errorf("class_uid: %d is not a class this version maps", classUID)
	}
	var errs []error
	activity, _ := intField(&v, "activity_id")
	if cat, _ := intField(&v, "category_uid"); cat != int64(c.CategoryUID) {
		errs = append(errs, fmt.Errorf("category_uid: %d, class %s is in category %d", cat, c.Name, c.CategoryUID))
	}
	if tu, _ := intField(&v, "type_uid"); tu != classUID*100+activity {
		errs = append(errs, fmt.Errorf("type_uid: %d, want class_uid*100+activity_id = %d", tu, classUID*100+activity))
	}
	profiles := map[string]bool{}
	if md := v.field("metadata"); md != nil {
		if p := md.field("profiles"); p != nil {
			for i := range p.items {
				if s, ok := p.items[i].text(); ok {
					profiles[s] = true
				}
			}
		}
		if ver := md.field("version"); ver == nil || string(ver.raw) != strconv.Quote(SchemaVersion) {
			errs = append(errs, fmt.Errorf("metadata.version: want %q", SchemaVersion))
		}
	}
	errs = append(errs, checkObject(&v, c.Attributes, "", profiles, true)...)
	return errors.Join(errs...)
}

func intField(v *jvalue, name string) (int64, bool) {
	f := v.field(name)
	if f == nil || f.kind != jNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(string(f.raw), 10, 64)
	return n, err == nil
}

func checkObject(v *jvalue, attrs []Attribute, prefix string, profiles map[string]bool, top bool) []error {
	var errs []error
	for i := range v.fields {
		name := string(v.fields[i].key)
		if find(attrs, name) == nil {
			errs = append(errs, fmt.Errorf("%s%s: not an attribute here", prefix, name))
		}
	}
	for i := range attrs {
		a := &attrs[i]
		path := prefix + a.Name
		f := v.field(a.Name)
		if f == nil || f.kind == jNull {
			if a.Requirement == Required && (a.Profile == "" || profiles[a.Profile]) {
				errs = append(errs, fmt.Errorf("%s: required, missing", path))
			}
			continue
		}
		if a.Array {
			if f.kind != jArray {
				errs = append(errs, fmt.Errorf("%s: want an array, got a JSON %s", path, f.kind))
				continue
			}
			for j := range f.items {
				errs = append(errs, checkValue(&f.items[j], a, fmt.Sprintf("%s[%d]", path, j), profiles, top)...)
			}
			continue
		}
		errs = append(errs, checkValue(f, a, path, profiles, top)...)
	}
	return errs
}

func checkValue(f *jvalue, a *Attribute, path string, profiles map[string]bool, top bool) []error {
	want := map[Kind]jkind{KindString: jString, KindInteger: jNumber, KindLong: jNumber, KindFloat: jNumber,
		KindBoolean: jBool, KindTimestamp: jNumber, KindObject: jObject}
	if k, ok := want[a.Kind]; ok && f.kind != k {
		return []error{fmt.Errorf("%s: want %s, got a JSON %s", path, a.Kind, f.kind)}
	}
	switch a.Kind {
	case KindInteger, KindLong, KindTimestamp:
		n, err := strconv.ParseInt(string(f.raw), 10, 64)
		if err != nil {
			return []error{fmt.Errorf("%s: %s is not an integer", path, f.raw)}
		}
		// class_uid and category_uid list only the base values; they are
		// checked against the class instead.
		classIDs := top && (a.Name == "class_uid" || a.Name == "category_uid")
		if len(a.Enum) > 0 && !classIDs {
			if _, ok := a.EnumCaption(int32(n)); !ok || n != int64(int32(n)) {
				return []error{fmt.Errorf("%s: %d is not a value of the enum (%s)", path, n, enumList(a))}
			}
		}
	case KindObject:
		if o := ObjectByName(a.Object); o != nil {
			return checkObject(f, o.Attributes, path+".", profiles, false)
		}
	}
	return nil
}
