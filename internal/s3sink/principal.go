// Package s3sink is the AWS side of delivery: it assumes the customer's role
// with the tenant's external id, writes objects into the customer's bucket
// exactly once (If-None-Match: *), runs the connection test of a new
// destination and turns AWS errors into messages that say what to fix.
package s3sink

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-hclog"
)

// RoleSessionName is the session name of every assumed role session, so that
// customers can find the agent's calls in CloudTrail.
const RoleSessionName = "auditexport"

// defaultRegion is used when neither Options nor the environment name one:
// STS and S3 both need a region to sign requests.
const defaultRegion = "us-east-1"

// Options configure the delivery principal, the AWS identity of the agent.
type Options struct {
	// Region is the principal's home region, used for STS. Empty means the
	// SDK's default chain (AWS_REGION, shared config), else us-east-1.
	Region string
	// S3Endpoint and STSEndpoint override the AWS endpoints so that an
	// S3-compatible server can be used. Operator configuration only: a
	// customer never sets them.
	S3Endpoint  string
	STSEndpoint string
	// UsePathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key, as most S3-compatible servers need.
	UsePathStyle bool
	// PrincipalARN is the principal's ARN as customers see it in their trust
	// policies. Empty means ask STS GetCallerIdentity.
	PrincipalARN string
	// HTTPClient is used for every AWS call when set.
	HTTPClient *http.Client
	// AccessKeyID and SecretAccessKey are static credentials of the
	// principal. Empty means the SDK's default credential chain.
	AccessKeyID     string
	SecretAccessKey string
	// AssumeRoleRetry is how long Test keeps retrying an AssumeRole that is
	// denied, because a role created moments ago in the same terraform apply
	// takes a few seconds to become assumable. Zero means no retry.
	AssumeRoleRetry time.Duration
	// Logger gets what a caller cannot be told, such as a multipart upload
	// that could not be aborted, and the AWS SDK's own log lines. Nil means
	// no logging.
	Logger hclog.Logger
}

// Principal is the delivery principal: it assumes customers' roles and
// builds a Writer per destination.
type Principal struct {
	opts Options
	cfg  aws.Config
	sts  *sts.Client

	mu  sync.Mutex
	arn string
}

// NewPrincipal loads the principal's AWS configuration.
func NewPrincipal(ctx context.Context, opts Options) (*Principal, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(opts.HTTPClient))
	}
	if opts.Logger != nil {
		loadOpts = append(loadOpts, config.WithLogger(SDKLogger(opts.Logger)))
	}
	if (opts.AccessKeyID == "") != (opts.SecretAccessKey == "") {
		return nil, errors.New("s3sink: set both the access key id and the secret access key, or neither")
	}
	if opts.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	p := &Principal{opts: opts, cfg: cfg, arn: opts.PrincipalARN}
	p.sts = sts.NewFromConfig(cfg, func(o *sts.Options) {
		if opts.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(opts.STSEndpoint)
		}
	})
	return p, nil
}

// ARN returns the principal's ARN: Options.PrincipalARN when set, else the
// caller identity reported by STS, which is cached after the first success.
func (p *Principal) ARN(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.arn != "" {
		return p.arn, nil
	}
	out, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", err
	}
	p.arn = aws.ToString(out.Arn)
	return p.arn, nil
}

// Writer returns a Writer for t. Credentials are resolved lazily, on the
// first request, and refreshed before they expire.
func (p *Principal) Writer(t Target) *Writer {
	cfg := p.cfg.Copy()
	if t.Region != "" {
		cfg.Region = t.Region
	}
	switch {
	case t.AccessKeyID != "":
		cfg.Credentials = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, "")
	case t.RoleARN != "":
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(p.sts, t.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = RoleSessionName
				if t.ExternalID != "" {
					o.ExternalID = aws.String(t.ExternalID)
				}
			}))
	}
	// Without a role or keys the principal writes with its own credentials,
	// granted by the customer's bucket policy.
	//
	// The SDK's default retryer (standard mode) is kept: it backs off with
	// jitter and retries 5xx, SlowDown and throttling errors. The default
	// request checksum (CRC32, sent as a header over plain HTTP) is kept
	// too: moto accepts it and AWS verifies it.
	owner := t.BucketOwner()
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = p.opts.UsePathStyle
		if p.opts.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(p.opts.S3Endpoint)
		}
		if owner != "" {
			o.APIOptions = append(o.APIOptions, expectBucketOwner(owner))
		}
	})
	log := p.opts.Logger.With("bucket", t.Bucket)
	if t.Destination != "" {
		log = log.With("destination", t.Destination)
	}
	return &Writer{p: p, t: t, region: cfg.Region, owner: owner, creds: cfg.Credentials, client: client, log: log}
}

// expectBucketOwner adds x-amz-expected-bucket-owner to every request of
// the client, so that S3 refuses (403) any call on a bucket that another
// account owns: a bucket deleted and re-created under the same name by
// someone else never receives a tenant's events. One middleware for the
// client rather than a field per call, so that no call can be left out.
// It runs in the build step, before the request is signed.
func expectBucketOwner(account string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("AuditExportExpectedBucketOwner",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.Header.Set("X-Amz-Expected-Bucket-Owner", account)
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}
