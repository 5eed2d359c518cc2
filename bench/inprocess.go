package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
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

// inProcessAgent runs the agent's parts inside the bench process, wired from
// the same config file as agent/serve.go wires them, so that runtime/pprof
// and runtime/trace see the agent's goroutines. Only -profile uses it: the
// benchmark's figures come from the agent's own process.
type inProcessAgent struct {
	files *agentProc
	close func()
}

func (a *inProcessAgent) pid() int        { return os.Getpid() }
func (a *inProcessAgent) logTail() string { return tail(a.files.logPath, 20) }

func (a *inProcessAgent) start(ctx context.Context) (err error) {
	if a.close != nil {
		return errors.New("the agent is already running")
	}
	cfg, err := config.Load(a.files.config)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(a.files.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	closers = append(closers, func() { logf.Close() })
	log := hclog.New(&hclog.LoggerOptions{Name: "auditexport", Level: hclog.LevelFromString(cfg.LogLevel), Output: logf})

	st, err := store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "auditexport.db"))
	if err != nil {
		return err
	}
	closers = append(closers, func() { st.Close() })
	principal, err := s3sink.NewPrincipal(ctx, s3sink.Options{
		Region: cfg.AWS.Region, S3Endpoint: cfg.AWS.S3Endpoint, STSEndpoint: cfg.AWS.STSEndpoint,
		UsePathStyle: cfg.AWS.S3UsePathStyle, PrincipalARN: cfg.AWS.PrincipalARN,
		AccessKeyID: cfg.AWS.AccessKeyID, SecretAccessKey: cfg.AWS.SecretAccessKey,
		AssumeRoleRetry: cfg.AWS.AssumeRoleRetry,
	})
	if err != nil {
		return err
	}
	m := metrics.New()
	committer := ingest.NewCommitter(st, ingest.CommitterOptions{}, log.Named("ingest"))
	committer.Start()
	closers = append(closers, committer.Close)
	deliverer := delivery.New(st, func(t s3sink.Target) delivery.Sink { return delivery.SinkFor(principal.Writer(t)) }, m, log, delivery.Options{
		Workers: cfg.Delivery.Workers, Tick: cfg.Delivery.Tick,
		RetryInitial: cfg.Delivery.RetryInitial, RetryMax: cfg.Delivery.RetryMax,
		FailingAfter: cfg.Delivery.FailingAfter, Retention: cfg.Delivery.Retention,
	})
	api := server.New(st, committer, principal, deliverer, m, log, server.Options{
		Fields: ingest.Fields{
			Timestamp: cfg.Ingest.TimestampField, EventName: cfg.Ingest.EventNameField, MessageID: cfg.Ingest.MessageIDField,
		},
		Limits:          ingest.Limits{MaxEventBytes: int(cfg.Ingest.MaxEventBytes)},
		MaxRequestBytes: cfg.Ingest.MaxRequestBytes,
		TenantRate:      float64(cfg.Ingest.TenantRatePerSecond),
		TenantBurst:     cfg.Ingest.TenantRateBurst,
		FailingAfter:    cfg.Delivery.FailingAfter,
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	dctx, stopDelivery := context.WithCancel(context.Background())
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		deliverer.Run(dctx)
	}()
	closers = append(closers, func() { stopDelivery(); <-delivered })
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	closers = append(closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	})
	if err := waitHTTP(ctx, a.files.endpoint+"/healthz", served, 30*time.Second); err != nil {
		return fmt.Errorf("in-process agent did not start: %w", err)
	}
	a.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	return nil
}

func (a *inProcessAgent) stop() {
	if a.close != nil {
		a.close()
		a.close = nil
	}
}

// profiled runs f; when dir is set, it writes a CPU profile (name.cpu.pprof)
// and an execution trace (name.trace) of f into dir.
func profiled(dir, name string, f func() error) (err error) {
	if dir == "" {
		return f()
	}
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpu.Close()
	tr, err := os.Create(filepath.Join(dir, name+".trace"))
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	if err := trace.Start(tr); err != nil {
		return err
	}
	defer trace.Stop()
	defer progress("profile: %s/%s.cpu.pprof and %s.trace", dir, name, name)
	return f()
}
