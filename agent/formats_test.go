package main

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/testenv"
)

// A destination with every object option set, delivered to a real S3
// server: JSON arrays compressed with zstd, an event type filter, an hourly
// key template, SSE-KMS, a storage class, and a CRC32C checksum on each object.
func TestObjectOptions(t *testing.T) {
	w := newWorld(t, "1s")
	extID, manage := w.tenant(t, "acme")
	bucket, role := w.CustomerSetup(t, "acme", extID, "audit")
	kms := "arn:aws:kms:us-east-1:123456789012:key/0f4e6a2c-1111-2222-3333-444455556666"
	dest, err := manage.CreateDestination(ctxT(t), api.DestinationSpec{
		Bucket: bucket, Region: "us-east-1", Prefix: "audit", RoleARN: role,
		Format: "json", Compression: "zstd", EventTypes: []string{"user.login", "role.granted"},
		KeyTemplate: "{yyyy}/{mm}/{dd}/{hh}/{event_type}/{seq_from}-{seq_to}_{part}",
		Encryption:  "sse-kms", KMSKeyARN: kms, StorageClass: "STANDARD_IA",
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := postConcurrently(t, w.ingestClient(t), "acme", 2, 300)
	want := map[string]bool{}
	for id := range sent {
		// postConcurrently cycles user.login, user.logout, role.granted.
		i, err := strconv.Atoi(id[strings.LastIndex(id, "-")+1:])
		if err != nil {
			t.Fatal(err)
		}
		if eventNames[i%len(eventNames)] != "user.logout" {
			want[id] = true
		}
	}

	deadline := time.Now().Add(testenv.HangGuard)
	for {
		d, err := manage.GetDestination(ctxT(t), dest.ID)
		if err == nil && d.Status.Cursor == 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v, %v", d.Status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	got := map[string]int{}
	c := w.Moto.S3Client()
	for _, key := range w.Moto.ListKeys(t, bucket, "audit/") {
		if strings.Contains(key, digest.Folder) {
			continue // a digest, when the test runs across an hour's end
		}
		if !keyTemplateRe.MatchString(key) {
			t.Fatalf("key %q does not follow the template", key)
		}
		obj, err := c.GetObject(ctxT(t), &s3.GetObjectInput{Bucket: &bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		checkObjectHeaders(t, key, obj, kms)
		for _, id := range decodeJSONArray(t, key, data) {
			got[id]++
		}
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want the %d of the filtered types", len(got), len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("%s delivered %d times", id, got[id])
		}
	}
}

var keyTemplateRe = regexp.MustCompile(`^audit/\d{4}/\d{2}/\d{2}/\d{2}/(user\.login|role\.granted)/\d{12}-\d{12}_\d{4}\.json\.zst$`)

func checkObjectHeaders(t *testing.T, key string, obj *s3.GetObjectOutput, kms string) {
	t.Helper()
	switch {
	case aws.ToString(obj.ContentType) != "application/json":
		t.Errorf("%s: Content-Type %q", key, aws.ToString(obj.ContentType))
	case aws.ToString(obj.ContentEncoding) != "zstd":
		t.Errorf("%s: Content-Encoding %q", key, aws.ToString(obj.ContentEncoding))
	case obj.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(obj.SSEKMSKeyId) != kms:
		t.Errorf("%s: SSE %q with key %q", key, obj.ServerSideEncryption, aws.ToString(obj.SSEKMSKeyId))
	case obj.StorageClass != types.StorageClassStandardIa:
		t.Errorf("%s: storage class %q", key, obj.StorageClass)
	case aws.ToString(obj.ChecksumCRC32C) == "":
		t.Errorf("%s: no CRC32C checksum stored", key)
	}
}

func decodeJSONArray(t *testing.T, key string, data []byte) []string {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s is not zstd: %v", key, err)
	}
	var events []struct {
		MessageID string `json:"messageId"`
	}
	if err := json.Unmarshal(plain, &events); err != nil {
		t.Fatalf("%s is not one JSON array: %v", key, err)
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.MessageID
	}
	return ids
}
