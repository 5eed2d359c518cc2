package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/daemon"
	"github.com/auditexport/auditexport/internal/devs3"
	"github.com/auditexport/auditexport/internal/store"
)

const (
	devBucket    = "auditexport-dev"
	devTenant    = "acme"
	devPrefix    = "audit"
	devAccessKey = "AKIADEVEXAMPLE000000"
	devSecret    = "dev-secret"
	devPrincipal = "arn:aws:iam::000000000000:user/auditexport-dev"
	// devRoleARN is the role the local STS lets the agent assume with the
	// dev tenant's external id: the customer's delivery role, as the
	// README's Terraform configuration names it.
	devRoleARN = "arn:aws:iam::000000000000:role/auditexport-dev"
	// providerAddress is the provider's registry address, which a
	// dev_overrides entry must name.
	providerAddress = "registry.terraform.io/auditexport/auditexport"
	// startedMessage is the daemon's last startup log line; the banner waits
	// for it so that it is not printed among the startup lines.
	startedMessage = "agent started"
)

// devFlags are the flags of the dev command.
type devFlags struct {
	listen, s3Listen, dir, infoFile, providerDir string
	tick                                         time.Duration
}

func parseDevFlags(args []string) (devFlags, error) {
	var f devFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8470", "address of the agent's API")
	fs.StringVar(&f.s3Listen, "s3-listen", "127.0.0.1:0", "address of the local S3 and STS server")
	fs.StringVar(&f.dir, "dir", "", "directory for the agent's data and the bucket (default: a temporary one, removed on exit)")
	fs.DurationVar(&f.tick, "tick", 10*time.Second, "how often every destination delivers, whatever its interval")
	fs.StringVar(&f.infoFile, "info-file", "", "write the endpoint, tokens, role ARN and paths as JSON to this file once the agent is ready (removed on exit)")
	fs.StringVar(&f.providerDir, "provider-dir", defaultProviderDir(), "directory holding a locally built terraform-provider-auditexport, for the printed dev_overrides")
	_, err := parseInterspersed(fs, args)
	return f, err
}

// defaultProviderDir is where `go install .` puts the provider.
func defaultProviderDir() string {
	if dir := os.Getenv("GOBIN"); dir != "" {
		return dir
	}
	if gopath := filepath.SplitList(os.Getenv("GOPATH")); len(gopath) > 0 && gopath[0] != "" {
		return filepath.Join(gopath[0], "bin")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "bin")
	}
	return ""
}

// runDev starts a throw-away agent wired to a local S3-compatible bucket and
// STS, with a tenant, tokens, a role trusting the tenant and a destination,
// and prints how to use it.
func runDev(ctx context.Context, args []string, out io.Writer) error {
	f, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	root, cleanup, err := devDir(f.dir)
	if err != nil {
		return err
	}
	defer cleanup()

	s3srv, err := devs3.Start(ctx, filepath.Join(root, "s3"), f.s3Listen)
	if err != nil {
		return err
	}
	defer s3srv.Close()
	if err := s3srv.CreateBucket(devBucket); err != nil {
		return err
	}
	cfg := devConfig(root, f.listen, s3srv.URL(), f.tick)
	logger, started := startupLogger(cfg)
	d, err := daemon.Start(ctx, cfg, logger, version)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.Close()
		return fmt.Errorf("listen on %s (another agent running? use -listen): %w", cfg.Listen, err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	select {
	case <-started:
	case err := <-served:
		return err
	}

	info, err := setupDev(ctx, d.Store, s3srv, "http://"+ln.Addr().String())
	if err != nil {
		return err
	}
	info.S3Endpoint, info.BucketDir, info.DataDir = s3srv.URL(), s3srv.BucketDir(devBucket), cfg.DataDir
	info.tick, info.providerDir = f.tick, f.providerDir
	if info.TerraformCLIConfig, err = writeTerraformRC(root, f.providerDir); err != nil {
		return err
	}
	if f.infoFile != "" {
		if err := writeInfoFile(f.infoFile, info); err != nil {
			return err
		}
		defer os.Remove(f.infoFile)
	}
	printDev(out, info)
	return <-served
}

func devDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o700)
	}
	tmp, err := os.MkdirTemp("", "auditexport-dev-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

func devConfig(root, listen, s3URL string, tick time.Duration) *config.Config {
	cfg := config.Default()
	cfg.Listen = listen
	cfg.DataDir = filepath.Join(root, "data")
	// One local server is both S3 and STS.
	cfg.AWS.S3Endpoint = s3URL
	cfg.AWS.STSEndpoint = s3URL
	cfg.AWS.S3UsePathStyle = true
	cfg.AWS.PrincipalARN = devPrincipal
	cfg.AWS.AccessKeyID = devAccessKey
	cfg.AWS.SecretAccessKey = devSecret
	// The local STS knows a role the moment it is added, so a refused
	// AssumeRole is final: show it at once rather than after retrying.
	cfg.AWS.AssumeRoleRetry, cfg.AWS.AssumeRoleRetryHCL = 0, "0s"
	cfg.Delivery.Tick = tick
	return cfg
}

// startupLogger is the agent's logger, with a channel closed once the daemon
// has logged that it serves.
func startupLogger(cfg *config.Config) (hclog.Logger, <-chan struct{}) {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:       "auditexport",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     os.Stderr,
	})
	s := &startedSink{started: make(chan struct{})}
	l.RegisterSink(s)
	return l, s.started
}

