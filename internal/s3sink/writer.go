package s3sink

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/policy"
)

// Encryption values of Target.
const (
	EncryptionSSES3  = "sse-s3"
	EncryptionSSEKMS = "sse-kms"
)

// ACL values of Target with a special meaning.
const (
	ACLBucketOwnerFullControl = "bucket-owner-full-control"
	ACLNone                   = "none"
)

// Target is a customer's bucket as one destination writes to it.
type Target struct {
	Bucket string
	// Region is the bucket's region; empty means the principal's region.
	Region string
	// Prefix is prepended to every key; leading and trailing slashes are
	// ignored.
	Prefix string

	// RoleARN and ExternalID select the customer's role. AccessKeyID and
	// SecretAccessKey are static keys instead; they win over RoleARN. With
	// neither, the principal writes with its own credentials.
	RoleARN         string
	ExternalID      string
	AccessKeyID     string
	SecretAccessKey string

	// Encryption is EncryptionSSES3 (also when empty) or EncryptionSSEKMS.
	Encryption string
	// KMSKeyARN is the key for SSE-KMS; empty means the bucket's AWS managed
	// key.
	KMSKeyARN string
	// ACL is a canned ACL. Destinations default to
	// ACLBucketOwnerFullControl; empty or ACLNone sends no ACL header, as
	// buckets with ACLs disabled may require.
	ACL string
	// StorageClass is an S3 storage class; empty means the bucket default.
	StorageClass string

	// ExpectedBucketOwner is the account id that must own the bucket. Empty
	// means the account of RoleARN; with static keys and no
	// ExpectedBucketOwner, the owner is not checked.
	ExpectedBucketOwner string
	// Destination names the destination in log lines.
	Destination string
}

// BucketOwner is the account id sent as x-amz-expected-bucket-owner with
// every request, or "" for none.
func (t Target) BucketOwner() string {
	if t.ExpectedBucketOwner != "" {
		return t.ExpectedBucketOwner
	}
	if t.AccessKeyID == "" {
		return RoleAccount(t.RoleARN)
	}
	return ""
}

// RoleAccount returns the account id of an IAM role ARN
// ("arn:aws:iam::123456789012:role/name"), or "" when arn is not one.
func RoleAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || len(parts[4]) != 12 ||
		!strings.HasPrefix(parts[5], "role/") {
		return ""
	}
	return parts[4]
}

// Writer writes objects into one Target.
type Writer struct {
	p      *Principal
	t      Target
	region string
	owner  string
	creds  aws.CredentialsProvider
	// session is the shared role session creds comes from; nil for
	// static keys and the principal's own credentials.
	session *roleSession
	client  *s3.Client
	// callOpts are passed to every call on the shared client: the
	// Writer's credentials and expected bucket owner.
	callOpts []func(*s3.Options)
	log      hclog.Logger
}

// Prepare resolves the Writer's credentials: the role session, assumed
// (paced) unless one is cached and fresh. Delivery calls it before it
// takes a worker, so that waiting for STS never holds a worker another
// destination could use. Errors are *Error naming AssumeRole.
func (w *Writer) Prepare(ctx context.Context) error {
	if w.t.RoleARN == "" || w.t.AccessKeyID != "" || w.creds == nil {
		return nil
	}
	if _, err := w.creds.Retrieve(ctx); err != nil {
		return w.fail(ctx, "AssumeRole", err)
	}
	return nil
}

// Ready reports whether Prepare would return at once: the Writer's
// credentials need no AssumeRole (static keys, the principal's own) or its
// role session is cached and not due for renewal. Delivery gives a Writer
// that is not ready its own goroutine to wait for STS in, so that the
// workers only ever run destinations that can write.
func (w *Writer) Ready() bool {
	return w.session == nil || w.session.fresh(time.Now())
}

// PutMeta is the metadata of an object.
type PutMeta struct {
	ContentType     string
	ContentEncoding string
}

// PutResult tells how a Put ended.
type PutResult struct {
	// AlreadyExists is set when the key was already written (HTTP 412 on
	// If-None-Match: *). The object was left untouched: a retried write of
	// the same deterministic key counts as done.
	AlreadyExists bool
}

// Put writes body to key, never over an existing object. size is the body
// length, or -1 to let the SDK seek to find it. Errors are *Error.
func (w *Writer) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta PutMeta) (PutResult, error) {
	in, err := w.putInput(key, body, size, meta)
	if err != nil {
		return PutResult{}, err
	}
	if _, err := w.client.PutObject(ctx, in, w.callOpts...); err != nil {
		if preconditionFailed(err) {
			return PutResult{AlreadyExists: true}, nil
		}
		return PutResult{}, w.fail(ctx, "PutObject", err)
	}
	return PutResult{}, nil
}

func (w *Writer) putInput(key string, body io.ReadSeeker, size int64, meta PutMeta) (*s3.PutObjectInput, error) {
	in := &s3.PutObjectInput{
		Bucket:      aws.String(w.t.Bucket),
		Key:         aws.String(key),
		Body:        body,
		IfNoneMatch: aws.String("*"),
		// CRC32C lets S3 reject a corrupted upload; the SDK computes it.
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}
	if size >= 0 {
		in.ContentLength = aws.Int64(size)
	}
	if meta.ContentType != "" {
		in.ContentType = aws.String(meta.ContentType)
	}
	if meta.ContentEncoding != "" {
		in.ContentEncoding = aws.String(meta.ContentEncoding)
	}
	switch w.t.Encryption {
	case "", EncryptionSSES3:
		in.ServerSideEncryption = types.ServerSideEncryptionAes256
	case EncryptionSSEKMS:
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		if w.t.KMSKeyARN != "" {
			in.SSEKMSKeyId = aws.String(w.t.KMSKeyARN)
		}
		// An S3 Bucket Key cuts the KMS calls from one per object to a few
		// per bucket; it only applies to SSE-KMS.
		in.BucketKeyEnabled = aws.Bool(true)
	default:
		return nil, fmt.Errorf("s3sink: unknown encryption %q (want %q or %q)",
			w.t.Encryption, EncryptionSSES3, EncryptionSSEKMS)
	}
	if w.t.ACL != "" && w.t.ACL != ACLNone {
		in.ACL = types.ObjectCannedACL(w.t.ACL)
	}
	if w.t.StorageClass != "" {
		in.StorageClass = types.StorageClass(w.t.StorageClass)
	}
	return in, nil
}

// delete removes key. Delivery never deletes; the connection test removes
// its test object.
func (w *Writer) delete(ctx context.Context, key string) error {
	_, err := w.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(w.t.Bucket),
		Key:    aws.String(key),
	}, w.callOpts...)
	if err != nil {
		return w.fail(ctx, "DeleteObject", err)
	}
	return nil
}

// Key returns name under the target's prefix.
func (w *Writer) Key(name string) string {
	if p := policy.CleanPrefix(w.t.Prefix); p != "" {
		return p + "/" + name
	}
	return name
}
