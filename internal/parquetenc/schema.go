package parquetenc

import (
	"fmt"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// maxObjectDepth bounds how deep OCSF objects nest in a class's columns
// (src_endpoint.location.city is depth 2, actor.user.account.name depth 3).
// OCSF objects refer to each other in cycles; the schema table carries
// only the objects we map, and this keeps the column count small.
const maxObjectDepth = 3

// column is one node of a Parquet schema with what building a row needs:
// for a leaf its column index and the definition level of a present value.
type column struct {
	name     string
	path     string // dotted, for messages
	kind     ocsf.Kind
	required bool
	list     bool // a LIST of scalars
	children []*column
	index    int // leaf column index
	id       int // the node's number in its tree, for bindings
	count    int // the root's: how many nodes the tree has
	def      int // definition level when this node is present
	rep      int // repetition level of the node (the list's element for a list)
}

// prunedSchema builds the Parquet schema of an OCSF class with the columns
// of paths only (dotted scalar attribute paths, Mapper.Attributes), nested
// as the class nests them, with classSchema's types and repetition.
func prunedSchema(c *ocsf.Class, paths []string) (*parquet.Schema, *column, error) {
	want := wantTree{}
	for _, p := range paths {
		t := want
		for _, seg := range strings.Split(p, ".") {
			if t[seg] == nil {
				t[seg] = wantTree{}
			}
			t = t[seg]
		}
	}
	root := &column{kind: ocsf.KindObject, required: true}
	group := prunedGroup(c.Attributes, want, root, "")
	if len(group) == 0 {
		return nil, nil, fmt.Errorf("class %s: no columns", c.Name)
	}
	s := parquet.NewSchema(c.Name, group)
	if err := resolve(s, root, nil, 0, 0); err != nil {
		return nil, nil, fmt.Errorf("class %s: %w", c.Name, err)
	}
	number(root, root)
	return s, root, nil
}

// wantTree is a set of attribute paths as a tree of their segments.
type wantTree map[string]wantTree

func prunedGroup(attrs []ocsf.Attribute, want wantTree, parent *column, prefix string) parquet.Group {
	g := parquet.Group{}
	for i := range attrs {
		a := &attrs[i]
		sub, ok := want[a.Name]
		if !ok {
			continue
		}
		col := &column{name: a.Name, path: prefix + a.Name, kind: a.Kind, required: a.Requirement == ocsf.Required && a.Profile == ""}
		var node parquet.Node
		if a.Kind == ocsf.KindObject {
			o := ocsf.ObjectByName(a.Object)
			if a.Array || o == nil {
				continue
			}
			inner := prunedGroup(o.Attributes, sub, col, col.path+".")
			if len(inner) == 0 {
				continue
			}
			node = inner
		} else {
			node = scalarNode(a.Kind)
			if a.Array {
				col.list = true
				node = parquet.List(parquet.Optional(node))
			} else if lowCardinality(attrs, a, col.path) {
				node = parquet.Encoded(node, &parquet.RLEDictionary)
			}
		}
		if col.required && !col.list {
			node = parquet.Required(node)
		} else {
			node = parquet.Optional(node)
		}
		g[a.Name] = node
		parent.children = append(parent.children, col)
	}
	return g
}

// classSchema builds the Parquet schema of an OCSF class: an attribute is a
// column (objects nested groups), REQUIRED when OCSF requires it outside a
// profile, else OPTIONAL. Arrays of objects and objects the table does not
// carry are left out; their data stays in unmapped and raw_data.
func classSchema(c *ocsf.Class) (*parquet.Schema, *column, error) {
	root := &column{kind: ocsf.KindObject, required: true}
	group := parquet.Group{}
	for i := range c.Attributes {
		a := &c.Attributes[i]
		node, col := attrNode(c.Attributes, a, "", 0, map[string]bool{})
		if node == nil {
			continue
		}
		group[a.Name] = node
		root.children = append(root.children, col)
	}
	s := parquet.NewSchema(c.Name, group)
	if err := resolve(s, root, nil, 0, 0); err != nil {
		return nil, nil, fmt.Errorf("class %s: %w", c.Name, err)
	}
	number(root, root)
	return s, root, nil
}

func attrNode(attrs []ocsf.Attribute, a *ocsf.Attribute, prefix string, depth int, onPath map[string]bool) (parquet.Node, *column) {
	col := &column{name: a.Name, path: prefix + a.Name, kind: a.Kind, required: a.Requirement == ocsf.Required && a.Profile == ""}
	var node parquet.Node
	switch a.Kind {
	case ocsf.KindObject:
		o := ocsf.ObjectByName(a.Object)
		if a.Array || o == nil || depth >= maxObjectDepth || onPath[a.Object] {
			return nil, nil
		}
		onPath[a.Object] = true
		g := parquet.Group{}
		for i := range o.Attributes {
			sub := &o.Attributes[i]
			n, c := attrNode(o.Attributes, sub, col.path+".", depth+1, onPath)
			if n == nil {
				continue
			}
			g[sub.Name] = n
			col.children = append(col.children, c)
		}
		delete(onPath, a.Object)
		if len(g) == 0 {
			return nil, nil
		}
		node = g
	default:
		node = scalarNode(a.Kind)
		if a.Array {
			col.list = true
			node = parquet.List(parquet.Optional(node))
		} else if lowCardinality(attrs, a, col.path) {
			node = parquet.Encoded(node, &parquet.RLEDictionary)
		}
	}
	if col.required && !col.list {
		return parquet.Required(node), col
	}
	return parquet.Optional(node), col
}

// lowCardinalityPaths are attributes that hold one value, or a handful,
// across an object: the mapper's constants and the event's name.
var lowCardinalityPaths = map[string]bool{
	"metadata.version": true, "metadata.event_code": true, "metadata.log_name": true, "metadata.log_provider": true,
	"metadata.product.name": true, "metadata.product.vendor_name": true, "metadata.product.version": true,
	"metadata.product.lang": true, "metadata.product.uid": true,
}

// lowCardinality reports whether a column of attribute a (one of attrs,
// its object's attributes) is dictionary encoded: enum ids, their
// captions, the class's ids with captions (class_uid, type_uid, …) and
// lowCardinalityPaths. Such a column is then a dictionary of a few values
// and runs of small indices, instead of the same bytes in every row
// (class_name, type_name, the product) for zstd to find again page after
// page. A column whose dictionary grows past maxDictionaryBytes falls back
// to PLAIN pages, so a guess wrong for some source costs little.
func lowCardinality(attrs []ocsf.Attribute, a *ocsf.Attribute, path string) bool {
	switch a.Kind {
	case ocsf.KindInteger, ocsf.KindLong, ocsf.KindString:
	default:
		return false
	}
	if len(a.Enum) > 0 || a.Sibling != "" || lowCardinalityPaths[path] {
		return true
	}
	for i := range attrs {
		if attrs[i].Sibling == a.Name {
			return true // the caption of an enum id
		}
	}
	return false
}

// maxDictionaryBytes bounds a dictionary encoded column's dictionary in a
// row group; past it the column's pages are PLAIN.
const maxDictionaryBytes = 64 << 10

func scalarNode(k ocsf.Kind) parquet.Node {
	switch k {
	case ocsf.KindInteger:
		return parquet.Int(32)
	case ocsf.KindLong:
		return parquet.Int(64)
	case ocsf.KindFloat:
		return parquet.Leaf(parquet.DoubleType)
	case ocsf.KindBoolean:
		return parquet.Leaf(parquet.BooleanType)
	case ocsf.KindTimestamp:
		// Milliseconds: Athena and Security Lake cannot read nanoseconds.
		return parquet.Timestamp(parquet.Millisecond)
	}
	return parquet.String() // strings, and JSON (unmapped) as its text
}

// number gives each node below c its id, counting them in root.
func number(root, c *column) {
	for _, ch := range c.children {
		ch.id = root.count
		root.count++
		number(root, ch)
	}
}

// resolve fills in the leaf indices and levels from the schema itself, so
// the row builder agrees with parquet-go's column order by construction.
func resolve(s *parquet.Schema, c *column, path []string, def, rep int) error {
	for _, ch := range c.children {
		p := append(append([]string(nil), path...), ch.name)
		d := def
		if !ch.required || ch.list {
			d++
		}
		ch.def, ch.rep = d, rep
		switch {
		case ch.list:
			leaf, ok := s.Lookup(append(p, "list", "element")...)
			if !ok {
				return fmt.Errorf("no column %v", p)
			}
			ch.index = leaf.ColumnIndex
			if leaf.MaxDefinitionLevel != d+2 || leaf.MaxRepetitionLevel != rep+1 {
				return fmt.Errorf("column %v: levels %d/%d", p, leaf.MaxDefinitionLevel, leaf.MaxRepetitionLevel)
			}
		case len(ch.children) > 0:
			if err := resolve(s, ch, p, d, rep); err != nil {
				return err
			}
		default:
			leaf, ok := s.Lookup(p...)
			if !ok {
				return fmt.Errorf("no column %v", p)
			}
			if leaf.MaxDefinitionLevel != d {
				return fmt.Errorf("column %v: definition level %d, want %d", p, leaf.MaxDefinitionLevel, d)
			}
			ch.index = leaf.ColumnIndex
		}
	}
	return nil
}

// Raw event columns, in schema (name) order.
const (
	rawEvent = iota
	rawEventName
	rawMessageID
	rawSeq
	rawTime
)

var rawSchema = parquet.NewSchema("audit_event", parquet.Group{
	"time":       parquet.Required(parquet.Timestamp(parquet.Millisecond)),
	"event_name": parquet.Required(parquet.Encoded(parquet.String(), &parquet.RLEDictionary)), // one per object
	"message_id": parquet.Required(parquet.String()),
	"seq":        parquet.Required(parquet.Int(64)),
	"event":      parquet.Required(parquet.String()),
})
