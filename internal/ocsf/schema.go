// Package ocsf maps audit events onto the Open Cybersecurity Schema
// Framework (OCSF) 1.3.0: the schema table of the classes we emit
// (schema_gen.go, generated from the OCSF schema repository), mapping rules
// an operator declares, their validation against the table, the mapper that
// turns a stored event into OCSF JSON, and a validator for OCSF output.
package ocsf

//go:generate go run ./internal/gen -schema ${OCSF_SCHEMA_DIR} -out schema_gen.go

import (
	"sort"
)

// Kind is how an attribute's value is stored.
type Kind uint8

// The kinds of attribute values. Integer is 32-bit (OCSF integer_t, enum
// ids), Long 64-bit; Timestamp is epoch milliseconds (timestamp_t); JSON is
// free-form (json_t and the generic "object", e.g. unmapped).
const (
	KindString Kind = iota + 1
	KindInteger
	KindLong
	KindFloat
	KindBoolean
	KindTimestamp
	KindJSON
	KindObject
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInteger:
		return "integer"
	case KindLong:
		return "long"
	case KindFloat:
		return "float"
	case KindBoolean:
		return "boolean"
	case KindTimestamp:
		return "timestamp"
	case KindJSON:
		return "json"
	case KindObject:
		return "object"
	}
	return "unknown"
}

// Requirement is OCSF's requirement level of an attribute.
type Requirement uint8

// Requirement levels.
const (
	Optional Requirement = iota
	Recommended
	Required
)

func (r Requirement) String() string {
	switch r {
	case Required:
		return "required"
	case Recommended:
		return "recommended"
	}
	return "optional"
}

// EnumValue is one value of an enum attribute.
type EnumValue struct {
	ID      int32
	Caption string
}

// Attribute is one attribute of a class or object.
type Attribute struct {
	Name        string
	Type        string // the OCSF type name, e.g. "ip_t" or "network_endpoint"
	Kind        Kind
	Object      string // the object type when Kind is KindObject
	Array       bool
	Requirement Requirement
	Profile     string // the profile that adds the attribute, "" for the core schema
	Sibling     string // for an enum id, the attribute holding its caption (e.g. severity_id -> severity)
	Deprecated  bool
	Enum        []EnumValue
}

// EnumCaption is the caption of id, and whether the enum defines it.
func (a *Attribute) EnumCaption(id int32) (string, bool) {
	for _, v := range a.Enum {
		if v.ID == id {
			return v.Caption, true
		}
	}
	return "", false
}

// Object is an OCSF object type with its attributes (sorted by name).
type Object struct {
	Name       string
	Caption    string
	Attributes []Attribute
}

// Attribute returns the attribute called name, or nil.
func (o *Object) Attribute(name string) *Attribute { return find(o.Attributes, name) }

// Class is an OCSF event class with its resolved attributes (sorted by
// name): those of base_event and its category base, its includes and
// profiles.
type Class struct {
	UID          int32
	Name         string
	Caption      string
	CategoryUID  int32
	CategoryName string
	Attributes   []Attribute
}

// Attribute returns the attribute called name, or nil.
func (c *Class) Attribute(name string) *Attribute { return find(c.Attributes, name) }

func find(attrs []Attribute, name string) *Attribute {
	i := sort.Search(len(attrs), func(i int) bool { return attrs[i].Name >= name })
	if i < len(attrs) && attrs[i].Name == name {
		return &attrs[i]
	}
	return nil
}

var (
	objectsByName = map[string]*Object{}
	classesByUID  = map[int32]*Class{}
	classesByName = map[string]*Class{}
)

func init() {
	for i := range objectTable {
		objectsByName[objectTable[i].Name] = &objectTable[i]
	}
	for i := range classTable {
		c := &classTable[i]
		classesByUID[c.UID] = c
		classesByName[c.Name] = c
	}
}

// Classes are the classes in the table, in table order.
func Classes() []*Class {
	out := make([]*Class, len(classTable))
	for i := range classTable {
		out[i] = &classTable[i]
	}
	return out
}

// ClassByUID returns the class with uid, or nil.
func ClassByUID(uid int32) *Class { return classesByUID[uid] }

// ClassByName returns the class with the OCSF name (e.g. "api_activity"), or nil.
func ClassByName(name string) *Class { return classesByName[name] }

// ObjectByName returns the object type called name, or nil when the table
// does not carry its attributes.
func ObjectByName(name string) *Object { return objectsByName[name] }
