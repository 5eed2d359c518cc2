package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/auditexport/auditexport/internal/verify"
	"github.com/auditexport/auditexport/internal/verify/verifytest"
)

// The verify phase checks a chain of -verify-days days of hourly digests,
// -verify-objects data objects each, with verify.Run (what
// `auditexport-agent verify` runs) against the bench's S3 server. The chain
// is fabricated and uploaded by verifytest, as the agent would have written
// it; the upload is not part of the figures.
const (
	verifyPrefix      = "verify"
	verifyDestination = "dst_verify"
	// verifyEventsPerObject makes objects of a few kB of gzip.
	verifyEventsPerObject = 100
	verifyUploads         = 16 // PUTs in flight while uploading the chain
)

// verifyRun is the phase's figures.
type verifyRun struct {
	days, perHour  int
	build, upload  time.Duration // fabricating and uploading the chain
	wall           time.Duration // verify.Run
	digests, hours int
	objects        int
	bytesHashed    int64
	problems       int
	firstProblem   string
	cpu            cpuUse // bench = verify.Run (in the bench process)
}

// measureVerify builds and uploads the chain, then verifies it.
func measureVerify(ctx context.Context, o options, s3 *s3Server) (*verifyRun, error) {
	hours := o.verifyDays * 24
	res := &verifyRun{days: o.verifyDays, perHour: o.verifyObjects}
	objects := make([]int, hours)
	for i := range objects {
		objects[i] = o.verifyObjects
	}
	progress("verify: fabricating %d hourly digests with %d objects each", hours, o.verifyObjects)
	t := time.Now()
	chain, err := verifytest.Build(verifytest.Spec{
		Bucket: s3.bucket, Prefix: verifyPrefix, Destination: verifyDestination,
		Start:   time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(hours) * time.Hour),
		Objects: objects, EventsPerObject: verifyEventsPerObject,
	})
	if err != nil {
		return nil, fmt.Errorf("verify: building the chain: %w", err)
	}
	res.build = time.Since(t)
	progress("verify: uploading %d objects and %d digests", len(chain.Objects), len(chain.Encoded))
	t = time.Now()
	if err := chain.Upload(ctx, s3.client(), verifyUploads); err != nil {
		return nil, fmt.Errorf("verify: uploading the chain: %w", err)
	}
	res.upload = time.Since(t)

	progress("verify: verify.Run over s3://%s/%s", s3.bucket, verifyPrefix)
	meter := startCPU(pids{s3: s3.pid})
	t = time.Now()
	rep, err := verify.Run(ctx, verify.Options{Client: s3.client(), Bucket: s3.bucket, Prefix: verifyPrefix, Keys: chain.Keys})
	res.wall = time.Since(t)
	res.cpu = meter.stop()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	res.digests, res.hours, res.objects, res.bytesHashed = rep.Digests, rep.Hours, rep.Objects, rep.BytesHashed
	res.problems = len(rep.Problems)
	if res.problems > 0 {
		res.firstProblem = rep.Problems[0].Kind + ": " + rep.Problems[0].Message
	}
	progress("verify: %d digests, %d objects in %s s, %d problems", res.digests, res.objects, secs(res.wall), res.problems)
	return res, nil
}

// printVerify prints the verify section.
func (r *report) printVerify(out io.Writer) {
	v := r.verify
	if v == nil {
		fmt.Fprintf(out, "\nVERIFY: skipped (-verify-days 0)\n")
		return
	}
	row := func(name, value, unit, note string) {
		fmt.Fprintf(out, "  %-30s %12s %-9s %s\n", name, value, unit, note)
	}
	fmt.Fprintf(out, "\nVERIFY: verify.Run over %d day(s) of hourly digests, %d objects each (a fabricated chain, %d events per object), against the S3 server\n",
		v.days, v.perHour, verifyEventsPerObject)
	row("wall time", secs(v.wall), "s", fmt.Sprintf("%d parallel hashes (verify's default)", verify.DefaultParallel))
	row("digests checked", count(int64(v.digests)), "", fmt.Sprintf("of %d hours; signature, chain link, sequence ranges", v.hours))
	row("", fmt.Sprintf("%.0f", float64(v.digests)/v.wall.Seconds()), "digests/s", "")
	row("objects hashed", count(int64(v.objects)), "", fmt.Sprintf("%.1f MB read and SHA-256'd", float64(v.bytesHashed)/1e6))
	row("", fmt.Sprintf("%.0f", float64(v.objects)/v.wall.Seconds()), "objects/s", "")
	note := "the chain is intact: must be 0"
	if v.problems > 0 {
		note = "NOT 0: " + v.firstProblem
	}
	row("problems found", count(int64(v.problems)), "", note)
	cpuRow(row, "CPU: verify (bench process)", cpuUse{agent: v.cpu.bench, other: v.cpu.other, steal: v.cpu.steal}, "S3 server", v.cpu.s3)
	row("chain upload (not timed above)", secs(v.upload), "s", fmt.Sprintf("verifytest.Upload, %d PUTs in flight; built in %s s", verifyUploads, secs(v.build)))
}
