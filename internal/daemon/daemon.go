// Package daemon wires the agent's parts together from its configuration:
// the store, group commit, the delivery loop and the HTTP API. The
// auditexport-agent command and the bench run the agent through it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/delivery"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/secrets"
	"github.com/auditexport/auditexport/internal/server"
	"github.com/auditexport/auditexport/internal/signing"
	"github.com/auditexport/auditexport/internal/store"
)

// shutdownTimeout bounds how long requests in flight may finish at a stop.
const shutdownTimeout = 15 * time.Second

// Daemon is a started agent: store, group commit, delivery and the API.
type Daemon struct {
	Store store.Store

	cfg       *config.Config
	log       hclog.Logger
	version   string
	committer *ingest.Committer
	deliverer *delivery.Deliverer
	api       *server.Server
}

// Options are what a Daemon takes besides its configuration.
type Options struct {
	// Clock is the agent's one clock: the store stamps with it, the API
	// limits rates and computes states with it, delivery schedules,
	// retries and sweeps with it. nil is the system clock.
	Clock clock.Clock
}

// Start opens the store and builds the agent's parts; Serve runs them.
func Start(ctx context.Context, cfg *config.Config, log hclog.Logger, version string) (*Daemon, error) {
	return StartWith(ctx, cfg, log, version, Options{})
}

