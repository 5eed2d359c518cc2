package ingest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The required fields, in the order of parser.names.
const (
	fieldTimestamp = iota
	fieldEventName
	fieldMessageID
	numFields
)

// maxDepth bounds how deeply objects and arrays nest, counting the event
// itself. It is encoding/json's bound, so the agent accepts exactly the
// events that tools built on encoding/json accept.
const maxDepth = 10000

// topFields is what scanObject finds among an object's top-level keys.
type topFields struct {
	// vals holds the raw JSON value of each required field, nil if absent.
	vals [numFields][]byte
	// dup is true for a required field whose key appears more than once.
	dup [numFields]bool
	// folded holds a key that equals a required name but for case, to help
	// explain a missing field.
	folded [numFields]string
	// badUTF8 is true when a string of the object holds bytes that are not
	// UTF-8. encoding/json accepts those, but PostgreSQL and most SIEMs
	// downstream do not, so the parser rejects them after the syntax.
	badUTF8 bool
}

// scanObject validates the JSON object at the start of b (b[0] must be '{')
// and records the required fields among its top-level keys in top. It
// returns the index just past the object's closing brace, or -1 if b does
// not start with a valid object; whatever follows the object is the caller's
// to judge.
//
// Validity is RFC 8259 as encoding/json.Valid judges it: string escapes,
// control characters, the number grammar, literals and encoding/json's
// nesting bound. It is checked in the same single pass that finds the fields,
// because validating every event separately used to cost as much as all of
// the rest of parsing.
func scanObject(b []byte, names *[numFields]string, top *topFields) int {
	s := scanner{b: b}
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		key := i
		if i = s.key(i); i < 0 {
			return -1
		}
		keyEnd, esc := s.strEnd, s.esc
		val := i
		if i = s.value(i, 1); i < 0 {
			return -1
		}
		top.match(b[key:keyEnd], esc, b[val:i], names)
		i = skipSpace(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '}':
			top.badUTF8 = s.badUTF8
			return i + 1
		case ',':
			i = skipSpace(b, i+1)
		default:
			return -1
		}
	}
}

// validJSON reports whether b is one valid JSON value, surrounded by nothing
// but whitespace, as encoding/json.Valid would.
func validJSON(b []byte) bool {
	s := scanner{b: b}
	i := skipSpace(b, 0)
	end := s.value(i, 0)
	return end >= 0 && skipSpace(b, end) == len(b)
}

// scanner validates JSON. Its methods take the index where a token starts
// and return the index just past it, or -1 if the token is invalid or cut
// short; they never read outside b.
type scanner struct {
	b []byte
	// strEnd is where the last key's closing quote ended.
	strEnd int
	// esc is true if the last string scanned held a backslash escape.
	esc bool
	// badUTF8 is true once any string held bytes that are not UTF-8.
	badUTF8 bool
}

