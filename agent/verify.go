package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/verify"
)

// verifyFlags are the verify command's flags.
type verifyFlags struct {
	bucket, prefix, destination string
	from, to                    string
	keys, keysURL               string
	region, endpointURL         string
	parallel                    int
	json                        bool
}

func newVerifyFlags() (*flag.FlagSet, *verifyFlags) {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	f := &verifyFlags{}
	fs.StringVar(&f.bucket, "bucket", "", "the destination's `bucket` (required)")
	fs.StringVar(&f.prefix, "prefix", "", "the destination's `prefix`; digests are under PREFIX/_auditexport/digests/")
	fs.StringVar(&f.destination, "destination", "", "check only this destination `id`'s digests (default: every destination under the prefix)")
	fs.StringVar(&f.from, "from", "", "check the hours from this `time` on (RFC 3339, or YYYY-MM-DD for that day's start)")
	fs.StringVar(&f.to, "to", "", "check the hours before this `time` (RFC 3339, or YYYY-MM-DD to include that day)")
	fs.StringVar(&f.keys, "keys", "", "a `file` with the published signing keys (the JSON of GET /v1/signing-keys)")
	fs.StringVar(&f.keysURL, "keys-url", "", "the agent's signing keys `URL` (https://…/v1/signing-keys), instead of -keys")
	fs.StringVar(&f.region, "region", "", "the bucket's `region` (default: the SDK's, from AWS_REGION or the profile, else us-east-1)")
	fs.StringVar(&f.endpointURL, "endpoint-url", "", "a custom S3 endpoint `URL`, addressed path-style (such as an S3-compatible server)")
	fs.IntVar(&f.parallel, "parallel", verify.DefaultParallel, "hash this `number` of objects at once")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	return fs, f
}

// runVerify checks a bucket prefix against its digests. It exits 1 when
// problems are found, 2 when it could not check (bad flags, access denied).
func runVerify(ctx context.Context, args []string, out io.Writer) error {
	fs, f := newVerifyFlags()
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	opts, err := f.options(pos)
	if err != nil {
		return usageError{msg: err.Error(), usage: flagUsage(fs)}
	}
	if opts.Keys, err = f.loadKeys(ctx); err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if opts.Client, err = f.client(ctx); err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	report, err := verify.Run(ctx, opts)
	if err != nil {
		return exitError{code: 2, msg: "could not verify: " + err.Error()}
	}
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printReport(out, opts, report)
	}
	if !report.OK() {
		return exitError{code: 1, msg: plural(len(report.Problems), "problem") + " found"}
	}
	return nil
}

// options checks the flags and turns them into verify.Options, all but the
// client and the keys.
func (f *verifyFlags) options(pos []string) (verify.Options, error) {
	o := verify.Options{Bucket: f.bucket, Prefix: f.prefix, DestinationID: f.destination, Parallel: f.parallel}
	var err error
	switch {
	case len(pos) != 0:
		return o, fmt.Errorf("verify takes no arguments, got %q", pos)
	case f.bucket == "":
		return o, errors.New("-bucket is required: the destination's bucket")
	case f.keys == "" && f.keysURL == "":
		return o, errors.New("-keys FILE or -keys-url URL is required: the agent's published signing keys")
	case f.keys != "" && f.keysURL != "":
		return o, errors.New("give -keys or -keys-url, not both")
	case f.parallel < 1:
		return o, fmt.Errorf("-parallel must be at least 1, got %d", f.parallel)
	}
	if o.From, err = parseTime("-from", f.from, false); err != nil {
		return o, err
	}
	if o.To, err = parseTime("-to", f.to, true); err != nil {
		return o, err
	}
	if !o.From.IsZero() && !o.To.IsZero() && !o.From.Before(o.To) {
		return o, fmt.Errorf("-from %s is not before -to %s", f.from, f.to)
	}
	return o, nil
}

