package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/auditexport/auditexport/internal/api"
)

// Where each policy document of the data sources goes.
const (
	hintTrustPolicy  = "attach the JSON of data source auditexport_trust_policy as the role's assume_role_policy (aws_iam_role)"
	hintRolePolicy   = "attach the JSON of data source auditexport_role_policy to the role with an aws_iam_role_policy (for static keys: to the IAM user with an aws_iam_user_policy)"
	hintBucketPolicy = "attach the JSON of data source auditexport_bucket_policy to the bucket with an aws_s3_bucket_policy"
)

// specFields maps the API's field names to the resource's attributes where
// they differ.
var specFields = map[string]string{
	"secret_access_key": "secret_access_key_wo",
}

// apiErrorDiag turns an error of the agent's API into a diagnostic. action
// says what was attempted, such as "create the destination".
func apiErrorDiag(action string, err error) diag.Diagnostic {
	var unreachable *api.UnreachableError
	if errors.As(err, &unreachable) {
		return diag.NewErrorDiagnostic("Cannot reach the auditexport agent",
			fmt.Sprintf("Could not %s: cannot reach the auditexport agent at %s: %v.\n\n"+
				"Check the provider's endpoint (or the %s environment variable) and that the agent is running and reachable from here.",
				action, unreachable.Endpoint, unreachable.Err, EnvEndpoint))
	}
	var ae *api.APIError
	if !errors.As(err, &ae) {
		return diag.NewErrorDiagnostic("Auditexport agent error", fmt.Sprintf("Could not %s: %v", action, err))
	}
	switch {
	case api.IsUnauthorized(err):
		return diag.NewErrorDiagnostic("Invalid auditexport token",
			fmt.Sprintf("Could not %s: the token is not valid (agent: %s).\n\n"+
				"Set the provider's token (or the %s environment variable) to the manage token your platform issued for your tenant.",
				action, ae.Error(), EnvToken))
	case ae.StatusCode == http.StatusForbidden:
		return diag.NewErrorDiagnostic("Wrong kind of auditexport token",
			fmt.Sprintf("Could not %s: %s.\n\nThe provider needs a manage token of your tenant.", action, ae.Error()))
	case ae.Err.Call != "":
		return connectionTestDiag(action, ae)
	case ae.Err.Field != "":
		return diag.NewAttributeErrorDiagnostic(path.Root(attributeOf(ae.Err.Field)), "Destination rejected by the agent",
			fmt.Sprintf("Could not %s: %s", action, ae.Error()))
	}
	return diag.NewErrorDiagnostic("Auditexport agent error",
		fmt.Sprintf("Could not %s: the agent answered HTTP %d: %s", action, ae.StatusCode, ae.Error()))
}

func attributeOf(field string) string {
	if a, ok := specFields[field]; ok {
		return a
	}
	return field
}

// connectionTestDiag explains a failed connection test: the failing AWS
// call, the agent's message and which policy document goes where.
func connectionTestDiag(action string, ae *api.APIError) diag.Diagnostic {
	call := ae.Err.Call
	if ae.Err.AWSCode != "" {
		call += " (" + ae.Err.AWSCode + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Could not %s: the agent's connection test failed at AWS call %s.\n\n", action, call)
	fmt.Fprintf(&b, "Agent: %s\n\n", ae.Error())
	hints := policyHints(ae.Err)
	if len(hints) > 0 {
		b.WriteString("To fix it:\n")
		for _, h := range hints {
			b.WriteString("  - " + h + "\n")
		}
	}
	if ae.StatusCode >= 500 {
		b.WriteString("\nThe failure may be temporary (throttling or an AWS outage): run terraform apply again.")
	}
	return diag.NewErrorDiagnostic("Connection test failed: "+call, strings.TrimSpace(b.String()))
}

// policyHints says where to attach which data source's JSON for the
// failing call.
func policyHints(e api.Error) []string {
	msg := strings.ToLower(e.Message)
	switch {
	case e.Call == "AssumeRole" && (e.AWSCode == "AccessDenied" || strings.Contains(msg, "trust policy")):
		return []string{hintTrustPolicy}
	case e.Call == "AssumeRole":
		return nil
	case strings.Contains(msg, "kms"):
		return []string{hintRolePolicy}
	case e.AWSCode == "AccessDenied" || e.AWSCode == "Forbidden":
		return []string{hintRolePolicy, hintBucketPolicy}
	}
	return nil
}

// warningDiags turns the connection test's warnings into diagnostics.
func warningDiags(warnings []string) diag.Diagnostics {
	var diags diag.Diagnostics
	for _, w := range warnings {
		diags.AddWarning("Connection test warning", w)
	}
	return diags
}

// statusWarning reports a destination whose deliveries fail (retrying or
// failing), naming it, since when and the last error; nil otherwise.
func statusWarning(d api.Destination) diag.Diagnostic {
	st := d.Status
	if st.State != api.StateRetrying && st.State != api.StateFailing {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Deliveries of destination %s (bucket %q", d.ID, d.Bucket)
	if d.Prefix != "" {
		fmt.Fprintf(&b, ", prefix %q", d.Prefix)
	}
	b.WriteString(") fail")
	if st.FailingSince != nil {
		fmt.Fprintf(&b, " since %s", st.FailingSince.UTC().Format(time.RFC3339))
	}
	b.WriteString(".\n\n")
	if st.LastError != "" {
		fmt.Fprintf(&b, "Last error: %s\n\n", st.LastError)
	}
	fmt.Fprintf(&b, "%d events are waiting; the agent keeps them and retries", st.LagEvents)
	if st.LastDeliveryAt != nil {
		fmt.Fprintf(&b, " (last delivery %s)", st.LastDeliveryAt.UTC().Format(time.RFC3339))
	}
	b.WriteString(". Fix the cause (bucket, role or policies) and the next attempt delivers the backlog.")
	return diag.NewWarningDiagnostic(fmt.Sprintf("Destination %s is %s", d.ID, st.State), b.String())
}

// regionDiag refuses a region outside the agent's allow-list; nil when it
// is allowed (an empty list allows all).
func regionDiag(region string, allowed []string, endpoint string) diag.Diagnostic {
	if api.CheckRegionAllowed(region, allowed) == nil {
		return nil
	}
	return diag.NewAttributeErrorDiagnostic(path.Root("region"), "Region not allowed",
		fmt.Sprintf("The auditexport agent at %s delivers only to buckets in %s; region %q is not one of them. "+
			"Set region to one of these (and create the bucket there), or ask the platform to allow %q.",
			endpoint, codeListPlain(allowed), region, region))
}

// codeListPlain renders values as "a, b or c" with quotes.
func codeListPlain(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}
