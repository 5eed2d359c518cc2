package ocsf

import (
	"fmt"
	"sort"
)

// Layout is the output of one rule, compiled once when the mapper is built:
// every attribute the rule's events can hold, as a tree of nodes in
// pre-order (a parent before its children, children sorted by name). Map
// fills an event's values by node index instead of building a tree per
// event, and writes JSON by walking the nodes with their keys, and the
// constants (class, category, activity, product, …), already encoded.
// Columnar encoders bind their columns to a Layout's nodes once, by path.
type Layout struct {
	class *Class
	nodes []node
	// vals and state are the template an event starts from: the constants
	// set, everything else absent.
	vals  []Value
	state []uint8

	// The nodes Map fills itself; -1 when the layout has none.
	time, eventCode, uid, severity, activityName, profiles, unmapped, rawData int32

	unknownIDs []unknownID
	captions   []caption
	required   []requirement
	// profileNames are the profiles the rule's fields belong to, sorted:
	// bit i of an event's profile set is profileNames[i].
	profileNames []string
}

type node struct {
	name      string
	path      string // dotted, from the event's root
	key       []byte // the JSON key with its colon: "name":
	attr      *Attribute
	parent    int32
	children  []int32
	object    bool
	constJSON []byte // the value's JSON when it is a constant
}

// Node states of an event.
const (
	absent uint8 = iota
	present
	constant // present, with the layout's value and JSON
)

// unknownID is a required enum id of an object (with its caption) that Map
// sets to Unknown (0) when the object is present without it.
type unknownID struct{ object, id, sibling int32 }

// caption is an enum id and the attribute holding its caption.
type caption struct{ id, sibling int32 }

// requirement is a required attribute of an object node; node is -1 when
// the layout cannot hold it (the object is then never complete). profile
// is the bit of its profile, 0 for the core schema, -1 for a profile the
// rule never uses (so it never counts).
type requirement struct {
	object, node int32
	profile      int64
}

// Len is the number of nodes; node 0 is the event itself.
func (l *Layout) Len() int { return len(l.nodes) }

// Path is node i's dotted attribute path ("src_endpoint.ip"), "" for the root.
func (l *Layout) Path(i int) string { return l.nodes[i].path }

// Parent is the index of node i's object, -1 for the root.
func (l *Layout) Parent(i int) int { return int(l.nodes[i].parent) }

// IsObject reports whether node i is an object (its value is its children).
func (l *Layout) IsObject(i int) bool { return l.nodes[i].object }

// tnode is a node while the layout is built.
type tnode struct {
	attr     *Attribute
	children map[string]*tnode
}

// layoutBuilder collects the attribute paths of a rule.
type layoutBuilder struct {
	class *Class
	root  tnode
}

// add adds the attribute path (resolved in the class) and returns nothing:
// node indices are known only once the tree is flattened.
func (b *layoutBuilder) add(path []*Attribute) {
	t := &b.root
	for _, a := range path {
		if t.children == nil {
			t.children = map[string]*tnode{}
		}
		c := t.children[a.Name]
		if c == nil {
			c = &tnode{attr: a}
			t.children[a.Name] = c
		}
		t = c
	}
}

func (b *layoutBuilder) addPath(p string) error {
	path, err := resolveTarget(b.class, p)
	if err != nil {
		return fmt.Errorf("layout of class %s: %w", b.class.Name, err)
	}
	b.add(path)
	return nil
}

// attrsOf is the attributes of an object node's type (the class for the root).
func (b *layoutBuilder) attrsOf(t *tnode) []Attribute {
	if t.attr == nil {
		return b.class.Attributes
	}
	if o := ObjectByName(t.attr.Object); o != nil {
		return o.Attributes
	}
	return nil
}

// addImplied adds, in every object of the tree, the required enum ids Map
// sets to Unknown (with their captions) and the caption of each enum id.
func (b *layoutBuilder) addImplied(t *tnode) {
	attrs := b.attrsOf(t)
	if t.children == nil {
		t.children = map[string]*tnode{}
	}
	for _, c := range t.children {
		if c.attr.Kind == KindObject && !c.attr.Array {
			b.addImplied(c)
		}
	}
	for i := range attrs {
		a := &attrs[i]
		if len(a.Enum) == 0 || a.Array {
			continue
		}
		_, has := t.children[a.Name]
		if !has && a.Requirement == Required && a.Name != "activity_id" && a.Name != "severity_id" {
			if _, ok := a.EnumCaption(0); ok {
				t.children[a.Name] = &tnode{attr: a}
				has = true
			}
		}
		if has && a.Sibling != "" {
			if s := find(attrs, a.Sibling); s != nil && t.children[a.Sibling] == nil {
				t.children[a.Sibling] = &tnode{attr: s}
			}
		}
	}
}