// parseTime reads RFC 3339 or a date; a date as an end (-to) means the end
// of that day, so "-from 2025-01-01 -to 2025-01-31" is all of January.
func parseTime(name, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2025-01-31T13:00:00Z) or a date (2025-01-31)", name, s)
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// loadKeys reads the key set from -keys or -keys-url.
func (f *verifyFlags) loadKeys(ctx context.Context) (digest.KeySet, error) {
	var data []byte
	var from string
	if f.keys != "" {
		from = f.keys
		var err error
		if data, err = os.ReadFile(f.keys); err != nil {
			return digest.KeySet{}, fmt.Errorf("-keys: %w", err)
		}
	} else {
		from = f.keysURL
		var err error
		if data, err = fetchKeys(ctx, f.keysURL); err != nil {
			return digest.KeySet{}, fmt.Errorf("-keys-url: %w", err)
		}
	}
	ks, err := digest.ParseKeySet(data)
	if err != nil {
		return ks, fmt.Errorf("%s: %w", from, err)
	}
	if len(ks.Keys) == 0 {
		return ks, fmt.Errorf("%s: no keys", from)
	}
	return ks, nil
}

// fetchKeys GETs an agent's published keys. The keys are public; a token in
// $AUDITEXPORT_TOKEN is sent when set, for an agent behind authentication.
func fetchKeys(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if tok := os.Getenv("AUDITEXPORT_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// client is an S3 client from the SDK's default credential chain.
func (f *verifyFlags) client(ctx context.Context) (*s3.Client, error) {
	var loaders []func(*awsconfig.LoadOptions) error
	if f.region != "" {
		loaders = append(loaders, awsconfig.WithRegion(f.region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if f.endpointURL != "" {
			o.BaseEndpoint = aws.String(f.endpointURL)
			o.UsePathStyle = true
		}
	}), nil
}

// printReport prints what was checked, each problem with its key, and a
// summary.
func printReport(out io.Writer, opts verify.Options, r *verify.Report) {
	where := "s3://" + r.Bucket + "/"
	if p := strings.TrimSuffix(opts.Prefix, "/"); p != "" {
		where += p + "/"
	}
	fmt.Fprintf(out, "Checked %s against the digests in %s, %s\n", where, digest.FolderFor(opts.Prefix, opts.DestinationID), describeRange(r))
	for _, d := range r.Destinations {
		fmt.Fprintf(out, "  destination %s: %s over %s", d.ID, plural(d.Digests, "digest"), plural(d.Hours, "hour"))
		if !d.FirstHour.IsZero() {
			fmt.Fprintf(out, " (%s to %s)", d.FirstHour.Format(time.RFC3339), d.LastHour.Format(time.RFC3339))
		}
		fmt.Fprintf(out, ", %s, signed by %s\n", plural(d.Objects, "object"), strings.Join(d.KeyIDs, ", "))
	}
	if u := r.Unlisted; u.Skipped != "" {
		fmt.Fprintf(out, "  objects not in any digest: not checked: %s\n", u.Skipped)
	} else {
		fmt.Fprintf(out, "  objects not in any digest: checked %s last modified %s to %s (%d outside that window)\n",
			plural(u.Checked, "object"), u.From.Format(time.RFC3339), u.To.Format(time.RFC3339), u.Outside)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(out, "PROBLEM %s %s\n  %s\n", p.Kind, p.Key, p.Message)
	}
	summary := fmt.Sprintf("%s, %s, %s, %s, %s hashed", plural(len(r.Destinations), "destination"), plural(r.Digests, "digest"),
		plural(r.Hours, "hour"), plural(r.Objects, "object"), byteCount(r.BytesHashed))
	if r.OK() {
		fmt.Fprintf(out, "OK: %s; no problems\n", summary)
	} else {
		fmt.Fprintf(out, "FAILED: %s; %s\n", summary, plural(len(r.Problems), "problem"))
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func describeRange(r *verify.Report) string {
	switch {
	case r.From.IsZero() && r.To.IsZero():
		return "all hours"
	case r.To.IsZero():
		return "the hours from " + r.From.Format(time.RFC3339)
	case r.From.IsZero():
		return "the hours before " + r.To.Format(time.RFC3339)
	}
	return fmt.Sprintf("the hours from %s to %s", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
}

func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
