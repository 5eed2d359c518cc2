package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/testenv"
)

func TestStatusWarning(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	delivered := since.Add(-time.Hour)
	dest := func(st api.DestinationStatus) api.Destination {
		return api.Destination{ID: "dst_1", DestinationSpec: api.DestinationSpec{Bucket: "acme-audit", Prefix: "audit"}, Status: st}
	}
	for _, c := range []struct {
		name    string
		status  api.DestinationStatus
		summary string   // "" for no warning
		detail  []string // in the detail
	}{
		{"pending", api.DestinationStatus{State: api.StatePending}, "", nil},
		{"healthy", api.DestinationStatus{State: api.StateHealthy, LastDeliveryAt: &delivered}, "", nil},
		{"paused", api.DestinationStatus{State: api.StatePaused, LastError: "old"}, "", nil},
		{"retrying", api.DestinationStatus{State: api.StateRetrying, LastError: "PutObject: NoSuchBucket", FailingSince: &since, LagEvents: 3},
			"Destination dst_1 is retrying", []string{"dst_1", `bucket "acme-audit"`, `prefix "audit"`, "since 2026-11-25T10:02:00Z", "Last error: PutObject: NoSuchBucket", "3 events are waiting"}},
		{"failing", api.DestinationStatus{State: api.StateFailing, LastError: "AccessDenied", FailingSince: &since, LastDeliveryAt: &delivered},
			"Destination dst_1 is failing", []string{"since 2026-11-25T10:02:00Z", "Last error: AccessDenied", "last delivery 2026-11-25T09:02:00Z"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := statusWarning(dest(c.status))
			if c.summary == "" {
				if d != nil {
					t.Fatalf("warning %q for state %s, want none", d.Summary(), c.status.State)
				}
				return
			}
			if d == nil {
				t.Fatalf("no warning for state %s", c.status.State)
			}
			if d.Summary() != c.summary {
				t.Errorf("summary %q, want %q", d.Summary(), c.summary)
			}
			for _, want := range c.detail {
				if !strings.Contains(d.Detail(), want) {
					t.Errorf("detail lacks %q:\n%s", want, d.Detail())
				}
			}
		})
	}
}

func TestRegionDiag(t *testing.T) {
	allowed := []string{"us-east-1", "eu-west-1"}
	if d := regionDiag("eu-west-1", allowed, "https://audit.example.com"); d != nil {
		t.Errorf("allowed region: %s", d.Detail())
	}
	if d := regionDiag("ap-south-1", nil, "https://audit.example.com"); d != nil {
		t.Errorf("no allow-list: %s", d.Detail())
	}
	d := regionDiag("ap-south-1", allowed, "https://audit.example.com")
	if d == nil {
		t.Fatal("ap-south-1 allowed, want an error")
	}
	for _, want := range []string{`"ap-south-1"`, `"us-east-1" or "eu-west-1"`, "https://audit.example.com"} {
		if !strings.Contains(d.Detail(), want) {
			t.Errorf("detail lacks %q: %s", want, d.Detail())
		}
	}
}

// newAccEnvWith is newAccEnv with an agent configured by opts.
func newAccEnvWith(t *testing.T, tenant string, opts testenv.AgentOptions) *accEnv {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	if opts.Tick == "" {
		opts.Tick = "1s"
	}
	return useAgent(t, testenv.NewAgentWithOptions(t, testenv.StartMoto(t), opts), tenant)
}

