package testenv

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// startS3Front starts the proxy behind Moto.S3URL. AWS answers every
// HeadBucket with the bucket's region in x-amz-bucket-region, a 403 (the
// caller may not s3:ListBucket) included, which is how the agent learns a
// bucket's region without s3:GetBucketLocation. Moto sends the header only
// with a 200, and authorises HeadBucket as an action "s3:HeadBucket" that
// IAM does not have, so a role with the generated policy always gets a bare
// 403 there. The front adds the header to such a 403 as AWS does and
// passes everything else through unchanged (the Host header is kept, so
// signatures still verify). It stops when the test ends.
func (m *Moto) startS3Front(t testing.TB) {
	t.Helper()
	upstream, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	var regions sync.Map // bucket → region
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = pr.In.Host
		},
		// Moto answers "Connection: close": no connection reuse.
		Transport: &http.Transport{DisableKeepAlives: true},
		ModifyResponse: func(resp *http.Response) error {
			bucket, isBucket := bucketOnly(resp.Request)
			if resp.Request.Method != http.MethodHead || !isBucket || resp.StatusCode != http.StatusForbidden ||
				resp.Header.Get("X-Amz-Bucket-Region") != "" {
				return nil
			}
			region, ok := regions.Load(bucket)
			if !ok {
				r, err := m.bucketRegion(bucket)
				if err != nil {
					return nil //nolint:nilerr // a bucket that does not exist has no region: pass the 403 on as it is
				}
				region, _ = regions.LoadOrStore(bucket, r)
			}
			resp.Header.Set("X-Amz-Bucket-Region", region.(string))
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	m.S3URL = "http://" + ln.Addr().String()
}

// bucketOnly returns the bucket of a path-style request for the bucket
// itself ("/bucket"), not one of its objects.
func bucketOnly(r *http.Request) (string, bool) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if path == "" || strings.Contains(strings.TrimSuffix(path, "/"), "/") {
		return "", false
	}
	return strings.TrimSuffix(path, "/"), true
}

// bucketRegion asks moto, as the admin, where bucket is.
func (m *Moto) bucketRegion(bucket string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.S3Client().GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return "", err
	}
	if out.LocationConstraint == "" {
		return "us-east-1", nil
	}
	return string(out.LocationConstraint), nil
}
