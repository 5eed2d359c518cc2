package s3sink

import (
	"bytes"
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Part sizes of multipart uploads. S3 needs every part but the last to be at
// least 5 MiB and allows 10,000 parts.
const (
	MinPartSize     = 5 << 20
	DefaultPartSize = 8 << 20
	MaxParts        = 10000
)

// Upload streams one object into the bucket. Writes are buffered up to the
// part size: an object that fits in one buffer goes out as one PutObject,
// a larger one as a multipart upload whose parts are sent while the caller
// is still encoding. Memory stays at one part whatever the object's size.
// The final PutObject or CompleteMultipartUpload carries If-None-Match: *,
// so an object that already landed is never replaced.
type Upload struct {
	ctx      context.Context
	w        *Writer
	key      string
	meta     PutMeta
	partSize int

	buf      bytes.Buffer
	uploadID *string
	parts    []types.CompletedPart
	written  int64
	err      error
}

// NewUpload starts an upload of key. partSize 0 means DefaultPartSize.
func (w *Writer) NewUpload(ctx context.Context, key string, meta PutMeta, partSize int) *Upload {
	if partSize < MinPartSize {
		partSize = DefaultPartSize
	}
	u := &Upload{ctx: ctx, w: w, key: key, meta: meta, partSize: partSize}
	u.buf.Grow(partSize)
	return u
}

// Written is the number of bytes written so far: the object's size once closed.
func (u *Upload) Written() int64 { return u.written }

// Write buffers p and sends full parts.
func (u *Upload) Write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	n := len(p)
	for len(p) > 0 {
		room := u.partSize - u.buf.Len()
		chunk := min(room, len(p))
		u.buf.Write(p[:chunk])
		p = p[chunk:]
		if u.buf.Len() == u.partSize {
			if err := u.sendPart(); err != nil {
				u.err = err
				return n - len(p), err
			}
		}
	}
	u.written += int64(n)
	return n, nil
}

// Close sends what is buffered and completes the object.
func (u *Upload) Close() (PutResult, error) {
	if u.err != nil {
		return PutResult{}, u.failed(u.err)
	}
	if u.uploadID == nil {
		return u.w.Put(u.ctx, u.key, bytes.NewReader(u.buf.Bytes()), int64(u.buf.Len()), u.meta)
	}
	if u.buf.Len() > 0 {
		if err := u.sendPart(); err != nil {
			return PutResult{}, u.failed(err)
		}
	}
	return u.complete()
}

// Abort abandons a multipart upload so its parts are not billed. An abort
// that fails is logged with the upload's key and id, since the caller has
// an error of its own to report; a lifecycle rule for incomplete uploads
// catches what is left.
func (u *Upload) Abort() {
	_ = u.abort()
}

// failed aborts the upload after err and returns err, joined with the
// abort's failure if the upload is left behind: the caller reports both.
func (u *Upload) failed(err error) error {
	if abortErr := u.abort(); abortErr != nil {
		return &AbandonedError{Err: err, Abort: abortErr}
	}
	return err
}

// abort aborts the multipart upload, if one was started. A failure is
// logged and returned as an *Error naming AbortMultipartUpload.
func (u *Upload) abort() error {
	if u.uploadID == nil {
		return nil
	}
	id := u.uploadID
	u.uploadID = nil
	ctx := context.WithoutCancel(u.ctx)
	_, err := u.w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.w.t.Bucket), Key: aws.String(u.key), UploadId: id,
	})
	if err == nil {
		return nil
	}
	e := u.w.fail(ctx, "AbortMultipartUpload", err)
	u.w.log.Warn("multipart upload left behind: abort failed", "key", u.key, "upload_id", aws.ToString(id), "error", e)
	return e
}

// AbandonedError is a failed upload whose multipart upload could not be
// aborted either: its parts stay in the bucket until a lifecycle rule for
// incomplete uploads removes them.
type AbandonedError struct {
	// Err is why the upload failed.
	Err error
	// Abort is why the abort failed, an *Error.
	Abort error
}

func (e *AbandonedError) Error() string {
	return e.Err.Error() + "; the incomplete multipart upload is left behind: " + e.Abort.Error()
}

// Unwrap returns the upload's failure, so that errors.As finds its *Error.
func (e *AbandonedError) Unwrap() error { return e.Err }

func (u *Upload) sendPart() error {
	if u.uploadID == nil {
		if err := u.create(); err != nil {
			return err
		}
	}
	if len(u.parts) >= MaxParts {
		return errors.New("s3sink: object needs more than 10,000 parts: lower max_object_bytes")
	}
	num := int32(len(u.parts) + 1)
	out, err := u.w.client.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: aws.String(u.w.t.Bucket), Key: aws.String(u.key), UploadId: u.uploadID,
		PartNumber: aws.Int32(num), Body: bytes.NewReader(u.buf.Bytes()),
		ContentLength: aws.Int64(int64(u.buf.Len())), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return u.w.fail(u.ctx, "UploadPart", err)
	}
	u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C})
	u.buf.Reset()
	return nil
}

func (u *Upload) create() error {
	put, err := u.w.putInput(u.key, nil, -1, u.meta)
	if err != nil {
		return err
	}
	out, err := u.w.client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
		Bucket: put.Bucket, Key: put.Key, ContentType: put.ContentType, ContentEncoding: put.ContentEncoding,
		ServerSideEncryption: put.ServerSideEncryption, SSEKMSKeyId: put.SSEKMSKeyId,
		BucketKeyEnabled: put.BucketKeyEnabled, ACL: put.ACL, StorageClass: put.StorageClass,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return u.w.fail(u.ctx, "CreateMultipartUpload", err)
	}
	u.uploadID = out.UploadId
	return nil
}

func (u *Upload) complete() (PutResult, error) {
	_, err := u.w.client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.w.t.Bucket), Key: aws.String(u.key), UploadId: u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err == nil {
		u.uploadID = nil
		return PutResult{}, nil
	}
	if preconditionFailed(err) {
		// The object landed in an earlier attempt; this upload is redundant.
		// A failed abort is logged; the object itself is there.
		u.Abort()
		return PutResult{AlreadyExists: true}, nil
	}
	e := u.w.fail(u.ctx, "CompleteMultipartUpload", err)
	if conflict(err) {
		// 409: a concurrent write of the same key; the caller retries.
		e.Retryable = true
	}
	return PutResult{}, u.failed(e)
}

func conflict(err error) bool { return httpStatus(err) == 409 }