// The agent's aws.allowed_regions refuses another region at plan time,
// on create and on update, naming the allowed ones.
func TestAccS3Destination_allowedRegions(t *testing.T) {
	env := newAccEnvWith(t, "initech", testenv.AgentOptions{AWS: `  allowed_regions = ["us-east-1", "eu-west-1"]`})
	bucket, role := env.Agent.CustomerSetup(t, "initech", env.ExternalID, "audit")
	client := env.Agent.Client(t, env.ManageToken)
	in := func(region string) string {
		return destinationConfig(fmt.Sprintf("bucket = %q", bucket), fmt.Sprintf("region = %q", region),
			fmt.Sprintf("role_arn = %q", role), `prefix = "audit"`)
	}
	refused := errorRe(`(?s)Region not allowed.*only to buckets in "us-east-1" or "eu-west-1"; region "ap-south-1" is not one of them`)

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkDestroyed(client),
		Steps: []acc.TestStep{
			{Config: in("ap-south-1"), PlanOnly: true, ExpectError: refused},
			{
				Config: in("us-east-1"),
				Check:  acc.TestCheckResourceAttr(testDestination, "region", "us-east-1"),
			},
			{Config: in("ap-south-1"), ExpectError: refused},
		},
	})
}

// A destination whose bucket disappears turns failing; the plan stays
// empty (the refresh warns instead), status reads failing after a refresh,
// an update keeps the status snapshot, and disabling it plans a new one.
func TestAccS3Destination_failingStatus(t *testing.T) {
	env := newAccEnvWith(t, "umbrella", testenv.AgentOptions{Delivery: `  failing_after = "2s"`})
	bucket, role := env.Agent.CustomerSetup(t, "umbrella", env.ExternalID, "audit")
	client := env.Agent.Client(t, env.ManageToken)
	config := func(lines ...string) string {
		return roleDestination(bucket, role, append([]string{`prefix = "audit"`}, lines...)...)
	}
	status := tfjsonpath.New("status")

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkDestroyed(client),
		Steps: []acc.TestStep{
			{
				Config: config(),
				Check:  acc.TestCheckResourceAttr(testDestination, "status.state", "pending"),
			},
			{
				// Nothing in the configuration changed: the plan is empty.
				PreConfig: func() {
					deleteBucket(t, env.Agent.Moto.S3Client(), bucket)
					postEvents(t, env.Agent, env.Tenant, 5)
					waitForState(t, client, api.StateFailing)
				},
				Config:   config(),
				PlanOnly: true,
			},
			{
				RefreshState: true,
				Check: acc.ComposeAggregateTestCheckFunc(
					acc.TestCheckResourceAttr(testDestination, "status.state", "failing"),
					acc.TestMatchResourceAttr(testDestination, "status.last_error", regexp.MustCompile(`.`)),
					acc.TestMatchResourceAttr(testDestination, "status.failing_since", regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)),
					acc.TestCheckResourceAttr(testDestination, "status.lag_events", "5"),
				),
			},
			{
				// An update keeps the refreshed status instead of planning
				// every status value as unknown.
				PreConfig: func() { env.Agent.Moto.CreateBucket(t, bucket, "us-east-1") },
				Config:    config(`interval = "5m"`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testDestination, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(testDestination, status.AtMapKey("state"), knownvalue.NotNull()),
					plancheck.ExpectKnownValue(testDestination, status.AtMapKey("cursor"), knownvalue.NotNull()),
				}},
				Check: acc.TestCheckResourceAttr(testDestination, "interval", "5m"),
			},
			{
				// Disabling changes the state: status is planned anew.
				Config: config(`interval = "5m"`, `enabled = false`),
				ConfigPlanChecks: acc.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue(testDestination, status),
				}},
				Check: acc.TestCheckResourceAttr(testDestination, "status.state", "paused"),
			},
		},
	})
}

// deleteBucket empties and deletes bucket, so that deliveries to it fail.
func deleteBucket(t *testing.T, c *s3.Client, bucket string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list %s: %v", bucket, err)
	}
	for _, o := range out.Contents {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
			t.Fatalf("delete %s/%s: %v", bucket, aws.ToString(o.Key), err)
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("delete bucket %s: %v", bucket, err)
	}
}

// waitForState polls the tenant's only destination until its state is want.
func waitForState(t *testing.T, c *api.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		dests, err := c.ListDestinations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(dests) == 1 && dests[0].Status.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination never became %s: %+v", want, dests)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
