package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

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
)

// runDev starts a throw-away agent wired to a local S3-compatible bucket,
// with a tenant, tokens and a destination, and prints how to use it.
func runDev(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8470", "address of the agent's API")
	s3Listen := fs.String("s3-listen", "127.0.0.1:0", "address of the local S3 server")
	dir := fs.String("dir", "", "directory for the agent's data and the bucket (default: a temporary one, removed on exit)")
	tick := fs.Duration("tick", 10*time.Second, "how often the destination delivers")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	root, cleanup, err := devDir(*dir)
	if err != nil {
		return err
	}
	defer cleanup()

	s3srv, err := devs3.Start(ctx, filepath.Join(root, "s3"), *s3Listen)
	if err != nil {
		return err
	}
	defer s3srv.Close()
	if err := s3srv.CreateBucket(devBucket); err != nil {
		return err
	}
	cfg := devConfig(root, *listen, s3srv.URL(), *tick)
	d, err := daemon.Start(ctx, cfg, newLogger(cfg), version)
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

	info, err := setupDev(ctx, d.Store, "http://"+ln.Addr().String())
	if err != nil {
		return err
	}
	info.s3URL, info.bucketDir, info.tick = s3srv.URL(), s3srv.BucketDir(devBucket), *tick
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
	cfg.AWS.S3Endpoint = s3URL
	cfg.AWS.S3UsePathStyle = true
	cfg.AWS.PrincipalARN = devPrincipal
	cfg.AWS.AccessKeyID = devAccessKey
	cfg.AWS.SecretAccessKey = devSecret
	cfg.Delivery.Tick = tick
	return cfg
}

type devInfo struct {
	endpoint, ingestToken, manageToken string
	tenant, externalID, destinationID  string
	s3URL, bucketDir                   string
	tick                               time.Duration
}

// setupDev creates the tenant, both tokens and a destination through the
// public API, exactly as an operator and a customer would.
func setupDev(ctx context.Context, st store.Store, endpoint string) (devInfo, error) {
	info := devInfo{endpoint: endpoint, tenant: devTenant}
	t, err := st.TenantByName(ctx, devTenant)
	if err != nil {
		if t, err = createTenant(ctx, st, devTenant); err != nil {
			return info, err
		}
	}
	info.externalID = t.ExternalID
	if info.ingestToken, err = createToken(ctx, st, api.ScopeIngest, ""); err != nil {
		return info, err
	}
	if info.manageToken, err = createToken(ctx, st, api.ScopeManage, devTenant); err != nil {
		return info, err
	}
	client, err := api.NewClient(endpoint, info.manageToken, nil)
	if err != nil {
		return info, err
	}
	dest, err := client.CreateDestination(ctx, api.DestinationSpec{
		Bucket: devBucket, Region: devs3.Region, Prefix: devPrefix, Interval: "1m",
		AccessKeyID: devAccessKey, SecretAccessKey: devSecret,
	})
	if err != nil {
		return info, fmt.Errorf("creating the dev destination: %w", err)
	}
	info.destinationID = dest.ID
	return info, nil
}

func printDev(out io.Writer, i devInfo) {
	now := time.Now().UTC()
	fmt.Fprintf(out, `
auditexport dev agent is running. Its data and bucket are thrown away when it stops (Ctrl-C).

  API           %s
  tenant        %s (external id %s)
  ingest token  %s
  manage token  %s
  destination   %s -> s3://%s/%s/ on the local S3 server %s
  delivery      every %s (dev tick)

Post an event:

  curl -sS -H 'Authorization: Bearer %s' --data-binary '{"timestamp":"%s","eventName":"user.login","messageId":"msg-%d","actor":"alice@example.com"}' %s/v1/tenants/%s/events

Within %s the object appears (gzip NDJSON) in:

  %s/%s/user.login/%s/%s/

  ls -R %s
  zcat %s/%s/user.login/%s/%s/*.ndjson.gz

Destination status: curl -sS -H 'Authorization: Bearer %s' %s/v1/destinations/%s
`,
		i.endpoint, i.tenant, i.externalID, i.ingestToken, i.manageToken,
		i.destinationID, devBucket, devPrefix, i.s3URL, i.tick,
		i.ingestToken, now.Format(time.RFC3339), now.UnixNano(), i.endpoint, i.tenant,
		i.tick, i.bucketDir, devPrefix, now.Format("2006-01-02"), i.tenant,
		i.bucketDir, i.bucketDir, devPrefix, now.Format("2006-01-02"), i.tenant,
		i.manageToken, i.endpoint, i.destinationID)
}
