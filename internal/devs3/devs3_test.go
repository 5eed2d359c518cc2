package devs3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const bucket = "audit-logs"

// startServer runs a server on a free loopback port with bucket created.
func startServer(t *testing.T) *Server {
	t.Helper()
	srv, err := Start(context.Background(), t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := srv.CreateBucket(bucket); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	return srv
}

// newClient is an SDK client set up the way the agent talks to the server.
// s3.New leaves checksums unset, which acts like "when required";
// config.LoadDefaultConfig turns them on, so the tests do too.
func newClient(endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}, optFns...)
}

func putObject(ctx context.Context, c *s3.Client, key string, body []byte, ifNoneMatch bool) error {
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(body),
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := c.PutObject(ctx, in)
	return err
}

func getObject(t *testing.T, c *s3.Client, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

// assertPreconditionFailed checks that err is S3's answer to a conditional
// write whose condition did not hold.
func assertPreconditionFailed(t *testing.T, err error) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("got error %v, want API error PreconditionFailed", err)
	}
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("got error %v, want HTTP 412", err)
	}
}

func TestSDKObjectLifecycle(t *testing.T) {
	srv := startServer(t)
	c := newClient(srv.URL())
	ctx := context.Background()
	key := "audit/login/2024-05-01/acme/1714521600_1-10_0.ndjson.gz"
	body := []byte("{\"messageId\":\"m1\"}\n{\"messageId\":\"m2\"}\n")

	if err := putObject(ctx, c, key, body, true); err != nil {
		t.Fatalf("first conditional PutObject: %v", err)
	}
	assertPreconditionFailed(t, putObject(ctx, c, key, []byte("other"), true))

	if got := getObject(t, c, key); !bytes.Equal(got, body) {
		t.Fatalf("GetObject = %q, want %q", got, body)
	}
	onDisk, err := os.ReadFile(filepath.Join(srv.BucketDir(bucket), filepath.FromSlash(key)))
	if err != nil || !bytes.Equal(onDisk, body) {
		t.Fatalf("object file = %q, %v; want %q", onDisk, err, body)
	}

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
		Prefix: aws.String("audit/login/"),
	})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key ||
		aws.ToInt64(list.Contents[0].Size) != int64(len(body)) {
		t.Fatalf("ListObjectsV2 = %+v, want only %s", list.Contents, key)
	}

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var noKey *types.NoSuchKey
	if !errors.As(err, &noKey) {
		t.Fatalf("GetObject after delete: got %v, want NoSuchKey", err)
	}
	if err := putObject(ctx, c, key, body, true); err != nil {
		t.Fatalf("conditional PutObject after delete: %v", err)
	}
}

func TestHeadBucketRegion(t *testing.T) {
	srv := startServer(t)
	out, err := newClient(srv.URL()).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	if got := aws.ToString(out.BucketRegion); got != Region {
		t.Fatalf("HeadBucket region = %q, want %q", got, Region)
	}

	resp, err := http.Head(srv.URL() + "/" + bucket)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("x-amz-bucket-region"); got != Region {
		t.Fatalf("x-amz-bucket-region = %q, want %q", got, Region)
	}
}

func TestHeadBucketMissing(t *testing.T) {
	srv := startServer(t)
	_, err := newClient(srv.URL()).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("nope")})
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusNotFound {
		t.Fatalf("HeadBucket of a missing bucket: got %v, want HTTP 404", err)
	}
}

// Conditional writes follow S3: If-None-Match: * fails on an existing key,
// a write without it replaces the object.
func TestConditionalPut(t *testing.T) {
	tests := []struct {
		name        string
		existing    bool
		ifNoneMatch bool
		wantErr     bool
		want        string
	}{
		{"new key, conditional", false, true, false, "new"},
		{"new key, unconditional", false, false, false, "new"},
		{"existing key, conditional", true, true, true, "old"},
		{"existing key, unconditional", true, false, false, "new"},
	}
	srv := startServer(t)
	c := newClient(srv.URL())
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "cond/" + string(rune('a'+i))
			if tt.existing {
				if err := putObject(ctx, c, key, []byte("old"), false); err != nil {
					t.Fatal(err)
				}
			}
			err := putObject(ctx, c, key, []byte("new"), tt.ifNoneMatch)
			if tt.wantErr {
				assertPreconditionFailed(t, err)
			} else if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if got := getObject(t, c, key); string(got) != tt.want {
				t.Fatalf("object = %q, want %q", got, tt.want)
			}
		})
	}
}

// Of many concurrent conditional writes of one key exactly one lands.
func TestConditionalPutConcurrent(t *testing.T) {
	srv := startServer(t)
	c := newClient(srv.URL())
	const writers = 16
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = putObject(context.Background(), c, "race", bytes.Repeat([]byte{byte('a' + i)}, 64<<10), true)
		}()
	}
	wg.Wait()

	var winner = -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("writers %d and %d both succeeded", winner, i)
			}
			winner = i
			continue
		}
		assertPreconditionFailed(t, err)
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	want := bytes.Repeat([]byte{byte('a' + winner)}, 64<<10)
	if got := getObject(t, c, "race"); !bytes.Equal(got, want) {
		t.Fatalf("object is not the winner's (%d)", winner)
	}
}