// startedSink closes started when it sees the daemon's startup line, which
// the intercept logger hands to sinks after writing it.
type startedSink struct {
	once    sync.Once
	started chan struct{}
}

func (s *startedSink) Accept(_ string, _ hclog.Level, msg string, _ ...interface{}) {
	if msg == startedMessage {
		s.once.Do(func() { close(s.started) })
	}
}

// devInfo is what dev mode tells its user, in the banner and as the JSON of
// -info-file.
type devInfo struct {
	Endpoint           string `json:"endpoint"`
	ManageToken        string `json:"manage_token"`
	IngestToken        string `json:"ingest_token"`
	Tenant             string `json:"tenant"`
	ExternalID         string `json:"external_id"`
	RoleARN            string `json:"role_arn"`
	Bucket             string `json:"bucket"`
	Region             string `json:"region"`
	DestinationID      string `json:"destination_id"`
	S3Endpoint         string `json:"s3_endpoint"`
	BucketDir          string `json:"bucket_dir"`
	DataDir            string `json:"data_dir"`
	TerraformCLIConfig string `json:"terraform_cli_config"`

	tick        time.Duration
	providerDir string
}

// setupDev creates the tenant, both tokens, the tenant's role in the local
// STS and a destination through the public API, exactly as an operator and
// a customer would.
func setupDev(ctx context.Context, st store.Store, s3srv *devs3.Server, endpoint string) (devInfo, error) {
	info := devInfo{Endpoint: endpoint, Tenant: devTenant, RoleARN: devRoleARN, Bucket: devBucket, Region: devs3.Region}
	t, err := st.TenantByName(ctx, devTenant)
	if err != nil {
		if t, err = createTenant(ctx, st, devTenant); err != nil {
			return info, err
		}
	}
	info.ExternalID = t.ExternalID
	// What the customer's trust policy does: trust the delivery principal
	// with this tenant's external id, and no other.
	if err := s3srv.AddRole(devRoleARN, t.ExternalID); err != nil {
		return info, err
	}
	if info.IngestToken, err = createToken(ctx, st, api.ScopeIngest, ""); err != nil {
		return info, err
	}
	if info.ManageToken, err = createToken(ctx, st, api.ScopeManage, devTenant); err != nil {
		return info, err
	}
	client, err := api.NewClient(endpoint, info.ManageToken, nil)
	if err != nil {
		return info, err
	}
	dest, err := devDestination(ctx, client)
	if err != nil {
		return info, fmt.Errorf("creating the dev destination: %w", err)
	}
	info.DestinationID = dest.ID
	return info, nil
}

