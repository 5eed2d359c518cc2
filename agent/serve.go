package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/delivery"
	"github.com/auditexport/auditexport/internal/ingest"
	"github.com/auditexport/auditexport/internal/metrics"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/server"
	"github.com/auditexport/auditexport/internal/store"
)

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "HCL config file (default: built-in defaults)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	rt, err := startRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		rt.close()
		return fmt.Errorf("listen: %w", err)
	}
	return rt.serve(ctx, ln)
}

func newLogger(cfg *config.Config) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "auditexport",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     os.Stderr,
	})
}

// runtime is a running agent: store, group commit, delivery and the API.
type runtime struct {
	cfg       *config.Config
	log       hclog.Logger
	store     *store.SQLite
	committer *ingest.Committer
	principal *s3sink.Principal
	deliverer *delivery.Deliverer
	metrics   *metrics.Metrics
	api       *server.Server
}

func openStore(ctx context.Context, cfg *config.Config) (*store.SQLite, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	return store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "auditexport.db"))
}

func startRuntime(ctx context.Context, cfg *config.Config, log hclog.Logger) (*runtime, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	principal, err := s3sink.NewPrincipal(ctx, principalOptions(cfg))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("aws: %w", err)
	}
	rt := &runtime{cfg: cfg, log: log, store: st, principal: principal, metrics: metrics.New()}
	rt.committer = ingest.NewCommitter(st, ingest.CommitterOptions{}, log.Named("ingest"))
	rt.committer.Start()
	rt.deliverer = delivery.New(st, func(t s3sink.Target) delivery.Sink { return delivery.SinkFor(principal.Writer(t)) }, rt.metrics, log, delivery.Options{
		Workers: cfg.Delivery.Workers, Tick: cfg.Delivery.Tick,
		RetryInitial: cfg.Delivery.RetryInitial, RetryMax: cfg.Delivery.RetryMax,
		FailingAfter: cfg.Delivery.FailingAfter, Retention: cfg.Delivery.Retention,
	})
	rt.api = server.New(st, rt.committer, principal, rt.deliverer, rt.metrics, log, server.Options{
		Fields: ingest.Fields{
			Timestamp: cfg.Ingest.TimestampField, EventName: cfg.Ingest.EventNameField, MessageID: cfg.Ingest.MessageIDField,
		},
		Limits:          ingest.Limits{MaxEventBytes: int(cfg.Ingest.MaxEventBytes)},
		MaxRequestBytes: cfg.Ingest.MaxRequestBytes,
		TenantRate:      float64(cfg.Ingest.TenantRatePerSecond),
		TenantBurst:     cfg.Ingest.TenantRateBurst,
		FailingAfter:    cfg.Delivery.FailingAfter,
	})
	return rt, nil
}

func principalOptions(cfg *config.Config) s3sink.Options {
	return s3sink.Options{
		Region: cfg.AWS.Region, S3Endpoint: cfg.AWS.S3Endpoint, STSEndpoint: cfg.AWS.STSEndpoint,
		UsePathStyle: cfg.AWS.S3UsePathStyle, PrincipalARN: cfg.AWS.PrincipalARN,
		AccessKeyID: cfg.AWS.AccessKeyID, SecretAccessKey: cfg.AWS.SecretAccessKey,
		AssumeRoleRetry: cfg.AWS.AssumeRoleRetry,
	}
}

// serve runs the API and delivery until ctx ends, then shuts down in order:
// stop accepting requests, commit what was accepted, stop delivery between
// objects (a plan in flight stays persisted and is re-run at the next start).
func (rt *runtime) serve(ctx context.Context, ln net.Listener) error {
	dctx, stopDelivery := context.WithCancel(context.Background())
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		rt.deliverer.Run(dctx)
	}()
	srv := &http.Server{Handler: rt.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: rt.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	served := make(chan error, 1)
	go func() { served <- rt.listen(srv, ln) }()
	rt.log.Info("agent started", "version", version, "listen", ln.Addr().String(), "data_dir", rt.cfg.DataDir, "tls", rt.cfg.TLS != nil)

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	rt.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopDelivery()
	<-delivered
	rt.close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (rt *runtime) listen(srv *http.Server, ln net.Listener) error {
	if rt.cfg.TLS != nil {
		return srv.ServeTLS(ln, rt.cfg.TLS.CertFile, rt.cfg.TLS.KeyFile)
	}
	return srv.Serve(ln)
}

func (rt *runtime) close() {
	if rt.committer != nil {
		rt.committer.Close()
	}
	if err := rt.store.Close(); err != nil {
		rt.log.Error("closing store", "error", err)
	}
}
