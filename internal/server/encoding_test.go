package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
)

// Unusual but valid JSON spacing and key order, which must survive.
var ndjson = strings.Join([]string{
	`{"timestamp":1767225600000,"eventName":"login","messageId":"m1","user":"ann"}`,
	`{ "messageId" : "m2", "eventName":"login","timestamp":1767225600001, "ip":"192.0.2.1" }`,
	`{"timestamp":1767225600002,"eventName":"logout","messageId":"m3","n":[1,2.50,3e2]}`,
}, "\n") + "\n"

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// countingReader counts the bytes the server read of a request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (a *testAPI) post(t *testing.T, body io.Reader, contentType, encoding string) (int, api.ErrorResponse) {
	t.Helper()
	req := httptest.NewRequest("POST", "/v1/tenants/a/events", body)
	req.Header.Set("Authorization", "Bearer "+a.toks["ingest"])
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	rec := a.do(t, req, "")
	var er api.ErrorResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &er)
	return rec.Code, er
}

// storedBodies returns tenant a's stored events, in order, one per line.
func (a *testAPI) storedBodies(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	tn, err := a.st.TenantByName(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	head, err := a.st.Head(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := a.st.GroupsBy(ctx, tn.ID, 1, head, nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bySeq := map[int64]string{}
	for _, g := range groups {
		if err := a.st.Scan(ctx, tn.ID, g, func(ev store.StoredEvent) error {
			bySeq[ev.Seq] = string(ev.Body)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	for seq := int64(1); seq <= head; seq++ {
		out.WriteString(bySeq[seq] + "\n")
	}
	return out.String()
}

func TestIngestEncodings(t *testing.T) {
	tests := []struct {
		name, encoding string
		body           []byte
	}{
		{"identity", "", []byte(ndjson)},
		{"identity named", "identity", []byte(ndjson)},
		{"gzip", "gzip", gzipped(t, []byte(ndjson))},
		{"x-gzip", "x-gzip", gzipped(t, []byte(ndjson))},
		{"zstd", "zstd", zstded(t, []byte(ndjson))},
		{"zstd, case and spaces", " ZSTD ", zstded(t, []byte(ndjson))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t, Options{})
			if code, er := a.post(t, bytes.NewReader(tt.body), "application/x-ndjson", tt.encoding); code != 200 {
				t.Fatalf("status %d: %+v", code, er.Error)
			}
			if got := a.storedBodies(t); got != ndjson {
				t.Fatalf("stored events differ from the ones sent:\n got  %q\n want %q", got, ndjson)
			}
		})
	}
}

// bomb is n copies of one compressed member of 16 MiB of zeros: a body of
// a few hundred KiB that decodes to n*16 MiB. Both gzip and zstd decode
// concatenated members as one stream.
func bomb(t *testing.T, compress func(testing.TB, []byte) []byte, n int) []byte {
	t.Helper()
	member := compress(t, make([]byte, 16<<20))
	return bytes.Repeat(member, n)
}

func TestIngestCompressionBomb(t *testing.T) {
	const limit = 2 << 20
	tests := []struct {
		encoding string
		compress func(testing.TB, []byte) []byte
	}{
		{"gzip", gzipped},
		{"zstd", zstded},
	}
	for _, tt := range tests {
		t.Run(tt.encoding, func(t *testing.T) {
			a := newTestAPI(t, Options{MaxRequestBytes: limit})
			body := bomb(t, tt.compress, 64) // 1 GiB decoded
			if len(body) > limit {
				t.Fatalf("the bomb is %d bytes, over the limit itself", len(body))
			}
			cr := &countingReader{r: bytes.NewReader(body)}
			code, er := a.post(t, cr, "application/x-ndjson", tt.encoding)
			if code != 413 || er.Error.Code != "request_too_large" || !strings.Contains(er.Error.Message, "decoded") {
				t.Fatalf("status %d %+v, want 413 request_too_large about the decoded size", code, er.Error)
			}
			// Decoding stopped near the limit: most of the body was never read.
			if read := cr.n.Load(); read > int64(len(body))/4 {
				t.Errorf("the server read %d of the bomb's %d bytes; it should stop once the limit is decoded", read, len(body))
			}
		})
	}
}

func TestIngestUnsupportedMedia(t *testing.T) {
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		status                      int
		message                     []string
	}{
		{"brotli", "application/x-ndjson", "br", []byte("x"), 415, []string{`"br"`, "gzip", "zstd"}},
		{"two codings", "application/x-ndjson", "gzip, zstd", []byte("x"), 415, []string{"more than one coding"}},
		{"csv", "text/csv", "", []byte(ndjson), 415, []string{`"text/csv"`, "application/x-ndjson", "application/json"}},
		{"multipart (curl -F)", "multipart/form-data; boundary=x", "", []byte(ndjson), 415, []string{"multipart/form-data"}},
		{"corrupt gzip", "application/x-ndjson", "gzip", []byte("not gzip"), 400, []string{"gzip"}},
		{"no type", "", "", []byte(ndjson), 200, nil},
		{"curl --data-binary", "application/x-www-form-urlencoded", "", []byte(ndjson), 200, nil},
		{"json with charset", "application/json; charset=utf-8", "", []byte("[" + strings.Join(strings.Split(strings.TrimSpace(ndjson), "\n"), ",") + "]"), 200, nil},
		{"text/plain", "text/plain", "", []byte(ndjson), 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t, Options{})
			code, er := a.post(t, bytes.NewReader(tt.body), tt.contentType, tt.encoding)
			if code != tt.status {
				t.Fatalf("status %d %+v, want %d", code, er.Error, tt.status)
			}
			for _, m := range tt.message {
				if !strings.Contains(er.Error.Message, m) {
					t.Errorf("message %q does not name %s", er.Error.Message, m)
				}
			}
		})
	}
}