// StartWith is Start with opts.
func StartWith(ctx context.Context, cfg *config.Config, log hclog.Logger, version string, opts Options) (*Daemon, error) {
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	// One mapper for every OCSF destination, compiled before anything is
	// opened so that a wrong rule stops the start with its name.
	mapper, err := cfg.OCSFMapper()
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, clk.Now)
	if err != nil {
		return nil, err
	}
	log.Info("store opened", "store", DescribeStore(cfg))
	sealed, keys, err := sealSecrets(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	signer, err := signingKeys(ctx, st, keys, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	popts := principalOptions(cfg)
	popts.Logger = log.Named("s3")
	principal, err := s3sink.NewPrincipal(ctx, popts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("aws: %w", err)
	}
	tester := principalStatus{Principal: principal}
	if err := checkCredentials(ctx, cfg, log.Named("aws")); err != nil {
		tester.missing = true
		log.Warn(missingCredentialsFix, "error", err)
	}
	m := metrics.NewWith(metrics.Options{PerDestination: cfg.Metrics == nil || cfg.Metrics.PerDestination})
	d := &Daemon{Store: st, cfg: cfg, log: log, version: version}
	d.committer = ingest.NewCommitter(st, ingest.CommitterOptions{
		Concurrency: st.AppendWriters(),
		// A store with several writers overlaps commits of one tenant too.
		ShareTenants: st.AppendWriters() > 1,
		Committed:    func(events int) { m.CommitBatches.Observe(float64(events)) },
	}, log.Named("ingest"))
	d.committer.Start()
	sinks := func(t s3sink.Target) delivery.Sink { return delivery.SinkFor(principal.Writer(t)) }
	dopts, sopts := deliveryOptions(cfg), serverOptions(cfg)
	dopts.Clock, sopts.Now = clk, clk.Now
	dopts.OCSF, dopts.MessageIDField = mapper, cfg.Ingest.MessageIDField
	dopts.Signer = signer
	d.deliverer = delivery.New(sealed, sinks, m, log, dopts)
	d.api = server.New(sealed, d.committer, tester, d.deliverer, m, log, sopts)
	return d, nil
}

// sealSecrets loads the key that seals destination secrets, brings every
// stored secret under it (sealing plaintext ones, re-sealing those of a
// previous key) and returns the store the API and delivery use: it seals
// secrets as they are stored and opens them as they are read.
func sealSecrets(ctx context.Context, cfg *config.Config, st store.Store, log hclog.Logger) (store.Store, *secrets.Keyring, error) {
	keys, generated, err := secrets.FromConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if generated != "" {
		log.Warn("generated the key that seals destination secrets in the store; back it up apart from the database, or better keep it outside the data directory (secrets.key_file, key_env or kms_key_arn)", "path", generated)
	}
	n, err := secrets.Reseal(ctx, st, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: %w", err)
	}
	if n > 0 {
		log.Info("sealed destination secrets with the current key", "destinations", n, "key", keys.CurrentID())
	}
	return secrets.WrapStore(st, keys), keys, nil
}

// signingKeys makes the digest signing key on the first start (agents
// sharing a store make one between them) and returns the keys delivery
// signs digests with. The private keys are sealed with the secrets keyring.
func signingKeys(ctx context.Context, st store.Store, keys *secrets.Keyring, log hclog.Logger) (*signing.Keys, error) {
	signer := signing.New(st, keys)
	cur, made, err := signer.Ensure(ctx)
	if err != nil {
		return nil, fmt.Errorf("digest signing key: %w", err)
	}
	if made {
		log.Info("made the digest signing key; its public half is published at GET /v1/signing-keys", "key_id", cur.KeyID)
	}
	return signer, nil
}

func principalOptions(cfg *config.Config) s3sink.Options {
	return s3sink.Options{
		Region: cfg.AWS.Region, S3Endpoint: cfg.AWS.S3Endpoint, STSEndpoint: cfg.AWS.STSEndpoint,
		UsePathStyle: cfg.AWS.S3UsePathStyle, PrincipalARN: cfg.AWS.PrincipalARN,
		AccessKeyID: cfg.AWS.AccessKeyID, SecretAccessKey: cfg.AWS.SecretAccessKey,
		AssumeRoleRetry: cfg.AWS.AssumeRoleRetry, AssumeRoleRate: cfg.AWS.AssumeRolePerSecond,
	}
}

func deliveryOptions(cfg *config.Config) delivery.Options {
	return delivery.Options{
		Workers: cfg.Delivery.Workers, Tick: cfg.Delivery.Tick,
		RetryInitial: cfg.Delivery.RetryInitial, RetryMax: cfg.Delivery.RetryMax,
		FailingAfter: cfg.Delivery.FailingAfter, Retention: cfg.Delivery.Retention,
		AgentID: cfg.Delivery.AgentID, LeaseTTL: cfg.Delivery.LeaseTTL, LeaseRenew: cfg.Delivery.LeaseRenew,
	}
}

func serverOptions(cfg *config.Config) server.Options {
	return server.Options{
		Fields: ingest.Fields{
			Timestamp: cfg.Ingest.TimestampField, EventName: cfg.Ingest.EventNameField, MessageID: cfg.Ingest.MessageIDField,
		},
		Limits:          ingest.Limits{MaxEventBytes: int(cfg.Ingest.MaxEventBytes)},
		MaxRequestBytes: cfg.Ingest.MaxRequestBytes,
		TenantRate:      float64(cfg.Ingest.TenantRatePerSecond),
		TenantBurst:     cfg.Ingest.TenantRateBurst,
		FailingAfter:    cfg.Delivery.FailingAfter,

		AuthFailuresPerMinute: cfg.HTTP.AuthFailuresPerMinute,
		AllowedRegions:        cfg.AWS.AllowedRegions,
	}
}

// httpServer bounds every phase of a connection, so that slow bodies and
// idle keep-alives are closed instead of holding a file descriptor each.
func (d *Daemon) httpServer() *http.Server {
	h := d.cfg.HTTP
	return &http.Server{
		Handler:           d.api.Handler(),
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout:       h.ReadTimeout,
		WriteTimeout:      h.WriteTimeout,
		IdleTimeout:       h.IdleTimeout,
		MaxHeaderBytes:    h.MaxHeaderBytes,
		ErrorLog:          d.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// Serve runs the API on ln and delivery until ctx ends, then shuts down in
// order: stop accepting requests, commit what was accepted, let the delivery
// attempt in flight finish (or persist its plan), close the store.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	dctx, stopDelivery := context.WithCancel(context.Background())
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		d.deliverer.Run(dctx)
	}()
	srv := d.httpServer()
	ln = limitListener(ln, d.cfg.HTTP.MaxConnections)
	served := make(chan error, 1)
	go func() { served <- d.listen(srv, ln) }()
	d.log.Info("agent started", "version", d.version, "listen", ln.Addr().String(), "data_dir", d.cfg.DataDir, "tls", d.cfg.TLS != nil)

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	d.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopDelivery()
	<-delivered
	d.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (d *Daemon) listen(srv *http.Server, ln net.Listener) error {
	if d.cfg.TLS != nil {
		return srv.ServeTLS(ln, d.cfg.TLS.CertFile, d.cfg.TLS.KeyFile)
	}
	return srv.Serve(ln)
}

// Close commits what is queued and closes the store. Serve calls it; call it
// only for a Daemon that is not served.
func (d *Daemon) Close() {
	d.committer.Close()
	if err := d.Store.Close(); err != nil {
		d.log.Error("closing store", "error", err)
	}
}
