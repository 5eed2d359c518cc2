package ocsf

import (
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// A small JSON reader for the mapper. Events arrive validated by ingest,
// and mapping needs each value once, so a tree of byte slices into the
// event (no reflection, no map per object, numbers kept as written) is
// much cheaper than encoding/json into map[string]any.

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

func (k jkind) String() string {
	return [...]string{"null", "boolean", "number", "string", "object", "array"}[k]
}

// jvalue is one parsed JSON value. raw is the value's bytes as written
// (strings with their quotes). used marks what a mapping consumed, so the
// rest can go to unmapped.
type jvalue struct {
	kind   jkind
	used   uint8 // 0 untouched, 1 partly (a descendant was used), 2 wholly
	raw    []byte
	fields []jfield // jObject, in document order
	items  []jvalue // jArray
}

type jfield struct {
	key []byte // unescaped
	val jvalue
}

const maxDepth = 64

var errJSON = errors.New("invalid JSON")

// jparser reads one document. An object's fields (an array's items) are
// gathered on a stack while its values are read, then copied into an arena
// in one piece: a parser reused for the next event reuses both, so mapping
// a stream of events allocates no parse tree once the arenas have grown.
type jparser struct {
	b []byte
	i int

	fstack, fields []jfield
	istack, items  []jvalue
}

func parseJSON(b []byte) (jvalue, error) {
	var p jparser
	return p.parse(b)
}

// parse reads b, reusing the arenas of the previous document: the tree it
// returned before is no longer valid.
func (p *jparser) parse(b []byte) (jvalue, error) {
	p.b, p.i = b, 0
	p.fstack, p.fields = p.fstack[:0], p.fields[:0]
	p.istack, p.items = p.istack[:0], p.items[:0]
	v, err := p.value(0)
	if err != nil {
		return v, err
	}
	p.space()
	if p.i != len(p.b) {
		return v, errJSON
	}
	return v, nil
}

func (p *jparser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jparser) value(depth int) (v jvalue, err error) {
	if depth > maxDepth {
		return v, errors.New("JSON nested too deeply")
	}
	p.space()
	if p.i >= len(p.b) {
		return v, errJSON
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '{':
		v.kind = jObject
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			break
		}
		base := len(p.fstack)
		for {
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return v, errJSON
			}
			kraw, err := p.str()
			if err != nil {
				return v, err
			}
			key, ok := unquote(kraw)
			if !ok {
				return v, errJSON
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return v, errJSON
			}
			p.i++
			// The value is read before it is pushed: reading it pushes
			// (and pops) its own fields, which may move the stack.
			val, err := p.value(depth + 1)
			if err != nil {
				return v, err
			}
			p.fstack = append(p.fstack, jfield{key: key, val: val})
			p.space()
			if p.i >= len(p.b) {
				return v, errJSON
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == '}' {
				p.i++
				break
			}
			return v, errJSON
		}
		start := len(p.fields)
		p.fields = append(p.fields, p.fstack[base:]...)
		v.fields = p.fields[start:len(p.fields):len(p.fields)]
		p.fstack = p.fstack[:base]
	case c == '[':
		v.kind = jArray
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			break
		}
		base := len(p.istack)
		for {
			item, err := p.value(depth + 1)
			if err != nil {
				return v, err
			}
			p.istack = append(p.istack, item)
			p.space()
			if p.i >= len(p.b) {
				return v, errJSON
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == ']' {
				p.i++
				break
			}
			return v, errJSON
		}
		start := len(p.items)
		p.items = append(p.items, p.istack[base:]...)
		v.items = p.items[start:len(p.items):len(p.items)]
		p.istack = p.istack[:base]
	case c == '"':
		v.kind = jString
		if _, err := p.str(); err != nil {
			return v, err
		}
	case c == 't':
		v.kind = jBool
		if err := p.lit("true"); err != nil {
			return v, err
		}
	case c == 'f':
		v.kind = jBool
		if err := p.lit("false"); err != nil {
			return v, err
		}
	case c == 'n':
		v.kind = jNull
		if err := p.lit("null"); err != nil {
			return v, err
		}
	case c == '-' || (c >= '0' && c <= '9'):
		v.kind = jNumber
		if err := p.num(); err != nil {
			return v, err
		}
	default:
		return v, errJSON
	}
	v.raw = p.b[start:p.i]
	return v, nil
}

func (p *jparser) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return errJSON
	}
	p.i += len(s)
	return nil
}

// num accepts the JSON number grammar.
func (p *jparser) num() error {
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return errJSON
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return errJSON
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return errJSON
		}
	}
	return nil
}

// str scans a string starting at its opening quote and returns it with
// its quotes.
func (p *jparser) str() ([]byte, error) {
	start := p.i
	p.i++
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start:p.i], nil
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return nil, errJSON
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if _, _, ok := hex4(p.b[p.i+2:]); !ok {
					return nil, errJSON
				}
				p.i += 6
			default:
				return nil, errJSON
			}
		case c < 0x20:
			return nil, errJSON
		default:
			p.i++
		}
	}
	return nil, errJSON
}

// unquote decodes a quoted JSON string. Without escapes it returns the
// bytes inside the quotes, uncopied.
func unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	esc := false
	for _, c := range in {
		if c == '\\' {
			esc = true
			break
		}
	}
	if !esc {
		return in, true
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(in) {
			return nil, false
		}
		switch in[i] {
		case '"', '\\', '/':
			out = append(out, in[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := hex4(in[i+1:])
			if !ok {
				return nil, false
			}
			i += n
			if r >= 0xD800 && r < 0xDC00 && i+2 < len(in) && in[i+1] == '\\' && in[i+2] == 'u' {
				if r2, n2, ok := hex4(in[i+3:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					i += 2 + n2
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return out, true
}

func hex4(b []byte) (rune, int, bool) {
	if len(b) < 4 {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return rune(n), 4, true
}

// field returns the value of key in an object, or nil.
func (v *jvalue) field(key string) *jvalue {
	for i := range v.fields {
		if string(v.fields[i].key) == key {
			return &v.fields[i].val
		}
	}
	return nil
}

// text is a scalar's text: a string's decoded content, a number or
// boolean as written.
//
// The mapper parses a string it owns (parseJSON of the event copied once),
// so text of a string without escapes is a substring of it, not a copy.
func (v *jvalue) text() (string, bool) {
	switch v.kind {
	case jString:
		s, ok := unquote(v.raw)
		if ok && len(s) == len(v.raw)-2 {
			return unsafe.String(unsafe.SliceData(s), len(s)), true
		}
		return string(s), ok
	case jNumber, jBool:
		return unsafe.String(unsafe.SliceData(v.raw), len(v.raw)), true
	}
	return "", false
}

// appendQuoted appends s as a JSON string.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
