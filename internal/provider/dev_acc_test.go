package provider

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/testenv"
)

// The README's "Try it" configuration names these, as the dev agent does.
const (
	devRoleARN   = "arn:aws:iam::000000000000:role/auditexport-dev"
	devPrincipal = "arn:aws:iam::000000000000:user/auditexport-dev"
	readmePrefix = "siem"
	// readmeDestination is the README's destination resource.
	readmeDestination = "auditexport_s3_destination.siem"
)

// devAgentInfo is the part of the dev agent's -info-file the tests read.
type devAgentInfo struct {
	Endpoint    string `json:"endpoint"`
	ManageToken string `json:"manage_token"`
	IngestToken string `json:"ingest_token"`
	Tenant      string `json:"tenant"`
	ExternalID  string `json:"external_id"`
	RoleARN     string `json:"role_arn"`
	BucketDir   string `json:"bucket_dir"`
	DataDir     string `json:"data_dir"`
}

// TestAccDevMode_readmeRolePath runs `auditexport-agent dev` as a newcomer
// does and applies the README's "Try it" configuration, unchanged, with the
// endpoint and token the agent tells: the identity and trust policy data
// sources and a destination through the dev role, whose connection test
// assumes the role on the dev agent's STS. Events then arrive in the bucket
// through that role. A role the dev STS does not know, and a tenant whose
// external id the dev role does not trust, are refused with the connection
// test's usual AssumeRole message.
func TestAccDevMode_readmeRolePath(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests need TF_ACC=1 (make test sets it)")
	}
	t.Setenv("TF_ACC_TEMP_DIR", t.TempDir())
	// The README's configuration names the provider's registry address.
	t.Setenv("TF_ACC_PROVIDER_NAMESPACE", "auditexport")
	readme := readmeTryItConfig(t)
	dev := startDevAgent(t)
	if dev.RoleARN != devRoleARN {
		t.Fatalf("the dev agent's role is %s, the README's %s", dev.RoleARN, devRoleARN)
	}
	client, err := api.NewClient(dev.Endpoint, dev.ManageToken, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("README configuration applies", func(t *testing.T) {
		t.Setenv(EnvEndpoint, dev.Endpoint)
		t.Setenv(EnvToken, dev.ManageToken)
		acc.Test(t, acc.TestCase{
			ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
			CheckDestroy:             checkNoDestinationUnder(client, readmePrefix),
			Steps: []acc.TestStep{{
				Config: readme,
				Check: acc.ComposeAggregateTestCheckFunc(
					acc.TestCheckOutput("external_id", dev.ExternalID),
					acc.TestCheckResourceAttr("data.auditexport_identity.this", "principal_arn", devPrincipal),
					acc.TestCheckResourceAttr("data.auditexport_trust_policy.delivery", "json",
						policy.TrustPolicy(devPrincipal, dev.ExternalID).JSON()),
					acc.TestCheckResourceAttr(readmeDestination, "role_arn", devRoleARN),
					acc.TestCheckResourceAttr(readmeDestination, "external_id", dev.ExternalID),
					acc.TestCheckResourceAttr(readmeDestination, "prefix", readmePrefix),
					checkReadmeDestination(client),
					checkDeliveredUnder(dev, readmePrefix),
				),
			}},
		})
	})

	globexExternalID, globexToken := dev.tenant(t, "globex")
	refused := []struct {
		name, token, roleARN, externalID string
	}{
		{"role the dev STS does not know", dev.ManageToken, "arn:aws:iam::000000000000:role/not-the-dev-role", dev.ExternalID},
		{"tenant whose external id the dev role does not trust", globexToken, devRoleARN, globexExternalID},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvEndpoint, dev.Endpoint)
			t.Setenv(EnvToken, tt.token)
			msg := fmt.Sprintf(`AssumeRole denied (AccessDenied): the role's trust policy must allow %s to call sts:AssumeRole with sts:ExternalId %q (data source auditexport_trust_policy); check also that role %s exists`,
				devPrincipal, tt.externalID, tt.roleARN)
			acc.Test(t, acc.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []acc.TestStep{{
					Config:      strings.ReplaceAll(readme, devRoleARN, tt.roleARN),
					ExpectError: errorRe(`(?s)Connection test failed: AssumeRole.*` + regexp.QuoteMeta(msg)),
				}},
			})
		})
	}
}

