// Command auditexport-agent ingests a platform's audit events and delivers
// them to each tenant's own S3 bucket.
//
//	auditexport-agent serve [-config agent.hcl]
//	auditexport-agent migrate [-config agent.hcl]
//	auditexport-agent dev
//	auditexport-agent tenant create NAME | tenant list
//	auditexport-agent token create -tenant NAME | -scope ingest
//	auditexport-agent signing-key list | rotate
//	auditexport-agent verify -bucket NAME [-prefix PREFIX] -keys FILE
//
// Every command finds its configuration the same way: -config, else
// $AUDITEXPORT_CONFIG, else /etc/auditexport/agent.hcl if it exists, else
// the built-in defaults.
package main

import (
	"bytes"
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
  auditexport-agent serve [-config FILE]
      run the agent
  auditexport-agent migrate [-config FILE]
      create the store or bring its schema up to date, and exit
  auditexport-agent dev [-listen ADDR] [-s3-listen ADDR] [-dir DIR] [-tick DURATION]
                        [-info-file FILE] [-provider-dir DIR]
      run a throw-away agent with a local bucket
  auditexport-agent tenant create NAME [-config FILE] [-data-dir DIR]
      add a tenant (prints its external id)
  auditexport-agent tenant list [-config FILE] [-data-dir DIR]
      list the tenants and their external ids
  auditexport-agent token create -tenant NAME [-config FILE] [-data-dir DIR]
      a manage token, for the tenant's Terraform provider
  auditexport-agent token create -scope ingest [-tenant NAME] [-config FILE] [-data-dir DIR]
      the platform's token for posting events (with -tenant, for that tenant only)
  auditexport-agent signing-key list | rotate [-config FILE] [-data-dir DIR]
      list the digest signing keys, or add a new current one
  auditexport-agent verify -bucket NAME [-prefix PREFIX] (-keys FILE | -keys-url URL)
                           [-destination ID] [-from TIME] [-to TIME] [-region REGION]
                           [-endpoint-url URL] [-parallel N] [-json]
      check a bucket prefix against its signed hourly digests, with read access only
      (exits 1 on a problem found, 2 when it cannot check)
  auditexport-agent version

Every command reads the config file named by -config, else by
$AUDITEXPORT_CONFIG, else /etc/auditexport/agent.hcl if it exists, else runs
on built-in defaults. The tenant and token commands change the store of the
agent that config describes (its data_dir, or -data-dir; or its PostgreSQL
database, from store.postgres or $AUDITEXPORT_DATABASE_URL), which serve or
migrate must have created. "auditexport-agent COMMAND -h" shows a command's flags.
`

// commandUsage is the synopsis of each command's -h, by flag set name.
var commandUsage = map[string]string{
	"serve": "auditexport-agent serve [-config FILE]\n\nRuns the agent: the API, durable ingest and delivery.",
	"migrate": "auditexport-agent migrate [-config FILE]\n\nCreates the store the config describes, or brings its schema up to date, and exits.\n" +
		"Agents that start during a migration wait for it.",
	"dev":    "auditexport-agent dev [flags]\n\nRuns a throw-away agent with a local S3-compatible bucket, a tenant, tokens and a destination.",
	"tenant": "auditexport-agent tenant create NAME [flags]\n  auditexport-agent tenant list [flags]\n\nAdds or lists tenants in the store of the agent the config describes.",
	"token": "auditexport-agent token create -tenant NAME [flags]\n  auditexport-agent token create -scope ingest [-tenant NAME] [flags]\n\n" +
		"Creates a token in the store of the agent the config describes and prints it (it is shown only once).",
	"signing-key": signingKeyUsage,
	"verify": "auditexport-agent verify -bucket NAME [-prefix PREFIX] (-keys FILE | -keys-url URL) [flags]\n\n" +
		"Checks a bucket prefix against the signed hourly digests under PREFIX/_auditexport/digests/: every\n" +
		"signature and chain link, no missing hour, every listed object present and unchanged, every object\n" +
		"in a digest, and sequence ranges without a gap or an overlap. It needs s3:ListBucket on the bucket\n" +
		"and s3:GetObject on the prefix, with AWS credentials from the SDK's default chain.\n" +
		"Exits 0 when all is well, 1 when it found a problem, 2 when it could not check.",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(os.Stderr, "error: %s\n", ee.msg)
			}
			os.Exit(ee.code)
		}
		var ue usageError
		if errors.As(err, &ue) {
			u := ue.usage
			if u == "" {
				u = usage
			}
			fmt.Fprintf(os.Stderr, "error: %s\n\n%s", ue.msg, u)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line; main prints it with usage,
// or with the whole usage when that is empty, and exits 2.
type usageError struct{ msg, usage string }

func (e usageError) Error() string { return e.msg }

// exitError ends the command with its exit code, printing msg (when not
// empty) without the usage.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// helpShown is returned by parseInterspersed after it printed a command's
// usage for -h or -help; run ends without an error.
type helpShown struct{ usage string }

func (helpShown) Error() string { return "help requested" }

func run(ctx context.Context, args []string, out io.Writer) error {
	err := dispatch(ctx, args, out)
	var help helpShown
	if errors.As(err, &help) {
		fmt.Fprint(out, help.usage)
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "a command is required"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:])
	case "migrate":
		return runMigrate(ctx, args[1:], out)
	case "dev":
		return runDev(ctx, args[1:], out)
	case "tenant":
		return runTenant(ctx, args[1:], out)
	case "token":
		return runToken(ctx, args[1:], out)
	case "signing-key":
		return runSigningKey(ctx, args[1:], out)
	case "verify":
		return runVerify(ctx, args[1:], out)
	case "version", "-version", "--version":
		fmt.Fprintln(out, "auditexport-agent", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	return usageError{msg: fmt.Sprintf("unknown command %q", args[0])}
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("tenant create acme -config x.hcl"). For -h or -help it returns
// helpShown with the command's usage; for a bad flag, a usageError with it.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	// The flag package would print its own message and usage to stderr;
	// run and main print them instead, to the right stream.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpShown{flagUsage(fs)}
			}
			return nil, usageError{msg: err.Error(), usage: flagUsage(fs)}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagUsage is a command's usage: its synopsis and every flag it takes.
func flagUsage(fs *flag.FlagSet) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Usage:\n  %s\n\nFlags:\n", commandUsage[fs.Name()])
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if fs.Lookup("config") != nil {
		b.WriteString("\nWithout -config, the config file is $AUDITEXPORT_CONFIG, else /etc/auditexport/agent.hcl if it exists, else the built-in defaults.\n")
	}
	return b.String()
}
