package s3sink

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/auditexport/auditexport/internal/policy"
)

func TestUpload(t *testing.T) {
	e := newEnv(t)
	e.moto.CreateBucket(t, "audit", "us-east-1")
	roleARN := e.role(t, "uploader", policy.RolePolicy("audit", "logs", ""))
	w := e.p.Writer(Target{Bucket: "audit", Region: "us-east-1", Prefix: "logs", RoleARN: roleARN,
		ExternalID: externalID, ACL: ACLBucketOwnerFullControl})
	ctx := context.Background()
	meta := PutMeta{ContentType: "application/x-ndjson", ContentEncoding: "gzip"}

	big := make([]byte, 2*MinPartSize+12345)
	_, _ = rand.Read(big)
	tests := []struct {
		name string
		data []byte
	}{
		{"single put", []byte("small object\n")},
		{"empty", nil},
		{"multipart", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := w.Key(tt.name + ".ndjson.gz")
			write := func(data []byte) PutResult {
				u := w.NewUpload(ctx, key, meta, MinPartSize)
				// Odd-sized writes cross part boundaries.
				for chunk := range chunks(data, 100003) {
					if _, err := u.Write(chunk); err != nil {
						t.Fatal(err)
					}
				}
				res, err := u.Close()
				if err != nil {
					t.Fatal(err)
				}
				if u.Written() != int64(len(data)) {
					t.Fatalf("Written() = %d, want %d", u.Written(), len(data))
				}
				return res
			}
			if res := write(tt.data); res.AlreadyExists {
				t.Fatal("first upload reported AlreadyExists")
			}
			if got := e.moto.GetObject(t, "audit", key); !bytes.Equal(got, tt.data) {
				t.Fatalf("object has %d bytes, want the %d written", len(got), len(tt.data))
			}
			// A retry of the same key never replaces the object.
			if res := write(append([]byte("other "), tt.data...)); !res.AlreadyExists {
				t.Fatal("second upload of the same key did not report AlreadyExists")
			}
			if got := e.moto.GetObject(t, "audit", key); !bytes.Equal(got, tt.data) {
				t.Fatal("the second upload replaced the object")
			}
		})
	}
}

// chunks yields data in chunks of n bytes.
func chunks(data []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(data) > 0 {
			c := min(n, len(data))
			if !yield(data[:c]) {
				return
			}
			data = data[c:]
		}
	}
}