// readmeTryItConfig is the HCL block of the README's "Try it" section.
func readmeTryItConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "\n## Try it")
	if start < 0 {
		t.Fatal(`README.md has no "Try it" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	m := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal(`README.md's "Try it" section has no hcl block`)
	}
	if !strings.Contains(m[1], devRoleARN) {
		t.Fatalf("the README's configuration does not use the dev role %s:\n%s", devRoleARN, m[1])
	}
	return m[1]
}

// devAgent is a running `auditexport-agent dev` and what it wrote to its
// -info-file.
type devAgent struct {
	devAgentInfo
	bin string
}

// startDevAgent starts the dev agent with a one-second tick and waits for
// its info file. The agent is killed when the test ends.
func startDevAgent(t *testing.T) *devAgent {
	t.Helper()
	bin := testenv.AgentBinary(t)
	infoFile := filepath.Join(t.TempDir(), "dev.json")
	var out testenv.SyncBuffer
	cmd := exec.Command(bin, "dev", "-listen", testenv.FreeAddr(t), "-tick", "1s", "-info-file", infoFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("dev agent output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		data, err := os.ReadFile(infoFile)
		if err == nil {
			d := &devAgent{bin: bin}
			if err := json.Unmarshal(data, &d.devAgentInfo); err != nil {
				t.Fatalf("info file %s: %v", data, err)
			}
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no info file after 60s:\n%s", out.String())
		}
		select {
		case <-exited:
			t.Fatalf("the dev agent exited at start:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var externalIDLine = regexp.MustCompile(`external id: (\S+)`)

// tenant adds a tenant to the running dev agent with the operator commands,
// as an operator would, and returns its external id and a manage token.
func (d *devAgent) tenant(t *testing.T, name string) (externalID, manageToken string) {
	t.Helper()
	run := func(args ...string) string {
		out, err := exec.Command(d.bin, append(args, "-data-dir", d.DataDir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("auditexport-agent %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	m := externalIDLine.FindStringSubmatch(run("tenant", "create", name))
	if m == nil {
		t.Fatal("tenant create printed no external id")
	}
	return m[1], strings.TrimSpace(run("token", "create", "-tenant", name))
}

// checkReadmeDestination reads the README's destination from the agent.
func checkReadmeDestination(c *api.Client) acc.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[readmeDestination]
		if !ok {
			return fmt.Errorf("%s not in state", readmeDestination)
		}
		d, err := c.GetDestination(context.Background(), rs.Primary.ID)
		if err != nil {
			return fmt.Errorf("GetDestination %s: %w", rs.Primary.ID, err)
		}
		if d.RoleARN != devRoleARN || d.Bucket != "auditexport-dev" || d.Prefix != readmePrefix {
			return fmt.Errorf("agent has %+v", d.DestinationSpec)
		}
		return nil
	}
}

// checkNoDestinationUnder verifies that no destination is left under
// prefix; the dev agent's own destination stays.
func checkNoDestinationUnder(c *api.Client, prefix string) acc.TestCheckFunc {
	return func(*terraform.State) error {
		dests, err := c.ListDestinations(context.Background())
		if err != nil {
			return err
		}
		for _, d := range dests {
			if d.Prefix == prefix {
				return fmt.Errorf("destination %s under %s/ left after destroy", d.ID, prefix)
			}
		}
		return nil
	}
}

// checkDeliveredUnder posts an event and waits for the destination under
// prefix to write it into the bucket, which it can only do with the dev
// role's credentials.
func checkDeliveredUnder(d *devAgent, prefix string) acc.TestCheckFunc {
	return func(*terraform.State) error {
		ingest, err := api.NewClient(d.Endpoint, d.IngestToken, nil)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("readme-%d", time.Now().UnixNano())
		event := fmt.Sprintf(`{"timestamp":%d,"eventName":"user.login","messageId":%q}`, time.Now().UnixMilli(), id)
		if _, err := ingest.PostEvents(context.Background(), d.Tenant, []byte(event)); err != nil {
			return fmt.Errorf("posting an event: %w", err)
		}
		dir := filepath.Join(d.BucketDir, prefix)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if found, err := objectsHold(dir, id); err != nil || found {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("event %s not delivered under %s within 60s", id, dir)
	}
}

// objectsHold tells whether a gzip object under dir holds substr. An object
// still being written reads short and is looked at again at the next poll.
func objectsHold(dir, substr string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".gz") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		data, _ := io.ReadAll(zr)
		if strings.Contains(string(data), substr) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found, err
}
