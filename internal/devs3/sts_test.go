package devs3

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/auditexport/auditexport/internal/clock"
	"github.com/auditexport/auditexport/internal/clock/clocktest"
)

const (
	testRole       = "arn:aws:iam::000000000000:role/delivery"
	testExternalID = "aex-right"
)

// startSTSServer runs a server with bucket created, testRole trusting
// testExternalID and session expiry measured on c.
func startSTSServer(t *testing.T, c clock.Clock) *Server {
	t.Helper()
	srv, err := start(context.Background(), t.TempDir(), "127.0.0.1:0", c)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddRole(testRole, testExternalID); err != nil {
		t.Fatalf("AddRole: %v", err)
	}
	return srv
}

// newSTSClient is an STS client set up the way the agent's principal is.
func newSTSClient(endpoint string) *sts.Client {
	return sts.New(sts.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIADEVEXAMPLE000000", "secret", ""),
	})
}

func assumeRole(ctx context.Context, c *sts.Client, role, externalID string) (*sts.AssumeRoleOutput, error) {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("auditexport")}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	return c.AssumeRole(ctx, in)
}

// assertAPIError checks that err is an AWS error with code and HTTP status.
func assertAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != status {
		t.Fatalf("got error %v, want HTTP %d", err, status)
	}
}

// AssumeRole succeeds only for a known role with its external id; every
// other call is refused as AWS refuses it.
func TestAssumeRole(t *testing.T) {
	tests := []struct {
		name       string
		role       string
		externalID string
		wantCode   string
		wantStatus int
	}{
		{name: "right external id", role: testRole, externalID: testExternalID},
		{name: "wrong external id", role: testRole, externalID: "aex-wrong", wantCode: "AccessDenied", wantStatus: http.StatusForbidden},
		{name: "missing external id", role: testRole, wantCode: "AccessDenied", wantStatus: http.StatusForbidden},
		{name: "unknown role", role: "arn:aws:iam::000000000000:role/other", externalID: testExternalID, wantCode: "AccessDenied", wantStatus: http.StatusForbidden},
		{name: "malformed role ARN", role: "delivery", externalID: testExternalID, wantCode: "ValidationError", wantStatus: http.StatusBadRequest},
	}
	srv := startSTSServer(t, clock.Real{})
	c := newSTSClient(srv.URL())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := assumeRole(context.Background(), c, tt.role, tt.externalID)
			if tt.wantCode != "" {
				assertAPIError(t, err, tt.wantCode, tt.wantStatus)
				return
			}
			if err != nil {
				t.Fatalf("AssumeRole: %v", err)
			}
			creds := out.Credentials
			if !strings.HasPrefix(aws.ToString(creds.AccessKeyId), "ASIA") ||
				aws.ToString(creds.SecretAccessKey) == "" || aws.ToString(creds.SessionToken) == "" {
				t.Fatalf("credentials %+v, want a temporary key, secret and token", creds)
			}
			if left := time.Until(aws.ToTime(creds.Expiration)); left < 55*time.Minute || left > 61*time.Minute {
				t.Fatalf("credentials expire in %s, want the default hour", left)
			}
			want := "arn:aws:sts::000000000000:assumed-role/delivery/auditexport"
			if got := aws.ToString(out.AssumedRoleUser.Arn); got != want {
				t.Fatalf("assumed role ARN = %q, want %q", got, want)
			}
		})
	}
}

// The access denied message names the role, as the agent's error shows it.
func TestAssumeRoleDeniedMessage(t *testing.T) {
	srv := startSTSServer(t, clock.Real{})
	_, err := assumeRole(context.Background(), newSTSClient(srv.URL()), testRole, "aex-wrong")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v, want an API error", err)
	}
	want := "The caller with access key AKIADEVEXAMPLE000000 is not authorized to perform: sts:AssumeRole on resource: " + testRole
	if apiErr.ErrorMessage() != want {
		t.Fatalf("message = %q, want %q", apiErr.ErrorMessage(), want)
	}
}

func TestAssumeRoleValidation(t *testing.T) {
	tests := []struct {
		name   string
		form   url.Values
		code   string
		inText string
	}{
		{"no role", url.Values{"RoleSessionName": {"s1"}}, "ValidationError", "'roleArn'"},
		{"no session name", url.Values{"RoleArn": {testRole}}, "ValidationError", "'roleSessionName'"},
		{"bad session name", url.Values{"RoleArn": {testRole}, "RoleSessionName": {"a b"}}, "ValidationError", "'roleSessionName'"},
		{"duration too short", url.Values{"RoleArn": {testRole}, "RoleSessionName": {"s1"}, "DurationSeconds": {"60"}}, "ValidationError", "DurationSeconds"},
		{"duration not a number", url.Values{"RoleArn": {testRole}, "RoleSessionName": {"s1"}, "DurationSeconds": {"x"}}, "ValidationError", "DurationSeconds"},
		{"other action", url.Values{"Action": {"GetFederationToken"}}, "InvalidAction", "GetFederationToken"},
	}
	srv := startSTSServer(t, clock.Real{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := tt.form
			if !form.Has("Action") {
				form.Set("Action", "AssumeRole")
			}
			form.Set("Version", "2011-06-15")
			resp, err := http.PostForm(srv.URL()+"/", form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e stsErrorResponse
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("HTTP %d %s: not an STS error: %v", resp.StatusCode, body, err)
			}
			if resp.StatusCode != http.StatusBadRequest || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.inText) {
				t.Fatalf("HTTP %d %s, want 400 %s mentioning %s", resp.StatusCode, body, tt.code, tt.inText)
			}
		})
	}
}

