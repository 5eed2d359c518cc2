// Package s3sink is the AWS side of delivery: it assumes the customer's role
// with the tenant's external id, writes objects into the customer's bucket
// exactly once (If-None-Match: *), runs the connection test of a new
// destination and turns AWS errors into messages that say what to fix.
package s3sink

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
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
	// AssumeRoleRate caps the AssumeRole calls of delivery, across all
	// roles, per second (burst: one second's worth); 0 means
	// DefaultAssumeRoleRate. Each role is assumed once per session and its
	// credentials shared by every destination that uses it, so the cap
	// matters at a cold start, when every role is assumed at once. The
	// connection test is not paced.
	AssumeRoleRate float64
}

// Idle connections kept by the SDK's transport. Its defaults (10 a host,
// 100 in all) are for a client making a few calls at a time: with the
// delivery workers writing to one endpoint (path style, or one region's
// buckets behind it) most connections would be closed after each request
// and opened again, a TLS handshake each against AWS.
const (
	maxIdleConns        = 512
	maxIdleConnsPerHost = 64
)

func keepConnections(tr *http.Transport) {
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxIdleConns, maxIdleConnsPerHost
}

// DefaultAssumeRoleRate is the AssumeRole calls per second delivery makes at
// most: at a cold start with 10,000 roles every role is assumed within
// about two minutes, while STS keeps most of the account's request quota
// for everyone else.
const DefaultAssumeRoleRate = 100

// refreshAhead is how long before its expiry a role session is renewed:
// between half of it and all of it (jittered), so that the sessions
// assumed together at a cold start are not renewed together an hour later,
// and a slow STS has minutes to answer before anything is delayed.
const refreshAhead = 5 * time.Minute

// Principal is the delivery principal: it assumes customers' roles and
// builds a Writer per destination.
type Principal struct {
	opts Options
	cfg  aws.Config
	sts  *sts.Client
	// pace is the token bucket of delivery's AssumeRole calls.
	pace *rate.Limiter

	mu  sync.Mutex
	arn string
	// roles caches one credentials provider per (role, external id), and
	// clients one S3 client per region; the Writers share them. Both grow
	// with the distinct roles and regions of the destinations, not with
	// the destinations: a few hundred bytes per role.
	roles   map[roleKey]*roleSession
	clients map[string]*s3.Client
}

// roleSession is a role's shared, cached session and when its current
// credentials expire, so that a Writer can tell without a call whether
// Prepare would wait for STS.
type roleSession struct {
	cache *aws.CredentialsCache
	// expires is the expiry of the last credentials assumed, in Unix
	// nanoseconds; 0 before the first, math.MaxInt64 for credentials that
	// do not expire.
	expires atomic.Int64
}

// fresh reports whether the session's credentials are valid for longer
// than refreshAhead at now: the cache then answers without assuming the
// role again (it renews between refreshAhead/2 and refreshAhead ahead).
func (r *roleSession) fresh(now time.Time) bool {
	exp := r.expires.Load()
	return exp != 0 && now.Add(refreshAhead).UnixNano() < exp
}

type roleKey struct{ arn, externalID string }

// NewPrincipal loads the principal's AWS configuration.
func NewPrincipal(ctx context.Context, opts Options) (*Principal, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(opts.HTTPClient))
	} else {
		loadOpts = append(loadOpts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(keepConnections)))
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
	if opts.AssumeRoleRate <= 0 {
		opts.AssumeRoleRate = DefaultAssumeRoleRate
	}
	p := &Principal{
		opts: opts, cfg: cfg, arn: opts.PrincipalARN,
		pace:  rate.NewLimiter(rate.Limit(opts.AssumeRoleRate), max(1, int(opts.AssumeRoleRate))),
		roles: map[roleKey]*roleSession{}, clients: map[string]*s3.Client{},
	}
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

// Writer returns the Writer delivery uses for t. Credentials are resolved
// lazily, on the first request (or Prepare), and renewed ahead of their
// expiry. Writers of the same role and external id share one session, and
// Writers of the same region one S3 client, so a Writer costs little more
// than its Target.
func (p *Principal) Writer(t Target) *Writer {
	var creds aws.CredentialsProvider
	switch {
	case t.AccessKeyID != "":
		creds = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, "")
		w := p.newWriter(t, creds)
		// Static keys get a client of their own: the SigV4 signer caches
		// signing keys by access key id, so on a shared client a secret
		// corrected under the same key id would keep the wrong key until
		// the next day. Role sessions have an access key id each.
		w.client = p.newClient(w.region)
		return w
	case t.RoleARN != "":
		r := p.roleCredentials(t.RoleARN, t.ExternalID)
		w := p.newWriter(t, r.cache)
		w.session = r
		return w
	}
	return p.newWriter(t, creds)
}

