package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/daemon"
)

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "the agent's HCL config `file`")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	path, from := config.Find(*configPath)
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("loading the config named by %s: %w", from, err)
	}
	log := newLogger(cfg)
	log.Info("configuration", "file", path, "from", from)
	opts, err := benchOptions(log)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(log)
	if err != nil {
		return err
	}
	defer stopProfile()
	d, err := daemon.StartWith(ctx, cfg, log, version, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.Close()
		return fmt.Errorf("listen: %w", err)
	}
	return d.Serve(ctx, ln)
}

func newLogger(cfg *config.Config) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "auditexport",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     os.Stderr,
	})
}

// envBenchClockOffset moves the agent's clock by a duration ("-13h20m"), so
// that the bench can bring an hour boundary or a daily_at time within a
// minute of the agent's start. It is a benchmarking aid, not a setting: it
// is read from the environment only, never from the config, and the agent
// warns at start when it is set.
const envBenchClockOffset = "AUDITEXPORT_BENCH_CLOCK_OFFSET"

// envCPUProfile names a file the agent writes a CPU profile of its whole run
// to (runtime/pprof), finished when it shuts down: a profiling aid for the
// bench's many-destinations scenarios, read from the environment only.
const envCPUProfile = "AUDITEXPORT_CPU_PROFILE"

func startCPUProfile(log hclog.Logger) (stop func(), err error) {
	path := os.Getenv(envCPUProfile)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	log.Warn("writing a CPU profile until shutdown", "variable", envCPUProfile, "file", path)
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("writing the CPU profile", "file", path, "error", err)
		}
	}, nil
}

func benchOptions(log hclog.Logger) (daemon.Options, error) {
	v := os.Getenv(envBenchClockOffset)
	if v == "" {
		return daemon.Options{}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return daemon.Options{}, fmt.Errorf("%s=%q: not a duration such as \"-3h20m\": %w", envBenchClockOffset, v, err)
	}
	log.Warn("the agent's clock is moved for a benchmark; unset the variable for any real use", "variable", envBenchClockOffset, "offset", d)
	return daemon.Options{Clock: clock.Offset{D: d}}, nil
}