// flatten lays the tree out in pre-order.
func (b *layoutBuilder) flatten(l *Layout, t *tnode, parent int32, prefix string) {
	names := make([]string, 0, len(t.children))
	for name := range t.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := t.children[name]
		i := int32(len(l.nodes))
		n := node{name: name, path: prefix + name, attr: c.attr, parent: parent,
			key: append(appendQuoted(nil, name), ':'), object: c.attr.Kind == KindObject && !c.attr.Array}
		l.nodes = append(l.nodes, n)
		l.nodes[parent].children = append(l.nodes[parent].children, i)
		if n.object {
			b.flatten(l, c, i, n.path+".")
		}
	}
}

// layout compiles r's output for mapper m.
func (m *Mapper) layout(r *rule) (*Layout, error) {
	b := &layoutBuilder{class: r.class}
	for i := range r.fields {
		f := &r.fields[i]
		b.add(f.target)
		if f.idAttr != nil {
			b.add(append(append([]*Attribute(nil), f.target[:len(f.target)-1]...), f.idAttr))
		}
	}
	derivedPaths := []string{"activity_id", "activity_name", "category_uid", "category_name", "class_uid", "class_name",
		"severity_id", "time", "type_uid", "type_name", "unmapped", "metadata.event_code", "metadata.uid", "metadata.version"}
	if m.rawData {
		derivedPaths = append(derivedPaths, "raw_data")
	}
	for _, f := range m.product.Fields {
		derivedPaths = append(derivedPaths, "metadata.product."+f.Name)
	}
	profiles := map[string]bool{}
	for i := range r.fields {
		if p := r.fields[i].profile; p != "" {
			profiles[p] = true
		}
	}
	if len(profiles) > 0 {
		derivedPaths = append(derivedPaths, "metadata.profiles")
	}
	for _, p := range derivedPaths {
		if err := b.addPath(p); err != nil {
			return nil, err
		}
	}
	b.addImplied(&b.root)

	l := &Layout{class: r.class, nodes: []node{{parent: -1, object: true}}}
	b.flatten(l, &b.root, 0, "")
	l.profileNames = sortedKeys(profiles)
	if len(l.profileNames) > 63 {
		return nil, fmt.Errorf("class %s: more than 63 profiles", r.class.Name)
	}
	byPath := make(map[string]int32, len(l.nodes))
	for i := range l.nodes {
		byPath[l.nodes[i].path] = int32(i)
	}
	at := func(p string) int32 {
		if i, ok := byPath[p]; ok {
			return i
		}
		return -1
	}
	l.time, l.eventCode, l.uid, l.severity = at("time"), at("metadata.event_code"), at("metadata.uid"), at("severity_id")
	l.activityName, l.profiles, l.unmapped, l.rawData = at("activity_name"), at("metadata.profiles"), at("unmapped"), at("raw_data")

	l.vals = make([]Value, len(l.nodes))
	l.state = make([]uint8, len(l.nodes))
	l.state[0] = present
	c := r.class
	setConst := func(p string, v Value) {
		i := at(p)
		v.Kind = l.nodes[i].attr.Kind
		l.vals[i], l.state[i] = v, constant
		l.nodes[i].constJSON = v.AppendJSON(nil)
	}
	setConst("activity_id", intValue(0, int64(r.activity)))
	if r.activity != 99 {
		setConst("activity_name", stringValue(r.activityName))
	}
	setConst("category_uid", intValue(0, int64(c.CategoryUID)))
	setConst("category_name", stringValue(c.CategoryName))
	setConst("class_uid", intValue(0, int64(c.UID)))
	setConst("class_name", stringValue(c.Caption))
	setConst("type_uid", intValue(0, int64(c.UID)*100+int64(r.activity)))
	setConst("type_name", stringValue(r.typeName))
	setConst("metadata.version", stringValue(SchemaVersion))
	for _, f := range m.product.Fields {
		setConst("metadata.product."+f.Name, f.Value)
	}

	for i := range r.fields {
		f := &r.fields[i]
		f.node, f.idNode, f.profileBit = at(f.name), -1, 0
		if f.idAttr != nil {
			f.idNode = at(parentPath(f.name) + f.idAttr.Name)
		}
		if f.profile != "" {
			f.profileBit = 1 << sort.SearchStrings(l.profileNames, f.profile)
		}
	}
	l.implied()
	return l, nil
}

