package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/testenv"
	"github.com/auditexport/auditexport/internal/verify"
)

// digestCheck is a bucket and prefix that verify must pass over once the
// hours of the test are sealed by digests.
type digestCheck struct {
	bucket, prefix string
	destinations   []string
}

// sealHours starts an agent process with its clock an hour ahead, so that
// it holds every hour the test ran in as complete and writes their digests,
// and returns once each destination's digest of the current hour is in its
// bucket. env is the agent's environment beside the clock offset.
func sealHours(t *testing.T, a *testenv.Agent, env []string, checks []digestCheck) {
	t.Helper()
	hour := time.Now().UTC().Truncate(time.Hour)
	a.StartWith(t, append([]string{"AUDITEXPORT_BENCH_CLOCK_OFFSET=1h"}, env...), "serve", "-config", a.Config)
	client := motoS3(a.Moto)
	for _, c := range checks {
		for _, id := range c.destinations {
			key := digest.Key(c.prefix, id, hour)
			testenv.WaitFor(t, "the digest "+key, func() (bool, string) {
				_, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
				var ae smithy.APIError
				if err != nil && (!errors.As(err, &ae) || ae.ErrorCode() != "NotFound" && ae.ErrorCode() != "NoSuchKey") {
					t.Fatalf("HEAD %s: %v", key, err)
				}
				return err == nil, "not written yet"
			})
		}
	}
}

// verifyDigests checks each bucket as a customer would, with the keys the
// agent publishes: every digest signed and chained to the one before, no
// hour without a digest, every listed object present with its SHA-256,
// every object listed, and sequence ranges with no gap or overlap. After
// a run of crashes and faults, a problem here is a break a crash made.
func verifyDigests(t *testing.T, a *testenv.Agent, published *api.Client, checks []digestCheck) {
	t.Helper()
	ks, err := published.SigningKeys(context.Background())
	if err != nil {
		t.Fatalf("reading the signing keys: %v", err)
	}
	raw, err := json.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := digest.ParseKeySet(raw)
	if err != nil {
		t.Fatalf("the published signing keys: %v", err)
	}
	for _, c := range checks {
		rep, err := verify.Run(context.Background(), verify.Options{
			Client: motoLister{motoS3(a.Moto)}, Bucket: c.bucket, Prefix: c.prefix, Keys: keys,
			// The test's objects are minutes old: check all of them.
			Tolerance: time.Minute,
		})
		if err != nil {
			t.Fatalf("verify %s/%s: %v", c.bucket, c.prefix, err)
		}
		for _, p := range rep.Problems {
			t.Errorf("verify %s/%s: %s: %s", c.bucket, c.prefix, p.Kind, p.Message)
		}
		if rep.Digests == 0 || len(rep.Destinations) != len(c.destinations) {
			t.Errorf("verify %s/%s checked %d digests of %d destinations, want %d destinations", c.bucket, c.prefix,
				rep.Digests, len(rep.Destinations), len(c.destinations))
		}
		t.Logf("verify %s/%s: %d digests over %d hours, %d objects hashed (%d bytes), %d objects required to be listed",
			c.bucket, c.prefix, rep.Digests, rep.Hours, rep.Objects, rep.BytesHashed, rep.Unlisted.Checked)
	}
}

// motoS3 is an S3 client of the Moto server's admin: the bucket owner, who
// may read everything.
func motoS3(m *testenv.Moto) *s3.Client {
	return s3.NewFromConfig(m.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(m.URL)
		o.UsePathStyle = true
	})
}

// motoLister lists as verify asks but sends no prefix, delimiter or
// start-after: in auth mode moto rejects the signature of a query parameter
// that contains "/" (SignatureDoesNotMatch), so the bucket is listed whole
// and filtered here, into one page.
type motoLister struct{ *s3.Client }

func (c motoLister) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	prefix, delim, after := aws.ToString(in.Prefix), aws.ToString(in.Delimiter), aws.ToString(in.StartAfter)
	out := &s3.ListObjectsV2Output{Name: in.Bucket, Prefix: in.Prefix, IsTruncated: aws.Bool(false)}
	seen := map[string]bool{}
	pages := s3.NewListObjectsV2Paginator(c.Client, &s3.ListObjectsV2Input{Bucket: in.Bucket})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			rest, ok := strings.CutPrefix(key, prefix)
			if !ok || key <= after {
				continue
			}
			if i := strings.Index(rest, delim); delim != "" && i >= 0 {
				if cp := prefix + rest[:i+len(delim)]; !seen[cp] {
					seen[cp] = true
					out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(cp)})
				}
				continue
			}
			out.Contents = append(out.Contents, obj)
		}
	}
	return out, nil
}