// The credentials AssumeRole hands out work for S3, through the SDK's
// AssumeRole provider as the agent uses it; a session token the server did
// not issue is refused, and so is one that has expired.
func TestAssumedCredentialsOnS3(t *testing.T) {
	fake := clocktest.NewFake(time.Now())
	srv := startSTSServer(t, fake)
	ctx := context.Background()

	provider := stscreds.NewAssumeRoleProvider(newSTSClient(srv.URL()), testRole, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "auditexport"
		o.ExternalID = aws.String(testExternalID)
	})
	assumed := newClient(srv.URL(), func(o *s3.Options) { o.Credentials = aws.NewCredentialsCache(provider) })
	if err := putObject(ctx, assumed, "assumed/a", []byte("a"), true); err != nil {
		t.Fatalf("PutObject with assumed credentials: %v", err)
	}
	if got := getObject(t, assumed, "assumed/a"); string(got) != "a" {
		t.Fatalf("object = %q", got)
	}

	creds, err := provider.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		key, token     string
		advance        time.Duration
		wantCode       string
		wantHTTPStatus int
	}{
		{name: "issued session", key: creds.AccessKeyID, token: creds.SessionToken},
		{name: "forged token", key: creds.AccessKeyID, token: "forged", wantCode: "InvalidToken", wantHTTPStatus: http.StatusBadRequest},
		{name: "unknown key", key: "ASIAUNKNOWN000000000", token: creds.SessionToken, wantCode: "InvalidToken", wantHTTPStatus: http.StatusBadRequest},
		{name: "expired session", key: creds.AccessKeyID, token: creds.SessionToken, advance: 2 * time.Hour, wantCode: "ExpiredToken", wantHTTPStatus: http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.Advance(tt.advance)
			c := newClient(srv.URL(), func(o *s3.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider(tt.key, creds.SecretAccessKey, tt.token)
				o.RetryMaxAttempts = 1
			})
			err := putObject(ctx, c, "session/"+string(rune('a'+i)), []byte("x"), true)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("PutObject: %v", err)
				}
				return
			}
			assertAPIError(t, err, tt.wantCode, tt.wantHTTPStatus)
		})
	}
}

func TestAddRoleInvalid(t *testing.T) {
	srv := startSTSServer(t, clock.Real{})
	tests := []struct{ role, externalID string }{
		{"role/delivery", "aex-1"},
		{"arn:aws:iam::123:role/delivery", "aex-1"},
		{"arn:aws:iam::000000000000:user/delivery", "aex-1"},
		{testRole, ""},
	}
	for _, tt := range tests {
		if err := srv.AddRole(tt.role, tt.externalID); err == nil {
			t.Errorf("AddRole(%q, %q) accepted", tt.role, tt.externalID)
		}
	}
}

// Adding a role again replaces the external id it trusts.
func TestAddRoleReplaces(t *testing.T) {
	srv := startSTSServer(t, clock.Real{})
	if err := srv.AddRole(testRole, "aex-new"); err != nil {
		t.Fatal(err)
	}
	c := newSTSClient(srv.URL())
	assertAPIError(t, func() error { _, err := assumeRole(context.Background(), c, testRole, testExternalID); return err }(),
		"AccessDenied", http.StatusForbidden)
	if _, err := assumeRole(context.Background(), c, testRole, "aex-new"); err != nil {
		t.Fatalf("AssumeRole with the new external id: %v", err)
	}
}

func TestIsSTSRequest(t *testing.T) {
	tests := []struct {
		method, target, contentType string
		want                        bool
	}{
		{http.MethodPost, "/", "application/x-www-form-urlencoded", true},
		{http.MethodPost, "/", "application/x-www-form-urlencoded; charset=utf-8", true},
		{http.MethodGet, "/?Action=AssumeRole&RoleArn=x", "", true},
		{http.MethodGet, "/", "", false}, // ListBuckets
		{http.MethodPost, "/bucket?delete", "application/xml", false},
		{http.MethodPost, "/bucket", "application/x-www-form-urlencoded", false}, // a browser form upload
		{http.MethodPut, "/bucket/key", "application/x-www-form-urlencoded", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		if got := isSTSRequest(r); got != tt.want {
			t.Errorf("%s %s (%s): isSTSRequest = %v, want %v", tt.method, tt.target, tt.contentType, got, tt.want)
		}
	}
}