// devDestination creates the dev destination through the role, or finds the
// one an earlier run on the same -dir created, so that restarts do not pile
// up destinations writing the same keys.
func devDestination(ctx context.Context, client *api.Client) (api.Destination, error) {
	existing, err := client.ListDestinations(ctx)
	if err != nil {
		return api.Destination{}, err
	}
	for _, d := range existing {
		if d.Bucket == devBucket && d.Prefix == devPrefix {
			return d, nil
		}
	}
	return client.CreateDestination(ctx, api.DestinationSpec{
		Bucket: devBucket, Region: devs3.Region, Prefix: devPrefix, Interval: "1m", RoleARN: devRoleARN,
	})
}

// writeTerraformRC writes a Terraform CLI configuration that uses the
// provider binary in providerDir instead of the registry's, and returns its
// path.
func writeTerraformRC(root, providerDir string) (string, error) {
	path := filepath.Join(root, "terraform.rc")
	rc := fmt.Sprintf(`# Terraform CLI configuration for the auditexport dev agent: use the
# provider built in %[1]s instead of the registry's.
# No terraform init is needed for a provider under dev_overrides.
provider_installation {
  dev_overrides {
    %[2]q = %[1]q
  }
  direct {}
}
`, providerDir, providerAddress)
	if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
		return "", fmt.Errorf("writing the Terraform CLI configuration: %w", err)
	}
	return path, nil
}

// writeInfoFile writes info as JSON to path, whole or not at all, so that a
// script polling for the file never reads half of it.
func writeInfoFile(path string, info devInfo) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("-info-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("-info-file: %w", err)
	}
	return nil
}

// providerHint says where the dev_overrides provider comes from, and how to
// build it when it is not there yet.
func providerHint(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "terraform-provider-auditexport")); err == nil {
		return "use the provider built in " + dir
	}
	return "use a provider built in " + dir + ": none is there yet, run `go install .` (or `make dev`) in the repository"
}

func printDev(out io.Writer, i devInfo) {
	now := time.Now().UTC()
	day := now.Format("2006-01-02")
	objectDir := filepath.Join(i.BucketDir, devPrefix, "user.login", day, i.Tenant)
	// The messageId is taken when the command runs, so every run posts a new
	// event rather than a duplicate the agent accepts and drops.
	event := fmt.Sprintf(`{"timestamp":"%s","eventName":"user.login","messageId":"msg-'"$(date +%%s%%N)"'","actor":"alice@example.com"}`,
		now.Format(time.RFC3339))
	fmt.Fprintf(out, `
auditexport dev agent is running. Its data and bucket are thrown away when it stops (Ctrl-C).

  API           %s
  tenant        %s (external id %s)
  ingest token  %s
  manage token  %s
  role          %s (trusts tenant %s's external id only)
  bucket        %s in %s, on the local S3 and STS server %s
  destination   %s -> s3://%s/%s/ through the role
  delivery      every %s: the dev tick overrides every destination's interval

Use the Terraform provider (the README's "Try it" configuration applies as is):

  export AUDITEXPORT_ENDPOINT=%s
  export AUDITEXPORT_TOKEN=%s
  export TF_CLI_CONFIG_FILE=%s

  role_arn = %q
  bucket   = %q

  TF_CLI_CONFIG_FILE's dev_overrides %s.

Post an event (each run posts a new one):

  curl -sS -H 'Authorization: Bearer %s' --data-binary '%s' %s/v1/tenants/%s/events

Within %s the object appears (gzip NDJSON) in:

  %s/

  ls -R %s
  zcat %s/*.ndjson.gz

Destination status: curl -sS -H 'Authorization: Bearer %s' %s/v1/destinations/%s
`,
		i.Endpoint, i.Tenant, i.ExternalID, i.IngestToken, i.ManageToken,
		i.RoleARN, i.Tenant, i.Bucket, i.Region, i.S3Endpoint,
		i.DestinationID, i.Bucket, devPrefix, i.tick,
		i.Endpoint, i.ManageToken, i.TerraformCLIConfig,
		i.RoleARN, i.Bucket, providerHint(i.providerDir),
		i.IngestToken, event, i.Endpoint, i.Tenant,
		i.tick, objectDir, i.BucketDir, objectDir,
		i.ManageToken, i.Endpoint, i.DestinationID)
}