// key scans an object member's key and the colon after it, and returns the
// index of the member's value.
func (s *scanner) key(i int) int {
	b := s.b
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = s.str(i); i < 0 {
		return -1
	}
	s.strEnd = i
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// value scans any JSON value; depth is how many objects and arrays enclose
// it.
func (s *scanner) value(i, depth int) int {
	if i >= len(s.b) {
		return -1
	}
	if c := s.b[i]; c == '{' || c == '[' {
		return s.nested(i, depth)
	}
	return s.scalar(i)
}

// nested scans the object or array at b[i] and all it holds. It keeps the
// closing bracket of each open container on a stack rather than recursing,
// so that deep nesting costs neither Go stack nor calls.
func (s *scanner) nested(i, depth int) int {
	b := s.b
	var buf [32]byte
	open := buf[:0] // the closing bracket of each open container, innermost last
	for {
		// b[i] starts a value.
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(open) >= maxDepth {
				return -1
			}
			i = skipSpace(b, i+1)
			if c == '[' {
				open = append(open, ']')
				if i < len(b) && b[i] != ']' {
					continue // the first element
				}
			} else {
				open = append(open, '}')
				if i < len(b) && b[i] != '}' {
					if i = s.key(i); i < 0 || i >= len(b) {
						return -1
					}
					continue // the first member's value
				}
			}
			// An empty container, or the end of b: the loop below closes
			// or rejects it.
		default:
			if i = s.scalar(i); i < 0 {
				return -1
			}
		}
		// After a value: close containers until a comma starts the next.
		for {
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			closer := open[len(open)-1]
			if b[i] == closer {
				open = open[:len(open)-1]
				i++
				if len(open) == 0 {
					return i
				}
				continue
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
			if closer == '}' {
				i = s.key(i)
			}
			if i < 0 || i >= len(b) {
				return -1
			}
			break
		}
	}
}

// scalar scans a string, number or literal.
func (s *scanner) scalar(i int) int {
	b := s.b
	switch b[i] {
	case '"':
		return s.str(i)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return number(b, i)
}

// plain marks the bytes that stand for themselves inside a string: printable
// ASCII but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string whose opening quote is b[i].
func (s *scanner) str(i int) int {
	b := s.b
	s.esc = false
	for i++; i < len(b); {
		c := b[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			s.esc = true
			if i = escape(b, i); i < 0 {
				return -1
			}
		case c < 0x20:
			return -1
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.badUTF8 = true
			}
			i += n
		}
	}
	return -1
}

// escape scans the escape sequence whose backslash is b[i]. Like
// encoding/json it accepts a \u escape of a lone surrogate.
func escape(b []byte, i int) int {
	if i+1 >= len(b) {
		return -1
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2
	case 'u':
		if len(b)-i < 6 {
			return -1
		}
		for _, c := range b[i+2 : i+6] {
			if !isHex(c) {
				return -1
			}
		}
		return i + 6
	}
	return -1
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isDigit(c byte) bool {
	return '0' <= c && c <= '9'
}

// literal scans true, false or null. What may follow it is the enclosing
// scan's to judge, as for every value.
func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// number scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return -1
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(b, i)
	}
	return i
}

// digits returns the index of the first non-digit at or after i.
func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// match records val if key (quoted, as in the JSON) names a required field.
// esc says whether the key holds an escape.
func (t *topFields) match(key []byte, esc bool, val []byte, names *[numFields]string) {
	name := key[1 : len(key)-1]
	if esc {
		// An escaped key such as "message\u0049d" still names the field.
		s, ok := stringValue(key)
		if !ok {
			return
		}
		name = []byte(s)
	}
	for f := range names {
		switch {
		case string(name) == names[f]:
			if t.vals[f] != nil {
				t.dup[f] = true
			} else {
				t.vals[f] = val
			}
		case t.folded[f] == "" && len(name) == len(names[f]) && bytes.EqualFold(name, []byte(names[f])):
			t.folded[f] = string(name)
		}
	}
}

// stringValue decodes a quoted JSON string. Strings without escapes, by far
// the common case, are converted directly.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// trimRight returns the length of b without trailing whitespace.
func trimRight(b []byte) int {
	n := len(b)
	for n > 0 && isSpace(b[n-1]) {
		n--
	}
	return n
}

// stringEnd returns the index just past the string that starts with the
// quote at b[i], or len(b) if it is not closed.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for j < len(b) {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		j += k
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		n := 0
		for m := j - 1; m > i && b[m] == '\\'; m-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
	return len(b)
}

// valueEnd returns the index just past the JSON value that starts at b[i].
// It only tracks strings and nesting; on invalid input it still returns an
// index in [i, len(b)], and it returns i when b[i] cannot start a value.
// The parser uses it only to delimit an array element that is not a valid
// object, so that the error describes that element alone.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		return nestedEnd(b, i)
	}
	j := i
	for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != '{' && b[j] != '[' && b[j] != ':' && b[j] != '"' {
		j++
	}
	return j
}

// nestedEnd returns the index just past the object or array at b[i].
func nestedEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			j = stringEnd(b, j) - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(b)
}
