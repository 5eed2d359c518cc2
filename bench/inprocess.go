package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/daemon"
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

func (a *inProcessAgent) start(ctx context.Context) error {
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
	log := hclog.New(&hclog.LoggerOptions{Name: "auditexport", Level: hclog.LevelFromString(cfg.LogLevel), Output: logf})
	d, err := daemon.Start(ctx, cfg, log, "bench")
	if err != nil {
		logf.Close()
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.Close()
		logf.Close()
		return err
	}
	sctx, stopServing := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = d.Serve(sctx, ln)
	}()
	a.close = func() {
		stopServing()
		<-served
		logf.Close()
	}
	if err := waitHTTP(ctx, a.files.endpoint+"/healthz", served, 30*time.Second); err != nil {
		a.stop()
		return fmt.Errorf("in-process agent did not start: %w", err)
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
