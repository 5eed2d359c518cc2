package api

import (
	"regexp"
	"strings"
)

// DefaultKeyTemplate lays objects out by event type, day and tenant, with the
// window and sequence range in the name so keys sort by time and never repeat.
const DefaultKeyTemplate = "{event_type}/{yyyy}-{mm}-{dd}/{tenant}/{window_end}_{seq_from}-{seq_to}_{part}"

// KeyTemplateSecurityLake is the preset key_template of Amazon Security Lake
// custom sources; see SecurityLakeKeyTemplate.
const KeyTemplateSecurityLake = "security_lake"

// SecurityLakeKeyTemplate is the layout Security Lake expects under a custom
// source's location: ext/{source}/region=…/accountId=…/eventDay=YYYYMMDD/.
// The file name carries the OCSF class, so every object holds one class.
const SecurityLakeKeyTemplate = "ext/{source}/region={region}/accountId={account}/eventDay={yyyymmdd}/" +
	"{class}_{event_type}_{window_end}_{seq_from}-{seq_to}_{part}"

// ExpandKeyTemplate returns the template a key_template value stands for:
// the preset's layout for "security_lake", the value itself otherwise.
func ExpandKeyTemplate(tmpl string) string {
	if tmpl == KeyTemplateSecurityLake {
		return SecurityLakeKeyTemplate
	}
	return tmpl
}

// KeyTemplateUses reports the variables a key template (or preset) uses.
func KeyTemplateUses(tmpl string) map[string]bool {
	used := map[string]bool{}
	for _, m := range keyVarRe.FindAllStringSubmatch(ExpandKeyTemplate(tmpl), -1) {
		used[m[1]] = true
	}
	return used
}

// keyVariables are the variables a key template may use, with the longest
// value each can take (for the 1024-byte key limit). {prefix} is not among
// them: the prefix is always prepended.
var keyVariables = []struct {
	name    string
	maxSize int
}{
	{"tenant", 63}, {"event_type", 200},
	{"yyyy", 4}, {"mm", 2}, {"dd", 2}, {"hh", 2},
	{"window_start", 16}, {"window_end", 16},
	{"seq_from", 20}, {"seq_to", 20}, {"part", 5},
	// Security Lake's partitions: the destination's source_name, region and
	// account, the day as YYYYMMDD; and the OCSF class name of the objects.
	{"source", 64}, {"region", 32}, {"account", 12}, {"yyyymmdd", 8}, {"class", 64},
}

// MaxKeyBytes is S3's limit on a key.
const MaxKeyBytes = 1024

var (
	keyVarRe     = regexp.MustCompile(`\{([a-z_]*)\}`)
	keyLiteralRe = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/=-]*$`)
	// longestExt is the longest key suffix (".ndjson.zst").
	longestExt = len(".ndjson.zst")
)

// ValidateKeyTemplate checks a key template: known variables only; the
// sequence range and the part so every key is unique; no way to leave the
// prefix ("..", a leading "/", empty segments); at most 1024 bytes once
// rendered with the longest values and the prefix. The prefix is always
// prepended; "{prefix}/" at the start is accepted and means the same.
// "security_lake" is the preset SecurityLakeKeyTemplate.
func ValidateKeyTemplate(tmpl, prefix string) error {
	body := strings.TrimPrefix(ExpandKeyTemplate(tmpl), "{prefix}/")
	used := map[string]bool{}
	size := len(prefix) + 1 + longestExt
	for _, m := range keyVarRe.FindAllStringSubmatch(body, -1) {
		n, ok := keyVariableSize(m[1])
		if !ok {
			return fieldErr("key_template", "unknown variable {%s}: use %s", m[1], variableList())
		}
		used[m[1]] = true
		size += n
	}
	literal := keyVarRe.ReplaceAllString(body, "")
	size += len(literal)
	switch {
	case strings.ContainsAny(literal, "{}"):
		return fieldErr("key_template", "%q has an unmatched brace", tmpl)
	case !keyLiteralRe.MatchString(literal):
		return fieldErr("key_template", "%q may only contain letters, digits, !_.*'()/=- and {variables}", tmpl)
	case !used["seq_from"] || !used["seq_to"] || !used["part"]:
		return fieldErr("key_template", "%q must contain {seq_from}, {seq_to} and {part}, so that no two objects get the same key", tmpl)
	case size > MaxKeyBytes:
		return fieldErr("key_template", "keys could reach %d bytes with this template and prefix; S3 allows %d", size, MaxKeyBytes)
	}
	if strings.HasPrefix(body, "_auditexport") {
		return fieldErr("key_template", "%q must not start with _auditexport: that folder is the connection test's", tmpl)
	}
	for _, seg := range strings.Split(body, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fieldErr("key_template", "%q must not start or end with \"/\" or contain empty, \".\" or \"..\" segments: keys stay under the prefix", tmpl)
		}
	}
	return nil
}

func keyVariableSize(name string) (int, bool) {
	for _, v := range keyVariables {
		if v.name == name {
			return v.maxSize, true
		}
	}
	return 0, false
}

func variableList() string {
	names := make([]string, len(keyVariables))
	for i, v := range keyVariables {
		names[i] = "{" + v.name + "}"
	}
	return strings.Join(names, " ")
}
