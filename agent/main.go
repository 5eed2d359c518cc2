// Command auditexport-agent ingests a platform's audit events and delivers
// them to each tenant's own S3 bucket.
//
//	auditexport-agent serve [-config agent.hcl]
//	auditexport-agent dev
//	auditexport-agent tenant create NAME | tenant list
//	auditexport-agent token create -tenant NAME | -scope ingest
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set by the release build.
var version = "dev"

const usage = `auditexport-agent delivers your platform's audit events to your customers' S3 buckets.

Usage:
  auditexport-agent serve  [-config agent.hcl]        run the agent
  auditexport-agent dev    [-listen 127.0.0.1:8470]   run a throw-away agent with a local bucket
  auditexport-agent tenant create NAME [-config F]    add a tenant (prints its external id)
  auditexport-agent tenant list [-config F]
  auditexport-agent token create -tenant NAME [-config F]   manage token for a tenant's Terraform provider
  auditexport-agent token create -scope ingest [-config F]  the platform's token for posting events
  auditexport-agent version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "error: %s\n\n%s", ue.msg, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{"a command is required"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:])
	case "dev":
		return runDev(ctx, args[1:], out)
	case "tenant":
		return runTenant(ctx, args[1:], out)
	case "token":
		return runToken(ctx, args[1:], out)
	case "version", "-version", "--version":
		fmt.Fprintln(out, "auditexport-agent", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("tenant create acme -config x.hcl").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