func TestConditionalCompleteMultipartUpload(t *testing.T) {
	srv := startServer(t)
	c := newClient(srv.URL())
	ctx := context.Background()
	key := "multi/object"

	upload := func(body string) error {
		created, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key),
		})
		if err != nil {
			return err
		}
		part, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
			PartNumber: aws.Int32(1), Body: strings.NewReader(body),
		})
		if err != nil {
			return err
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
			IfNoneMatch: aws.String("*"),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
				{PartNumber: aws.Int32(1), ETag: part.ETag},
			}},
		})
		return err
	}

	if err := upload("first"); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	assertPreconditionFailed(t, upload("second"))
	if got := getObject(t, c, key); string(got) != "first" {
		t.Fatalf("object = %q, want %q", got, "first")
	}
}

// The SDK's default request checksums work: over HTTP it sends the checksum
// as a header, over HTTPS as the trailer of an aws-chunked body.
func TestSDKChecksums(t *testing.T) {
	tests := []struct {
		name        string
		tls         bool
		checksum    aws.RequestChecksumCalculation
		wantChunked bool
	}{
		{"http, when supported", false, aws.RequestChecksumCalculationWhenSupported, false},
		{"http, when required", false, aws.RequestChecksumCalculationWhenRequired, false},
		{"https, when supported", true, aws.RequestChecksumCalculationWhenSupported, true},
		{"https, when required", true, aws.RequestChecksumCalculationWhenRequired, false},
	}
	srv := startServer(t)
	// The TLS front shares the server's storage and notes whether the SDK
	// sent an aws-chunked body, so the test knows the decoder was used.
	var sawChunked atomic.Bool
	handler := newHandler(srv.backend, srv.sts)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			sawChunked.Store(true)
		}
		handler.ServeHTTP(w, r)
	}))
	defer tlsSrv.Close()

	body := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several chunks
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, httpClient := srv.URL(), http.DefaultClient
			if tt.tls {
				endpoint, httpClient = tlsSrv.URL, tlsSrv.Client()
			}
			c := newClient(endpoint, func(o *s3.Options) {
				o.HTTPClient = httpClient
				o.RequestChecksumCalculation = tt.checksum
			})
			key := "checksum/" + string(rune('a'+i))
			sawChunked.Store(false)
			if err := putObject(context.Background(), c, key, body, true); err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if got := sawChunked.Load(); got != tt.wantChunked {
				t.Fatalf("aws-chunked body sent: %v, want %v", got, tt.wantChunked)
			}
			if got := getObject(t, c, key); !bytes.Equal(got, body) {
				t.Fatalf("stored %d bytes, want the %d sent", len(got), len(body))
			}
			head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("HeadObject: %v", err)
			}
			if enc := aws.ToString(head.ContentEncoding); strings.Contains(enc, "aws-chunked") {
				t.Fatalf("stored Content-Encoding %q", enc)
			}
		})
	}
}

// A body that cannot be rewound, as the agent's streaming encoder produces,
// needs a trailing checksum (HTTPS) or, over plain HTTP, an unsigned payload
// and no default checksum; the SDK refuses anything else before sending.
// Without a trailing checksum the SDK sends an *io.PipeReader with no
// Content-Length whatever the input says, which S3 rejects, so the body is
// wrapped to hide its type.
func TestSDKStreamingUpload(t *testing.T) {
	srv := startServer(t)
	tlsSrv := httptest.NewTLSServer(newHandler(srv.backend, srv.sts))
	defer tlsSrv.Close()

	tests := []struct {
		name    string
		options func(*s3.Options)
		rawPipe bool
		wantErr bool
	}{
		{
			name: "https, trailing checksum",
			options: func(o *s3.Options) {
				o.BaseEndpoint = aws.String(tlsSrv.URL)
				o.HTTPClient = tlsSrv.Client()
			},
		},
		{
			name: "http, unsigned payload, checksum when required",
			options: func(o *s3.Options) {
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
				o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
			},
		},
		{
			name:    "http, defaults",
			options: func(o *s3.Options) {},
			wantErr: true,
		},
		{
			name: "http, unsigned payload, unwrapped pipe",
			options: func(o *s3.Options) {
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
				o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
			},
			rawPipe: true,
			wantErr: true,
		},
	}
	body := bytes.Repeat([]byte("event\n"), 50000)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(srv.URL(), tt.options)
			key := "stream/" + string(rune('a'+i))
			pr, pw := io.Pipe()
			go func() {
				_, err := pw.Write(body)
				pw.CloseWithError(err)
			}()
			var stream io.Reader = struct{ io.Reader }{pr}
			if tt.rawPipe {
				stream = pr
			}
			_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket:        aws.String(bucket),
				Key:           aws.String(key),
				Body:          stream,
				ContentLength: aws.Int64(int64(len(body))),
				IfNoneMatch:   aws.String("*"),
			})
			pr.Close()
			if tt.wantErr {
				if err == nil {
					t.Fatal("PutObject succeeded, want it refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if got := getObject(t, c, key); !bytes.Equal(got, body) {
				t.Fatalf("stored %d bytes, want the %d sent", len(got), len(body))
			}
		})
	}
}

