package s3sink

import (
	"bytes"
	"context"
	"errors"
	"sync"

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
// is still encoding: each full part is sent by a goroutine of its own while
// the caller fills the next one, and the next full part waits for it. So
// the encoder does not stop for each part's round trip, and memory stays at
// two parts whatever the object's size.
//
// The buffer starts small and grows with the data, so that the many small
// objects of quiet destinations (a few KB each) do not each allocate a whole
// part. A buffer that reaches the part size is taken from, and given back
// to, a pool shared by the uploads of that part size.
// The final PutObject or CompleteMultipartUpload carries If-None-Match: *,
// so an object that already landed is never replaced.
type Upload struct {
	ctx      context.Context
	w        *Writer
	key      string
	meta     PutMeta
	partSize int

	buf      []byte
	uploadID *string
	parts    []types.CompletedPart
	// sending, while a part is being sent, gets its result.
	sending chan sentPart
	written int64
	err     error
}

// sentPart is the result of sending one part.
type sentPart struct {
	part types.CompletedPart
	buf  []byte
	err  error
}

// NewUpload starts an upload of key. partSize 0 means DefaultPartSize.
func (w *Writer) NewUpload(ctx context.Context, key string, meta PutMeta, partSize int) *Upload {
	if partSize < MinPartSize {
		partSize = DefaultPartSize
	}
	return &Upload{ctx: ctx, w: w, key: key, meta: meta, partSize: partSize}
}

// minBufSize is an upload's first buffer: a small object of a quiet
// destination fits, and growing from here to a part costs a few copies.
const minBufSize = 16 << 10

// partPools holds one *sync.Pool of part-sized buffers per part size; there
// are few sizes (DefaultPartSize, and larger ones for large max_object_bytes).
var partPools sync.Map

func partPool(size int) *sync.Pool {
	if p, ok := partPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := partPools.LoadOrStore(size, &sync.Pool{})
	return p.(*sync.Pool)
}

// grow makes room for n more bytes, up to the part size. Buffers grow by
// doubling; the step that reaches half a part or more takes a whole part
// from the pool instead.
func (u *Upload) grow(n int) {
	need := len(u.buf) + n
	if need <= cap(u.buf) {
		return
	}
	size := max(minBufSize, 2*cap(u.buf), need)
	var buf []byte
	// After a first part, the object is large: its next buffer is a part.
	if size >= u.partSize/2 || u.uploadID != nil {
		if b, ok := partPool(u.partSize).Get().(*[]byte); ok {
			buf = (*b)[:0]
		} else {
			buf = make([]byte, 0, u.partSize)
		}
	} else {
		buf = make([]byte, 0, size)
	}
	u.buf = append(buf, u.buf...)
}

// release gives a part-sized buffer back to the pool. It is called only once
// the last request that read the buffer has returned successfully; after a
// failed request the buffer is left to the garbage collector, since a
// transport may still be reading a request body after its round trip ends.
func (u *Upload) release() {
	u.recycle(u.buf)
	u.buf = nil
}

func (u *Upload) recycle(buf []byte) {
	if cap(buf) == u.partSize {
		b := buf[:0]
		partPool(u.partSize).Put(&b)
	}
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
		chunk := min(u.partSize-len(u.buf), len(p))
		u.grow(chunk)
		u.buf = append(u.buf, p[:chunk]...)
		p = p[chunk:]
		if len(u.buf) == u.partSize {
			if err := u.startPart(); err != nil {
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
		// The object fits one part: one PutObject, conditional like the
		// multipart completion.
		res, err := u.w.Put(u.ctx, u.key, bytes.NewReader(u.buf), int64(len(u.buf)), u.meta)
		if err != nil {
			u.err = err
			return res, err
		}
		u.release()
		return res, nil
	}
	if len(u.buf) > 0 {
		if err := u.startPart(); err != nil {
			u.err = err
			return PutResult{}, u.failed(err)
		}
	}
	if err := u.waitPart(); err != nil {
		u.err = err
		return PutResult{}, u.failed(err)
	}
	u.release()
	return u.complete()
}

// Abort abandons a multipart upload so its parts are not billed. An abort
// that fails is logged with the upload's key and id, since the caller has
// an error of its own to report; a lifecycle rule for incomplete uploads
// catches what is left.
func (u *Upload) Abort() {
	// A part being sent has a buffer of its own, dropped if it fails.
	_ = u.waitPart()
	if u.err == nil {
		// No request failed while reading the buffer, so none can still
		// be reading it.
		u.release()
	}
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
	// A part still being sent would land after the abort.
	_ = u.waitPart()
	if u.uploadID == nil {
		return nil
	}
	id := u.uploadID
	u.uploadID = nil
	ctx := context.WithoutCancel(u.ctx)
	_, err := u.w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.w.t.Bucket), Key: aws.String(u.key), UploadId: id,
	}, u.w.callOpts...)
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

// startPart sends the full buffer as the next part, in a goroutine of its
// own, once the part before it has been sent; the next write takes a new
// buffer. The first part starts the multipart upload.
func (u *Upload) startPart() error {
	if err := u.waitPart(); err != nil {
		return err
	}
	if u.uploadID == nil {
		if err := u.create(); err != nil {
			return err
		}
	}
	if len(u.parts) >= MaxParts {
		return errors.New("s3sink: object needs more than 10,000 parts: lower max_object_bytes")
	}
	num, buf := int32(len(u.parts)+1), u.buf
	u.buf = nil
	sent := make(chan sentPart, 1)
	u.sending = sent
	go func() {
		part, err := u.sendPart(num, buf)
		sent <- sentPart{part: part, buf: buf, err: err}
	}()
	return nil
}

// waitPart waits for the part being sent, if any, and records it. Its
// buffer goes back to the pool only when it was sent successfully (see
// release).
func (u *Upload) waitPart() error {
	if u.sending == nil {
		return nil
	}
	r := <-u.sending
	u.sending = nil
	if r.err != nil {
		return r.err
	}
	u.parts = append(u.parts, r.part)
	u.recycle(r.buf)
	return nil
}

// sendPart sends buf as part num. It reads only what stays fixed while the
// upload is under way (the Writer, key, upload id and context).
func (u *Upload) sendPart(num int32, buf []byte) (types.CompletedPart, error) {
	out, err := u.w.client.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: aws.String(u.w.t.Bucket), Key: aws.String(u.key), UploadId: u.uploadID,
		PartNumber: aws.Int32(num), Body: bytes.NewReader(buf),
		ContentLength: aws.Int64(int64(len(buf))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}, u.w.callOpts...)
	if err != nil {
		return types.CompletedPart{}, u.w.fail(u.ctx, "UploadPart", err)
	}
	return types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C}, nil
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
	}, u.w.callOpts...)
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
	}, u.w.callOpts...)
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
