package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"

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
	d, err := daemon.Start(ctx, cfg, log, version)
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
