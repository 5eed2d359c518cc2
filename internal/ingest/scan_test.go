package ingest

import (
	"encoding/json"
	"strings"
	"testing"
)

// validObject reports whether scanObject accepts b as one object surrounded
// by whitespace, the way the parser uses it.
func validObject(b []byte, names *[numFields]string, top *topFields) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end := scanObject(b[i:], names, top)
	return end >= 0 && skipSpace(b, i+end) == len(b)
}

// nest returns depth objects nested in one another, as members named "a".
func nest(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
}

func TestScanObjectValidity(t *testing.T) {
	cases := []struct {
		name  string
		input string
		valid bool
	}{
		{name: "empty object", input: `{}`, valid: true},
		{name: "spaces everywhere", input: " {\t\"a\" \r\n: [ 1 , { } , [ ] ] , \"b\":{ \"c\" : null } } ", valid: true},
		{name: "every kind of value", input: `{"s":"x","n":-1.5e+3,"t":true,"f":false,"z":null,"o":{"a":[]},"a":[1,"2",[3]]}`, valid: true},
		{name: "not closed", input: `{"a":1`},
		{name: "extra closer", input: `{"a":1}}`},
		{name: "trailing data", input: `{"a":1} 2`},
		{name: "two objects", input: `{}{}`},
		{name: "trailing comma", input: `{"a":1,}`},
		{name: "leading comma", input: `{,"a":1}`},
		{name: "missing comma", input: `{"a":1 "b":2}`},
		{name: "missing colon", input: `{"a" 1}`},
		{name: "missing value", input: `{"a":}`},
		{name: "unquoted key", input: `{a:1}`},
		{name: "single quotes", input: `{'a':1}`},
		{name: "number key", input: `{1:1}`},
		{name: "mismatched brackets", input: `{"a":[1}}`},
		{name: "array trailing comma", input: `{"a":[1,]}`},
		{name: "array leading comma", input: `{"a":[,1]}`},
		{name: "array missing comma", input: `{"a":[1 2]}`},
		{name: "colon in array", input: `{"a":[1:2]}`},
		{name: "nested trailing comma", input: `{"a":{"b":1,}}`},

		{name: "zero", input: `{"a":0}`, valid: true},
		{name: "negative zero", input: `{"a":-0}`, valid: true},
		{name: "fraction", input: `{"a":0.25}`, valid: true},
		{name: "exponents", input: `{"a":[1e5,1E5,1e+5,1e-5,-1.5E-05]}`, valid: true},
		{name: "huge number", input: `{"a":123456789012345678901234567890e999999}`, valid: true},
		{name: "leading zero", input: `{"a":01}`},
		{name: "leading zero negative", input: `{"a":-01}`},
		{name: "lone minus", input: `{"a":-}`},
		{name: "plus sign", input: `{"a":+1}`},
		{name: "leading dot", input: `{"a":.5}`},
		{name: "trailing dot", input: `{"a":1.}`},
		{name: "dot before exponent", input: `{"a":1.e5}`},
		{name: "empty exponent", input: `{"a":1e}`},
		{name: "signed empty exponent", input: `{"a":1e+}`},
		{name: "hex", input: `{"a":0x10}`},
		{name: "NaN", input: `{"a":NaN}`},
		{name: "Infinity", input: `{"a":-Infinity}`},
		{name: "number then letter", input: `{"a":1x}`},
		{name: "number cut short", input: `{"a":1.`},

		{name: "literals", input: `{"a":[true,false,null]}`, valid: true},
		{name: "short literal", input: `{"a":tru}`},
		{name: "long literal", input: `{"a":nulll}`},
		{name: "capitalised literal", input: `{"a":True}`},
		{name: "literal cut short", input: `{"a":fals`},

		{name: "all short escapes", input: `{"a":"\"\\\/\b\f\n\r\t"}`, valid: true},
		{name: "unicode escapes", input: `{"a":"\u00e9\u00E9\uD83D\uDE00"}`, valid: true},
		{name: "lone surrogate escape", input: `{"a":"\ud800"}`, valid: true},
		{name: "escaped key", input: `{"\u0061":1}`, valid: true},
		{name: "unknown escape", input: `{"a":"\x41"}`},
		{name: "escaped single quote", input: `{"a":"\'"}`},
		{name: "short unicode escape", input: `{"a":"\u12"}`},
		{name: "non-hex unicode escape", input: `{"a":"\u12g4"}`},
		{name: "escape at the end", input: `{"a":"\`},
		{name: "escaped closing quote", input: `{"a":"\"}`},
		{name: "escaped backslash then quote", input: `{"a":"\\"}`, valid: true},
		{name: "raw tab in string", input: "{\"a\":\"\t\"}"},
		{name: "raw newline in key", input: "{\"a\n\":1}"},
		{name: "raw NUL in string", input: "{\"a\":\"\x00\"}"},
		{name: "DEL in string", input: "{\"a\":\"\x7f\"}", valid: true},
		{name: "string not closed", input: `{"a":"x}`},
		{name: "UTF-8 in string", input: `{"é":"日本語 😀"}`, valid: true},
		{name: "UTF-8 outside strings", input: `{"a":1é}`},
		{name: "byte order mark", input: "\xEF\xBB\xBF{}"},

		{name: "nesting at the limit", input: nest(maxDepth), valid: true},
		{name: "nesting over the limit", input: nest(maxDepth + 1)},
		{name: "array nesting at the limit", input: `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + "}", valid: true},
		{name: "array nesting over the limit", input: `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + "}"},
		{name: "nesting not closed", input: `{"a":[[{"b":[`},
	}
	names := [numFields]string{"a", "b", "c"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The table is checked against the reference too, so that a
			// wrong expectation cannot hide a wrong scanner.
			if ref := json.Valid([]byte(tc.input)); ref != tc.valid {
				t.Fatalf("encoding/json says valid=%v, the table says %v", ref, tc.valid)
			}
			var top topFields
			if got := validObject([]byte(tc.input), &names, &top); got != tc.valid {
				t.Errorf("scanObject: valid=%v, want %v", got, tc.valid)
			}
			if got := validJSON([]byte(tc.input)); got != tc.valid {
				t.Errorf("validJSON: valid=%v, want %v", got, tc.valid)
			}
		})
	}
}