// A server restarted on the same directory keeps its bucket and objects.
func TestRestartKeepsObjects(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	first, err := Start(ctx, dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	if err := putObject(ctx, newClient(first.URL()), "kept", []byte("data"), true); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := Start(ctx, dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.CreateBucket(bucket); err != nil {
		t.Fatalf("CreateBucket of an existing bucket: %v", err)
	}
	c := newClient(second.URL())
	if got := getObject(t, c, "kept"); string(got) != "data" {
		t.Fatalf("object after restart = %q", got)
	}
	assertPreconditionFailed(t, putObject(ctx, c, "kept", []byte("again"), true))
}

func TestCreateBucketInvalidName(t *testing.T) {
	srv := startServer(t)
	if err := srv.CreateBucket("Not_A_Bucket"); err == nil {
		t.Fatal("CreateBucket accepted an invalid name")
	}
}

func TestTempDirRemovedOnClose(t *testing.T) {
	srv, err := Start(context.Background(), "", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	dir := srv.BucketDir(bucket)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("bucket directory: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bucket directory after Close: %v, want it removed", err)
	}
}

func TestContextCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-srv.done
	if _, err := http.Get(srv.URL()); err == nil {
		t.Fatal("server still answers after its context was cancelled")
	}
}

func TestURLOfWildcardListener(t *testing.T) {
	srv, err := Start(context.Background(), t.TempDir(), "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q, want a loopback address", srv.URL())
	}
}

func TestChunkedBody(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{
			name: "unsigned with trailer",
			in:   "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
			want: "hello world",
		},
		{
			name: "signed",
			in:   "5;chunk-signature=abc\r\nhello\r\n0;chunk-signature=def\r\n\r\n",
			want: "hello",
		},
		{
			name: "ends after last chunk",
			in:   "3\r\nabc\r\n0\r\n",
			want: "abc",
		},
		{
			name: "empty",
			in:   "0\r\n\r\n",
			want: "",
		},
		{name: "bad size", in: "zz\r\nhello\r\n0\r\n\r\n", wantErr: true},
		{name: "short chunk", in: "a\r\nhello", wantErr: true},
		{name: "missing CRLF", in: "5\r\nhelloX0\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &chunkedBody{r: bufioReader(tt.in), body: io.NopCloser(nil)}
			got, err := io.ReadAll(r)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("read %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestWithoutAWSChunked(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"aws-chunked"}, ""},
		{[]string{"aws-chunked,gzip"}, "gzip"},
		{[]string{"gzip", "aws-chunked"}, "gzip"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := withoutAWSChunked(tt.in); got != tt.want {
			t.Errorf("withoutAWSChunked(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestObjectWrite(t *testing.T) {
	tests := []struct {
		method, target string
		want           bool
	}{
		{http.MethodPut, "/b/k/with/slashes", true},
		{http.MethodPost, "/b/k?uploadId=1", true},
		{http.MethodPut, "/b/k?uploadId=1&partNumber=1", false},
		{http.MethodPost, "/b/k?uploads", false},
		{http.MethodPut, "/b", false},
		{http.MethodGet, "/b/k", false},
		{http.MethodDelete, "/b/k", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if _, _, got := objectWrite(r); got != tt.want {
			t.Errorf("%s %s: objectWrite = %v, want %v", tt.method, tt.target, got, tt.want)
		}
	}
}

// Keys are listed in order and the list matches what is on disk.
func TestListMatchesFiles(t *testing.T) {
	srv := startServer(t)
	c := newClient(srv.URL())
	ctx := context.Background()
	keys := []string{"p/2024-05-02/b", "p/2024-05-01/a", "p/2024-05-01/c", "q/x"}
	for _, k := range keys {
		if err := putObject(ctx, c, k, []byte(k), true); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String("p/"), MaxKeys: aws.Int32(2),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	want := []string{"p/2024-05-01/a", "p/2024-05-01/c", "p/2024-05-02/b"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("listed %q, want %q", got, want)
	}

	var files []string
	root := srv.BucketDir(bucket)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	sort.Strings(keys)
	if strings.Join(files, " ") != strings.Join(keys, " ") {
		t.Fatalf("files %q, want %q", files, keys)
	}
}

func bufioReader(s string) *bufio.Reader {
	return bufio.NewReader(strings.NewReader(s))
}
