package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
)

// Schema describes auditexport_s3_destination. Every rule the agent
// enforces on syntax is also a plan-time validator built from package api.
func (r *s3DestinationResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs := map[string]schema.Attribute{}
	for _, group := range []map[string]schema.Attribute{
		identityAttributes(), locationAttributes(), authAttributes(),
		scheduleAttributes(), objectAttributes(), computedAttributes(),
	} {
		for name, a := range group {
			attrs[name] = a
		}
	}
	resp.Schema = schema.Schema{
		Description: "Delivers your tenant's audit events to an S3 bucket. " +
			"Creating or updating a destination runs a connection test first: the agent assumes the role " +
			"(or uses the access key), writes a test object under `prefix` with the configured encryption " +
			"and ACL and deletes it again. The apply fails, and nothing is saved, when the test fails; the error " +
			"names the failing AWS call and the policy to fix. Events are then delivered as " +
			"date-partitioned objects that are written once and never overwritten.",
		Attributes: attrs,
	}
}

func identityAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"id": schema.StringAttribute{
			Description:   "Identifier of the destination, assigned by the agent (`dst_…`). Use it with `terraform import`.",
			Computed:      true,
			PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		},
		"external_id": schema.StringAttribute{
			Description: "Your tenant's `sts:ExternalId`, which the delivery principal presents when it assumes `role_arn`. " +
				"It belongs to the tenant, not to the destination: read it before any destination exists from the " +
				"`auditexport_identity` or `auditexport_trust_policy` data source.",
			Computed:      true,
			PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		},
	}
}

func locationAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"bucket": schema.StringAttribute{
			Description: "Name of the S3 bucket that receives the events. S3 naming rules apply: 3-63 lowercase letters, " +
				"digits, dots and hyphens, starting and ending with a letter or digit, no two adjacent dots, not " +
				"formatted as an IP address. Changing it updates the destination in place after a connection test " +
				"of the new bucket; events not yet delivered go to the new bucket.",
			Required: true,
			Validators: []validator.String{
				stringvalidator.LengthBetween(3, 63),
				stringvalidator.RegexMatches(api.BucketRe, "must be 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"),
				apiRule("S3 bucket naming rules", bucketRules),
			},
		},
		"region": schema.StringAttribute{
			Description: "AWS region of the bucket, such as `us-east-1` or `eu-west-2`. The connection test fails " +
				"with the bucket's real region when it differs. When the platform's agent allows only some regions, " +
				"another region is refused at plan time with the list of allowed ones.",
			Required: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.RegionRe, `must be an AWS region name such as "us-east-1" or "eu-west-2"`),
			},
		},
		"prefix": schema.StringAttribute{
			Description: "Key prefix under which objects are written, such as `audit` or `siem/platform`. " +
				"Relative: it must not start with `/` nor contain empty, `.` or `..` segments; a trailing `/` is " +
				"ignored. Allowed characters: letters, digits and `!_.*'()/=-`; at most 512 bytes. " +
				"Defaults to `\"\"` (the bucket's root).",
			Optional: true,
			Computed: true,
			Default:  stringdefault.StaticString(""),
			Validators: []validator.String{
				stringvalidator.LengthAtMost(api.MaxPrefixBytes),
				stringvalidator.RegexMatches(api.PrefixRe, "may only contain letters, digits and !_.*'()/=-"),
				apiRule("a relative key prefix", prefixRules),
			},
		},
	}
}

func authAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"role_arn": schema.StringAttribute{
			Description: "ARN of a role in your account that the delivery principal assumes with `external_id` " +
				"(recommended). Attach the `auditexport_trust_policy` JSON as its `assume_role_policy` and the " +
				"`auditexport_role_policy` JSON as an `aws_iam_role_policy`. Exactly one of `role_arn` and " +
				"`access_key_id` must be set.",
			Optional: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.RoleARNRe, `must be an IAM role ARN such as "arn:aws:iam::123456789012:role/auditexport"`),
			},
		},
		"expected_bucket_owner": schema.StringAttribute{
			Description: "Account id (12 digits) that must own `bucket`. Every S3 request of the agent carries it " +
				"(`x-amz-expected-bucket-owner`), so S3 refuses to write into a bucket of another account, such as " +
				"one deleted and re-created under the same name by someone else. With `role_arn` it defaults to the " +
				"role's account; set it when the bucket belongs to another account than the role (a central " +
				"log-archive account). Recommended with `access_key_id`, where nothing is " +
				"checked without it.",
			Optional: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.AccountIDRe, `must be an AWS account id: 12 digits such as "123456789012"`),
			},
		},
		"access_key_id": schema.StringAttribute{
			Description: "Access key id of an IAM user allowed to write to the bucket, for static credentials " +
				"instead of `role_arn`. Requires `secret_access_key_wo`. Changing it sends the secret again.",
			Optional: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.AccessKeyIDRe, "must be an AWS access key id: 16-128 uppercase letters and digits"),
			},
		},
		"secret_access_key_wo": schema.StringAttribute{
			Description: "Secret access key of `access_key_id`. Write-only (Terraform 1.11 or later): it is sent to " +
				"the agent on create, when `access_key_id` changes and when `secret_access_key_wo_version` changes, " +
				"and never stored in the Terraform plan or state. The agent never returns it.",
			Optional:  true,
			Sensitive: true,
			WriteOnly: true,
		},
		"secret_access_key_wo_version": schema.Int64Attribute{
			Description: "Version of `secret_access_key_wo`. Terraform cannot see a change of a write-only value: " +
				"change this number (for example increment it) to send a new secret to the agent in place.",
			Optional: true,
			Validators: []validator.Int64{
				int64validator.AlsoRequires(path.MatchRoot("secret_access_key_wo")),
			},
		},
	}
}

func scheduleAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"interval": schema.StringAttribute{
			Description: "How often events are delivered: one of " + codeList(api.Intervals) + ". " +
				"Defaults to `" + api.DefaultInterval + "` when `daily_at` is not set; stays null when it is. " +
				"Conflicts with `daily_at`.",
			Optional: true,
			Computed: true,
			Validators: []validator.String{
				stringvalidator.OneOf(api.Intervals...),
			},
			PlanModifiers: []planmodifier.String{defaultInterval{}},
		},
		"daily_at": schema.StringAttribute{
			Description: "Deliver once a day at this UTC time of day, as `HH:MM` (for example `05:00`), " +
				"instead of every `interval`. Conflicts with `interval`.",
			Optional: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.DailyAtRe, `must be a UTC time of day as HH:MM, from "00:00" to "23:59"`),
			},
		},
		"backfill": schema.StringAttribute{
			Description: "How much event history, already stored by the agent, is delivered when the destination is " +
				"created: `0` (none) or a duration such as `30m`, `1h`, `24h` or `7d`. Only used at creation; " +
				"changing it later is saved but delivers nothing again. Defaults to `" + api.DefaultBackfill + "`.",
			Optional: true,
			Computed: true,
			Default:  stringdefault.StaticString(api.DefaultBackfill),
			Validators: []validator.String{
				apiRule(`a duration such as "0", "1h", "24h" or "7d"`, backfillRules),
			},
		},
		"key_template": schema.StringAttribute{
			Description: "Layout of object keys under `prefix`. Variables: `{tenant}`, `{event_type}`, `{yyyy}`, `{mm}`, " +
				"`{dd}`, `{hh}` (the events' UTC date and hour; with `{hh}` objects hold one hour of events), " +
				"`{window_start}`, `{window_end}`, `{seq_from}`, `{seq_to}` and `{part}`; for Security Lake's partitions " +
				"`{source}` (`source_name`), `{region}`, `{account}` (`expected_bucket_owner`, else the account of `role_arn`), " +
				"`{yyyymmdd}` and `{class}` (the OCSF class name, with `event_schema = \"ocsf\"`). It must contain " +
				"`{seq_from}`, `{seq_to}` and `{part}` so that keys never repeat, and cannot leave the prefix. " +
				"Without `{event_type}` an object holds every event type of its window and day, in sequence order " +
				"(unless `event_schema = \"ocsf\"`, whose objects hold one class each). " +
				"The extension (`.ndjson.gz`, `.parquet`, …) is appended. The preset `security_lake` stands for `" +
				api.SecurityLakeKeyTemplate + "` and needs `event_schema = \"ocsf\"`, `format = \"parquet\"` and `source_name`. " +
				"Defaults to `" + api.DefaultKeyTemplate + "`.",
			Optional: true,
			Computed: true,
			Default:  stringdefault.StaticString(api.DefaultKeyTemplate),
			Validators: []validator.String{
				apiRule("a key template with {seq_from}, {seq_to} and {part} that stays under the prefix", keyTemplateRules),
			},
		},
		"enabled": schema.BoolAttribute{
			Description: "Whether events are delivered. A disabled destination is paused: events are kept and " +
				"delivered once it is enabled again. Defaults to `true`.",
			Optional: true,
			Computed: true,
			Default:  booldefault.StaticBool(true),
		},
		"event_types": schema.SetAttribute{
			Description: "Deliver only events whose `eventName` is in this set. Unset delivers every event; " +
				"an empty set is not allowed.",
			ElementType: types.StringType,
			Optional:    true,
			Validators: []validator.Set{
				setvalidator.SizeAtLeast(1),
				setvalidator.ValueStringsAre(stringvalidator.LengthAtLeast(1)),
			},
		},
	}
}

func objectAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"format": enumAttribute("Encoding of the objects: `ndjson` (one JSON event per line, what most SIEMs read), "+
			"`json` (one JSON array per object) or `parquet` (Apache Parquet, zstd-compressed pages, rows sorted by time "+
			"within each row group; what Amazon Security Lake and Athena read best). "+formatCombinations, api.Formats, api.DefaultFormat),
		"compression":   compressionAttribute(),
		"event_schema":  enumAttribute("Shape of the delivered events: `raw` (as ingested) or `ocsf` (mapped to OCSF 1.3 by the agent's `ocsf` rules; each object holds one OCSF class). "+formatCombinations, api.EventSchemas, api.DefaultEventSchema),
		"source_name":   sourceNameAttribute(),
		"encryption":    enumAttribute("Server-side encryption of the objects: `sse-s3` (S3-managed keys) or `sse-kms` (requires `kms_key_arn`).", api.Encryptions, api.DefaultEncryption),
		"acl":           enumAttribute("Canned ACL of the objects: "+codeList(api.ACLs)+". Use `none` for buckets with ACLs disabled (object ownership \"bucket owner enforced\").", api.ACLs, api.DefaultACL),
		"storage_class": enumAttribute("S3 storage class of the objects: "+codeList(api.StorageClasses)+".", api.StorageClasses, api.DefaultStorageClass),
		"kms_key_arn": schema.StringAttribute{
			Description: "ARN of the KMS key (or alias) that encrypts the objects. Required when `encryption` is " +
				"`sse-kms`, not allowed otherwise. The role or user, and the key's policy, must allow " +
				codeAnd(policy.KMSActions()) + " on it: S3 calls `kms:GenerateDataKey` to write an object and " +
				"`kms:Decrypt` for the parts of a multipart upload, which every object larger than one part is " +
				"(see the `auditexport_role_policy` data source).",
			Optional: true,
			Validators: []validator.String{
				stringvalidator.RegexMatches(api.KMSKeyARNRe, `must be a KMS key ARN such as "arn:aws:kms:us-east-1:123456789012:key/…"`),
			},
		},
		"max_object_bytes": schema.Int64Attribute{
			Description: fmt.Sprintf("Largest object written, in bytes after compression; a larger batch is split "+
				"into several objects. Between %d (5 MiB) and %d (5 TiB). Defaults to `%d` (256 MiB).",
				api.MinObjectBytes, int64(api.MaxObjectBytes), api.DefaultMaxObjectBytes),
			Optional: true,
			Computed: true,
			Default:  int64default.StaticInt64(api.DefaultMaxObjectBytes),
			Validators: []validator.Int64{
				int64validator.Between(api.MinObjectBytes, api.MaxObjectBytes),
			},
		},
	}
}

// enumAttribute is an optional string with a static default and a fixed set
// of allowed values.
func enumAttribute(description string, allowed []string, def string) schema.StringAttribute {
	return schema.StringAttribute{
		Description: description + " Defaults to `" + def + "`.",
		Optional:    true,
		Computed:    true,
		Default:     stringdefault.StaticString(def),
		Validators:  []validator.String{stringvalidator.OneOf(allowed...)},
	}
}

func computedAttributes() map[string]schema.Attribute {
	str := func(d string) schema.Attribute { return schema.StringAttribute{Description: d, Computed: true} }
	num := func(d string) schema.Attribute { return schema.Int64Attribute{Description: d, Computed: true} }
	return map[string]schema.Attribute{
		"status": schema.SingleNestedAttribute{
			Description: "Delivery status, a snapshot read from the agent at every refresh. A destination whose " +
				"deliveries fail (`retrying` or `failing`) adds a warning to `terraform plan` and `terraform apply` " +
				"naming the destination, the last error and since when. An update keeps the snapshot (so a plan " +
				"does not show it as changing) unless it changes `enabled`; the next refresh reads it again.",
			Computed:      true,
			PlanModifiers: []planmodifier.Object{statusSnapshot{}},
			Attributes: map[string]schema.Attribute{
				"state": str("`pending` (nothing delivered yet), `healthy` (the last attempt succeeded), `retrying` " +
					"(the last attempt failed, for less than the agent's `failing_after`, 5 minutes by default), " +
					"`failing` (attempts have failed for longer; see `last_error`) or `paused` (`enabled = false`). " +
					"Events are kept and retried while retrying or failing."),
				"last_delivery_at":  str("Time of the last successful delivery, RFC 3339; null before the first."),
				"last_attempt_at":   str("Time of the last delivery attempt, RFC 3339; null before the first."),
				"last_error":        str("Error of the last failed delivery, with the fix when there is one; null when the last attempt succeeded."),
				"failing_since":     str("Time since which deliveries fail, RFC 3339; null when healthy."),
				"cursor":            num("Sequence number of the last delivered event."),
				"lag_events":        num("Number of events stored but not yet delivered."),
				"lag_seconds":       num("Age in seconds of the oldest undelivered event; 0 when none."),
				"events_delivered":  num("Number of events delivered so far."),
				"objects_delivered": num("Number of objects written so far."),
				"bytes_delivered":   num("Number of bytes written so far."),
			},
		},
	}
}

// codeList renders values as "`a`, `b` or `c`".
func codeList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "`" + v + "`"
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}
