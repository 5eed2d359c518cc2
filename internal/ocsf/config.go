package ocsf

// Config is how events become OCSF: the ocsf block of agent.hcl. Every
// field is optional except vendor_name. The field names of the event itself
// (timestamp, event name, message id) come from the ingest settings.
//
//	ocsf {
//	  product_name = "Acme Cloud"
//	  vendor_name  = "Acme"
//
//	  rule "billing.invoice.paid" {
//	    class    = "api_activity"
//	    activity = "update"
//	    fields = {
//	      "api.operation"    = "eventName"
//	      "api.service.name" = "context.service"
//	    }
//	  }
//	}
type Config struct {
	// ProductName and VendorName fill metadata.product (vendor_name is
	// required by OCSF); ProductVersion is metadata.product.version.
	ProductName    string `hcl:"product_name,optional"`
	VendorName     string `hcl:"vendor_name,optional"`
	ProductVersion string `hcl:"product_version,optional"`

	// RawData keeps the original event in raw_data (default true).
	RawData *bool `hcl:"raw_data,optional"`

	// DefaultRules appends the built-in rules (DefaultRules) after the
	// declared ones, and the built-in common fields under the declared
	// ones (default true).
	DefaultRules *bool `hcl:"default_rules,optional"`

	// Fields apply to every rule whose class has the attribute: OCSF
	// attribute path = event path. A path may list alternatives, the first
	// present wins: "actor.email|user.email".
	Fields map[string]string `hcl:"fields,optional"`

	// Values translate event values into enum ids, per attribute:
	// { status_id = { succeeded = "1", denied = "2" } }. Without a
	// translation, a value matching an enum caption (case-insensitive) maps
	// to its id and anything else to Other (99).
	Values map[string]map[string]string `hcl:"values,optional"`

	// Rules are tried in order; the first whose event pattern matches maps
	// the event.
	Rules []Rule `hcl:"rule,block"`

	// The names of the event's own fields, as configured for ingest.
	// Empty means timestamp, eventName and messageId.
	TimestampField string
	EventNameField string
	MessageIDField string
}

// Rule maps the events whose name matches Event (exact, or a glob where *
// matches any run of characters and ? one) into an OCSF class.
type Rule struct {
	Event string `hcl:"event,label"`

	// Class is an OCSF class name ("authentication"), caption
	// ("Authentication") or uid ("3002").
	Class string `hcl:"class"`

	// Activity is an activity_id caption of the class ("Logon",
	// "password change") or its id ("1"). Default: Other (99).
	Activity string `hcl:"activity,optional"`

	// Severity is a severity_id caption or id. Default: Informational (1).
	Severity string `hcl:"severity,optional"`

	// Fields and Values as in Config; a rule's own win over the common ones.
	Fields map[string]string            `hcl:"fields,optional"`
	Values map[string]map[string]string `hcl:"values,optional"`
}

func (c *Config) rawData() bool      { return c.RawData == nil || *c.RawData }
func (c *Config) defaultRules() bool { return c.DefaultRules == nil || *c.DefaultRules }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// DefaultFields are the common fields of the usual SaaS audit event shape:
// an actor or user with id, email and name; the client's IP address,
// location and user agent; an outcome.
var DefaultFields = map[string]string{
	"actor.user.uid":                "actor.id|user.id|userId|actorId",
	"actor.user.email_addr":         "actor.email|user.email|email",
	"actor.user.name":               "actor.name|user.name|actor.username|user.username",
	"actor.user.type":               "actor.type|user.type",
	"src_endpoint.ip":               "context.ip|ip|ipAddress|ip_address|client.ip|device.ip",
	"src_endpoint.location.city":    "location.city|context.location.city",
	"src_endpoint.location.country": "location.country|context.location.country",
	"src_endpoint.location.region":  "location.region|context.location.region",
	"http_request.user_agent":       "context.userAgent|userAgent|user_agent|device.userAgent|device.user_agent",
	"http_request.uid":              "context.requestId|requestId|request_id",
	"status":                        "outcome|status|result",
	"message":                       "description|message|summary",
	"metadata.tenant_uid":           "tenantId|tenant_id|organizationId|orgId",
}

// DefaultValues translate the usual outcome words into status_id.
var DefaultValues = map[string]map[string]string{
	"status_id": {
		"success": "1", "succeeded": "1", "ok": "1", "allowed": "1", "allow": "1",
		"failure": "2", "failed": "2", "fail": "2", "error": "2", "denied": "2", "deny": "2", "blocked": "2",
	},
}