// testWriter returns a Writer for the connection test: it assumes the role
// afresh, unpaced, so that the test proves the trust policy as it is now
// rather than reusing a session delivery assumed earlier.
func (p *Principal) testWriter(t Target) *Writer {
	var creds aws.CredentialsProvider
	switch {
	case t.AccessKeyID != "":
		creds = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, "")
	case t.RoleARN != "":
		creds = aws.NewCredentialsCache(p.assumeRoleProvider(t.RoleARN, t.ExternalID))
	}
	w := p.newWriter(t, creds)
	// A client of its own too: the SigV4 signer caches signing keys by
	// access key id, so on a shared client a wrong secret for a key id
	// that signed correctly before would pass the test.
	w.client = p.newClient(w.region)
	return w
}

// newWriter builds a Writer of t signing with creds, or with the
// principal's own credentials when creds is nil: without a role or keys the
// principal writes, granted by the customer's bucket policy.
func (p *Principal) newWriter(t Target, creds aws.CredentialsProvider) *Writer {
	region := p.cfg.Region
	if t.Region != "" {
		region = t.Region
	}
	owner := t.BucketOwner()
	// The options every call of the Writer is made with: its credentials
	// and its bucket owner on the region's shared client.
	var callOpts []func(*s3.Options)
	if creds != nil {
		callOpts = append(callOpts, func(o *s3.Options) { o.Credentials = creds })
	} else {
		creds = p.cfg.Credentials
	}
	if owner != "" {
		callOpts = append(callOpts, func(o *s3.Options) { o.APIOptions = append(o.APIOptions, expectBucketOwner(owner)) })
	}
	log := p.opts.Logger.With("bucket", t.Bucket)
	if t.Destination != "" {
		log = log.With("destination", t.Destination)
	}
	return &Writer{p: p, t: t, region: region, owner: owner, creds: creds, client: p.regionClient(region), callOpts: callOpts, log: log}
}

// regionClient returns the S3 client of region, shared by every Writer of
// the region (and so is its connection pool).
//
// The SDK's default retryer (standard mode) is kept: it backs off with
// jitter and retries 5xx, SlowDown and throttling errors. The default
// request checksum (CRC32, sent as a header over plain HTTP) is kept too:
// moto accepts it and AWS verifies it.
func (p *Principal) regionClient(region string) *s3.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[region]; ok {
		return c
	}
	c := p.newClient(region)
	p.clients[region] = c
	return c
}

func (p *Principal) newClient(region string) *s3.Client {
	cfg := p.cfg.Copy()
	cfg.Region = region
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = p.opts.UsePathStyle
		if p.opts.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(p.opts.S3Endpoint)
		}
	})
}

// roleCredentials returns the shared, paced session of a role and external
// id. A failed AssumeRole is not cached: the next request tries again.
func (p *Principal) roleCredentials(roleARN, externalID string) *roleSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := roleKey{roleARN, externalID}
	if r, ok := p.roles[k]; ok {
		return r
	}
	r := &roleSession{}
	r.cache = aws.NewCredentialsCache(pacedProvider{pace: p.pace, next: p.assumeRoleProvider(roleARN, externalID), session: r},
		func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = refreshAhead
			o.ExpiryWindowJitterFrac = 0.5
		})
	p.roles[k] = r
	return r
}

func (p *Principal) assumeRoleProvider(roleARN, externalID string) *stscreds.AssumeRoleProvider {
	return stscreds.NewAssumeRoleProvider(p.sts, roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = RoleSessionName
		if externalID != "" {
			o.ExternalID = aws.String(externalID)
		}
	})
}

// pacedProvider waits for the principal's token bucket before each
// AssumeRole, so that a cold start assumes its roles at a steady rate
// instead of a burst STS would throttle.
type pacedProvider struct {
	pace    *rate.Limiter
	next    aws.CredentialsProvider
	session *roleSession // told the expiry of each session assumed
}

func (p pacedProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if err := p.pace.Wait(ctx); err != nil {
		return aws.Credentials{}, err
	}
	creds, err := p.next.Retrieve(ctx)
	if err == nil {
		exp := int64(math.MaxInt64)
		if creds.CanExpire {
			exp = creds.Expires.UnixNano()
		}
		p.session.expires.Store(exp)
	}
	return creds, err
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