// implied lists, per object node, the unknown ids to set, the captions to
// fill and the attributes required.
func (l *Layout) implied() {
	for oi := range l.nodes {
		o := &l.nodes[oi]
		if !o.object {
			continue
		}
		attrs := l.attrsOf(oi)
		child := func(name string) int32 {
			for _, c := range o.children {
				if l.nodes[c].name == name {
					return c
				}
			}
			return -1
		}
		for i := range attrs {
			a := &attrs[i]
			n := child(a.Name)
			if len(a.Enum) > 0 && !a.Array && n >= 0 {
				sib := int32(-1)
				if a.Sibling != "" && find(attrs, a.Sibling) != nil {
					sib = child(a.Sibling)
				}
				if a.Requirement == Required && a.Name != "activity_id" && a.Name != "severity_id" {
					if _, ok := a.EnumCaption(0); ok {
						l.unknownIDs = append(l.unknownIDs, unknownID{object: int32(oi), id: n, sibling: sib})
					}
				}
				if sib >= 0 {
					l.captions = append(l.captions, caption{id: n, sibling: sib})
				}
			}
			if a.Requirement == Required {
				var bit int64
				if a.Profile != "" {
					bit = -1
					if j := sort.SearchStrings(l.profileNames, a.Profile); j < len(l.profileNames) && l.profileNames[j] == a.Profile {
						bit = 1 << j
					}
				}
				if bit >= 0 {
					l.required = append(l.required, requirement{object: int32(oi), node: n, profile: bit})
				}
			}
		}
	}
}

func (l *Layout) attrsOf(i int) []Attribute {
	n := &l.nodes[i]
	if n.attr == nil {
		return l.class.Attributes
	}
	if o := ObjectByName(n.attr.Object); o != nil {
		return o.Attributes
	}
	return nil
}

// fill runs the layout's derived steps on an event whose fields are set:
// objects present, unknown ids, captions. It reports whether every
// required attribute of each object present has a value.
func (l *Layout) fill(ev *Event, profiles int64) bool {
	st := ev.state
	for i := len(st) - 1; i > 0; i-- {
		if st[i] != absent && st[l.nodes[i].parent] == absent {
			st[l.nodes[i].parent] = present
		}
	}
	for _, u := range l.unknownIDs {
		if st[u.object] == absent || st[u.id] != absent {
			continue
		}
		ev.set(u.id, intValue(l.nodes[u.id].attr.Kind, 0))
		if u.sibling >= 0 && st[u.sibling] == absent {
			ev.set(u.sibling, stringValue("Unknown"))
		}
	}
	for _, c := range l.captions {
		v := &ev.vals[c.id]
		if st[c.id] == absent || st[c.sibling] != absent || v.Array {
			continue
		}
		if s, ok := l.nodes[c.id].attr.EnumCaption(int32(v.Int)); ok && v.Int != 99 {
			ev.set(c.sibling, stringValue(s))
		}
	}
	for _, r := range l.required {
		if st[r.object] == absent || (r.node >= 0 && st[r.node] != absent) {
			continue
		}
		if r.profile == 0 || profiles&r.profile != 0 {
			return false
		}
	}
	return true
}

// appendJSON appends object node n of ev as JSON.
func (l *Layout) appendJSON(b []byte, ev *Event, n int32) []byte {
	b = append(b, '{')
	first := true
	for _, c := range l.nodes[n].children {
		st := ev.state[c]
		if st == absent {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		nd := &l.nodes[c]
		b = append(b, nd.key...)
		switch {
		case nd.object:
			b = l.appendJSON(b, ev, c)
		case st == constant:
			b = append(b, nd.constJSON...)
		default:
			b = ev.vals[c].AppendJSON(b)
		}
	}
	return append(b, '}')
}

// value builds object node n of ev as a Value tree.
func (l *Layout) value(ev *Event, n int32) Value {
	v := Value{Kind: KindObject}
	for _, c := range l.nodes[n].children {
		if ev.state[c] == absent {
			continue
		}
		f := Field{Name: l.nodes[c].name, Value: ev.vals[c]}
		if l.nodes[c].object {
			f.Value = l.value(ev, c)
		}
		v.Fields = append(v.Fields, f)
	}
	return v
}

// profileItems is the metadata.profiles value of a profile set.
func (l *Layout) profileItems(set int64) Value {
	p := Value{Kind: KindString, Array: true}
	for i, name := range l.profileNames {
		if set&(1<<i) != 0 {
			p.Items = append(p.Items, stringValue(name))
		}
	}
	return p
}
