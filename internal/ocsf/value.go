package ocsf

import (
	"math"
	"sort"
	"strconv"
)

// Value is one attribute value of a mapped event, typed by the schema
// table, so that an encoder (JSON here, Parquet elsewhere) walks the event
// without reflection.
type Value struct {
	Kind   Kind
	Array  bool    // Items holds the elements
	Str    string  // KindString; KindJSON holds JSON text
	Int    int64   // KindInteger, KindLong, KindTimestamp (epoch ms)
	Float  float64 // KindFloat
	Bool   bool    // KindBoolean
	Fields []Field // KindObject, sorted by name
	Items  []Value // when Array
}

// Field is a named attribute of an object value.
type Field struct {
	Name  string
	Value Value
}

// Field returns the field called name of an object value, or nil.
func (v *Value) Field(name string) *Value {
	i := sort.Search(len(v.Fields), func(i int) bool { return v.Fields[i].Name >= name })
	if i < len(v.Fields) && v.Fields[i].Name == name {
		return &v.Fields[i].Value
	}
	return nil
}

// AppendJSON appends v as JSON.
func (v *Value) AppendJSON(b []byte) []byte {
	if v.Array {
		b = append(b, '[')
		for i := range v.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.Items[i].AppendJSON(b)
		}
		return append(b, ']')
	}
	switch v.Kind {
	case KindString:
		return appendQuoted(b, v.Str)
	case KindInteger, KindLong, KindTimestamp:
		return strconv.AppendInt(b, v.Int, 10)
	case KindFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.Float, 'g', -1, 64)
	case KindBoolean:
		return strconv.AppendBool(b, v.Bool)
	case KindJSON:
		if v.Str == "" {
			return append(b, "null"...)
		}
		return append(b, v.Str...)
	case KindObject:
		b = append(b, '{')
		for i := range v.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, v.Fields[i].Name)
			b = append(b, ':')
			b = v.Fields[i].Value.AppendJSON(b)
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// insert adds a field keeping Fields sorted and returns it.
func (o *Value) insert(name string, val Value) *Value {
	i := sort.Search(len(o.Fields), func(i int) bool { return o.Fields[i].Name >= name })
	o.Fields = append(o.Fields, Field{})
	copy(o.Fields[i+1:], o.Fields[i:])
	o.Fields[i] = Field{Name: name, Value: val}
	return &o.Fields[i].Value
}

func stringValue(s string) Value     { return Value{Kind: KindString, Str: s} }
func intValue(k Kind, n int64) Value { return Value{Kind: k, Int: n} }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
