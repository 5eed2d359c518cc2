package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docKind is where a document is attached, which decides the elements its
// statements must and must not have.
type docKind int

const (
	// trustKind is a role's trust policy: Principal, no Resource.
	trustKind docKind = iota
	// identityKind is a policy attached to a role or user: Resource, no Principal.
	identityKind
	// resourceKind is a bucket policy: Principal and Resource.
	resourceKind
)

var (
	// sidRe is the character set IAM accepts in a Sid.
	sidRe = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	// actionRe is "service:Action", with wildcards.
	actionRe = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z*?]+$`)
	// resourceRe is an ARN (with wildcards) or "*".
	resourceRe = regexp.MustCompile(`^(\*|arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]*:.+)$`)
	// conditionOperators are the operators the documents may use.
	conditionOperators = []string{"StringEquals", "StringNotEquals", "StringLike", "Bool", "ArnEquals", "Null"}
)

// checkGrammar parses doc as JSON and checks it against the IAM policy
// grammar for kind: Version, a Statement list, and in each statement the
// shapes of Sid, Effect, Principal, Action, Resource and Condition.
func checkGrammar(t *testing.T, kind docKind, doc string) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, doc)
	}
	for key := range raw {
		if key != "Version" && key != "Statement" {
			t.Errorf("unexpected top-level element %q", key)
		}
	}
	if raw["Version"] != Version {
		t.Errorf("Version = %v, want %q", raw["Version"], Version)
	}
	statements, ok := raw["Statement"].([]any)
	if !ok || len(statements) == 0 {
		t.Fatalf("Statement must be a non-empty list, got %T", raw["Statement"])
	}
	sids := map[string]bool{}
	for i, s := range statements {
		st, ok := s.(map[string]any)
		if !ok {
			t.Fatalf("statement %d is a %T, not an object", i, s)
		}
		sid := checkStatement(t, kind, st)
		if sids[sid] {
			t.Errorf("Sid %q is used twice", sid)
		}
		sids[sid] = true
	}
}

// checkStatement checks one statement and returns its Sid.
func checkStatement(t *testing.T, kind docKind, st map[string]any) string {
	t.Helper()
	sid, _ := st["Sid"].(string)
	if !sidRe.MatchString(sid) {
		t.Errorf("Sid %q must be letters and digits only", sid)
	}
	for key := range st {
		if !slices.Contains([]string{"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}, key) {
			t.Errorf("%s: unexpected element %q", sid, key)
		}
	}
	if e := st["Effect"]; e != "Allow" && e != "Deny" {
		t.Errorf("%s: Effect = %v, want Allow or Deny", sid, e)
	}
	checkStrings(t, sid+" Action", st["Action"], actionRe)
	_, hasPrincipal := st["Principal"]
	_, hasResource := st["Resource"]
	if hasPrincipal != (kind != identityKind) {
		t.Errorf("%s: Principal present = %v in a document of kind %d", sid, hasPrincipal, kind)
	}
	if hasResource != (kind != trustKind) {
		t.Errorf("%s: Resource present = %v in a document of kind %d", sid, hasResource, kind)
	}
	if hasPrincipal {
		checkPrincipal(t, sid, st["Principal"])
	}
	if hasResource {
		checkStrings(t, sid+" Resource", st["Resource"], resourceRe)
	}
	if c, ok := st["Condition"]; ok {
		checkCondition(t, sid, c)
	}
	return sid
}

// checkStrings checks that v is a string or a non-empty list of strings,
// each matching re.
func checkStrings(t *testing.T, what string, v any, re *regexp.Regexp) {
	t.Helper()
	var values []string
	switch v := v.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				t.Errorf("%s: element %v is a %T, not a string", what, e, e)
			}
			values = append(values, s)
		}
	default:
		t.Errorf("%s must be a string or a list of strings, got %T", what, v)
	}
	if len(values) == 0 {
		t.Errorf("%s is empty", what)
	}
	for _, s := range values {
		if !re.MatchString(s) {
			t.Errorf("%s: %q does not match %s", what, s, re)
		}
	}
}

// checkPrincipal accepts "*" or {"AWS": principal or [principals]}.
func checkPrincipal(t *testing.T, sid string, v any) {
	t.Helper()
	if v == "*" {
		return
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 || m["AWS"] == nil {
		t.Errorf("%s: Principal must be \"*\" or {\"AWS\": ...}, got %v", sid, v)
		return
	}
	checkStrings(t, sid+" Principal", m["AWS"], regexp.MustCompile(`^(\*|arn:aws[a-z-]*:iam::[0-9]{12}:.+|[A-Z0-9]{16,128})$`))
}

// checkCondition accepts {operator: {key: value or [values]}}.
func checkCondition(t *testing.T, sid string, v any) {
	t.Helper()
	ops, ok := v.(map[string]any)
	if !ok || len(ops) == 0 {
		t.Errorf("%s: Condition must be a non-empty object, got %v", sid, v)
		return
	}
	for op, kv := range ops {
		if !slices.Contains(conditionOperators, op) {
			t.Errorf("%s: unexpected condition operator %q", sid, op)
		}
		keys, ok := kv.(map[string]any)
		if !ok || len(keys) == 0 {
			t.Errorf("%s: Condition %s must be a non-empty object, got %v", sid, op, kv)
			continue
		}
		for key, val := range keys {
			if !strings.Contains(key, ":") {
				t.Errorf("%s: condition key %q lacks its service prefix", sid, key)
			}
			checkStrings(t, fmt.Sprintf("%s Condition %s %s", sid, op, key), val, regexp.MustCompile(`.`))
		}
	}
}
