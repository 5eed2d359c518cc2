package s3sink

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Get reads key's stored bytes, at most limit of them. Delivery never reads
// data objects; it reads back a digest that a retried PUT found already
// there, to check that it is the one it signed. The delivery role needs
// s3:GetObject for that, which the role policy does not grant: a denied Get
// is an *Error like any other, and the caller decides what it means.
func (w *Writer) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	out, err := w.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(w.t.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, w.fail(ctx, "GetObject", err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, w.fail(ctx, "GetObject", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("s3sink: %s is larger than %d bytes", key, limit)
	}
	return data, nil
}
