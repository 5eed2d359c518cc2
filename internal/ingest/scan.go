package ingest

import (
	"bytes"
	"encoding/json"
)

// The required fields, in the order of parser.names.
const (
	fieldTimestamp = iota
	fieldEventName
	fieldMessageID
	numFields
)

// topFields is what scanObject finds among an object's top-level keys.
type topFields struct {
	// vals holds the raw JSON value of each required field, nil if absent.
	vals [numFields][]byte
	// dup is true for a required field whose key appears more than once.
	dup [numFields]bool
	// folded holds a key that equals a required name but for case, to help
	// explain a missing field.
	folded [numFields]string
}

// scanObject finds the required fields among the top-level keys of obj.
// obj must be a valid JSON object (json.Valid has passed): the scanner relies
// on that and only skips over values, which is much cheaper than decoding
// them. It stays within bounds on any input.
func scanObject(obj []byte, names *[numFields]string, top *topFields) {
	i := 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		if obj[i] == ',' {
			i++
			continue
		}
		keyEnd := stringEnd(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, keyEnd) + 1 // past ':'
		i = skipSpace(obj, i)
		end := valueEnd(obj, i)
		top.match(key, obj[min(i, end):end], names)
		i = end
	}
}

// match records val if key (quoted, as in the JSON) names a required field.
func (t *topFields) match(key, val []byte, names *[numFields]string) {
	if len(key) < 2 || len(val) == 0 {
		return
	}
	name := key[1 : len(key)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
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