func TestValidJSONNonObjects(t *testing.T) {
	cases := []struct {
		input string
		valid bool
	}{
		{`7`, true}, {` -0.5e3 `, true}, {`"s"`, true}, {`null`, true}, {`[1,{"a":[]}]`, true},
		{``, false}, {`  `, false}, {`[1,]`, false}, {`"`, false}, {`[`, false}, {`1 2`, false},
		{`nul`, false}, {`]`, false}, {`}`, false}, {`,`, false},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false},
	}
	for _, tc := range cases {
		if ref := json.Valid([]byte(tc.input)); ref != tc.valid {
			t.Fatalf("%.20q: encoding/json says valid=%v, the table says %v", tc.input, ref, tc.valid)
		}
		if got := validJSON([]byte(tc.input)); got != tc.valid {
			t.Errorf("%.20q: valid=%v, want %v", tc.input, got, tc.valid)
		}
	}
}

func TestScanObjectFields(t *testing.T) {
	names := [numFields]string{"timestamp", "eventName", "messageId"}
	cases := []struct {
		name    string
		input   string
		vals    [numFields]string // "" for absent
		dup     [numFields]bool
		folded  [numFields]string
		badUTF8 bool
	}{
		{
			name:  "all fields, raw values kept",
			input: `{"timestamp": 1.5e12 ,"eventName":"a\"b","messageId":{"x":[1]}}`,
			vals:  [numFields]string{`1.5e12`, `"a\"b"`, `{"x":[1]}`},
		},
		{
			name:  "nested names do not count",
			input: `{"o":{"timestamp":1,"eventName":"n"},"l":[{"messageId":"m"}],"eventName":"top"}`,
			vals:  [numFields]string{"", `"top"`, ""},
		},
		{
			name:  "names inside strings do not count",
			input: `{"s":"\"timestamp\":1","eventName":"e"}`,
			vals:  [numFields]string{"", `"e"`, ""},
		},
		{
			name:  "escaped key",
			input: `{"message\u0049d":"m"}`,
			vals:  [numFields]string{"", "", `"m"`},
		},
		{
			name:  "duplicate keeps the first",
			input: `{"eventName":"a","eventName":"b"}`,
			vals:  [numFields]string{"", `"a"`, ""},
			dup:   [numFields]bool{false, true, false},
		},
		{
			name:   "case-folded key",
			input:  `{"TimeStamp":1,"MESSAGEID":"m"}`,
			folded: [numFields]string{"TimeStamp", "", "MESSAGEID"},
		},
		{
			name:    "invalid UTF-8 in a nested string",
			input:   "{\"eventName\":\"e\",\"o\":{\"k\":[\"\xff\"]}}",
			vals:    [numFields]string{"", `"e"`, ""},
			badUTF8: true,
		},
		{
			name:    "invalid UTF-8 in a key",
			input:   "{\"\xc3\x28\":1}",
			badUTF8: true,
		},
		{
			name:    "UTF-8 encoded surrogate",
			input:   "{\"a\":\"\xed\xa0\x80\"}",
			badUTF8: true,
		},
		{
			name:    "truncated UTF-8 before the quote",
			input:   "{\"a\":\"\xe6\x97\"}",
			badUTF8: true,
		},
		{
			name:  "valid UTF-8",
			input: `{"eventName":"日本語","a":"😀"}`,
			vals:  [numFields]string{"", `"日本語"`, ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var top topFields
			if end := scanObject([]byte(tc.input), &names, &top); end != len(tc.input) {
				t.Fatalf("scanObject = %d, want %d", end, len(tc.input))
			}
			for f := range names {
				if string(top.vals[f]) != tc.vals[f] || (top.vals[f] == nil) != (tc.vals[f] == "") {
					t.Errorf("%s = %q, want %q", names[f], top.vals[f], tc.vals[f])
				}
			}
			if top.dup != tc.dup || top.folded != tc.folded || top.badUTF8 != tc.badUTF8 {
				t.Errorf("dup, folded, badUTF8 = %v, %q, %v; want %v, %q, %v",
					top.dup, top.folded, top.badUTF8, tc.dup, tc.folded, tc.badUTF8)
			}
		})
	}
}

// TestScanObjectStopsAtObject checks that the scan ends at the object's
// closing brace whatever follows, as an array element needs.
func TestScanObjectStopsAtObject(t *testing.T) {
	names := [numFields]string{"a", "b", "c"}
	for _, tc := range []struct {
		input string
		end   int
	}{
		{`{"a":1},{"b":2}]`, 7},
		{`{ } garbage`, 3},
		{`{"a":"}"}]`, 9},
		{`{"a":1`, -1},
		{`{"a":1,`, -1},
		{`{`, -1},
	} {
		var top topFields
		if end := scanObject([]byte(tc.input), &names, &top); end != tc.end {
			t.Errorf("scanObject(%q) = %d, want %d", tc.input, end, tc.end)
		}
	}
}