var (
	userTarget = map[string]string{
		"user.uid":        "target.id|user.id|actor.id",
		"user.email_addr": "target.email|user.email|actor.email",
		"user.name":       "target.name|user.name|actor.name",
	}
	authUser = map[string]string{
		"user.uid":        "actor.id|user.id",
		"user.email_addr": "actor.email|user.email",
		"user.name":       "actor.name|user.name",
	}
	entity = map[string]string{
		"entity.uid":  "target.id|resource.id|entity.id",
		"entity.type": "target.type|resource.type|entity.type",
		"entity.name": "target.name|resource.name|entity.name",
	}
)

// DefaultRules map the common SaaS audit event names: sign-in and sign-out
// to Authentication, changes to users and their roles to Account Change,
// *.created / *.updated / *.deleted to Entity Management and anything else
// to API Activity (api.operation is the event name). An event the chosen
// class cannot hold (a required attribute has no value) becomes a Base
// Event instead, so every output is valid OCSF.
var DefaultRules = []Rule{
	{Event: "*.login*", Class: "authentication", Activity: "Logon", Fields: authUser},
	{Event: "*.signin*", Class: "authentication", Activity: "Logon", Fields: authUser},
	{Event: "*.sign_in*", Class: "authentication", Activity: "Logon", Fields: authUser},
	{Event: "*.logout*", Class: "authentication", Activity: "Logoff", Fields: authUser},
	{Event: "*.signout*", Class: "authentication", Activity: "Logoff", Fields: authUser},
	{Event: "*.sign_out*", Class: "authentication", Activity: "Logoff", Fields: authUser},
	{Event: "user.created", Class: "account_change", Activity: "Create", Fields: userTarget},
	{Event: "user.deleted", Class: "account_change", Activity: "Delete", Fields: userTarget},
	{Event: "user.enabled", Class: "account_change", Activity: "Enable", Fields: userTarget},
	{Event: "user.activated", Class: "account_change", Activity: "Enable", Fields: userTarget},
	{Event: "user.disabled", Class: "account_change", Activity: "Disable", Fields: userTarget},
	{Event: "user.deactivated", Class: "account_change", Activity: "Disable", Fields: userTarget},
	{Event: "user.suspended", Class: "account_change", Activity: "Disable", Fields: userTarget},
	{Event: "user.locked", Class: "account_change", Activity: "Lock", Fields: userTarget},
	{Event: "user.password_changed", Class: "account_change", Activity: "Password Change", Fields: userTarget},
	{Event: "user.password.changed", Class: "account_change", Activity: "Password Change", Fields: userTarget},
	{Event: "user.password_reset", Class: "account_change", Activity: "Password Reset", Fields: userTarget},
	{Event: "user.password.reset", Class: "account_change", Activity: "Password Reset", Fields: userTarget},
	{Event: "user.mfa_enabled", Class: "account_change", Activity: "MFA Factor Enable", Fields: userTarget},
	{Event: "user.mfa_disabled", Class: "account_change", Activity: "MFA Factor Disable", Fields: userTarget},
	{Event: "role.granted", Class: "account_change", Activity: "Attach Policy", Fields: withPolicy(userTarget)},
	{Event: "role.assigned", Class: "account_change", Activity: "Attach Policy", Fields: withPolicy(userTarget)},
	{Event: "role.revoked", Class: "account_change", Activity: "Detach Policy", Fields: withPolicy(userTarget)},
	{Event: "role.removed", Class: "account_change", Activity: "Detach Policy", Fields: withPolicy(userTarget)},
	{Event: "role.changed", Class: "account_change", Activity: "Other", Fields: withPolicy(userTarget)},
	{Event: "*.created", Class: "entity_management", Activity: "Create", Fields: entity},
	{Event: "*.updated", Class: "entity_management", Activity: "Update", Fields: entity},
	{Event: "*.update", Class: "entity_management", Activity: "Update", Fields: entity},
	{Event: "*.deleted", Class: "entity_management", Activity: "Delete", Fields: entity},
	{Event: "*.viewed", Class: "entity_management", Activity: "Read", Fields: entity},
	{Event: "*", Class: "api_activity", Activity: "Other", Fields: map[string]string{"api.operation": "$eventName"}},
}

func withPolicy(m map[string]string) map[string]string {
	out := map[string]string{"policy.name": "role.name|role", "policy.uid": "role.id"}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fallbackRule maps what no rule can hold.
var fallbackRule = Rule{Event: "*", Class: "base_event", Activity: "Other"}
