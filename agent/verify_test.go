package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/testenv"
	"github.com/auditexport/auditexport/internal/verify"
	"github.com/auditexport/auditexport/internal/verify/verifytest"
)

// The verify command, as a customer runs it with read-only credentials
// from the environment, against a fabricated chain on versitygw: a clean
// chain exits 0, a changed object 1 with the object named, denied access
// and bad flags 2 with what to fix.
func TestVerifyCommand(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	readerKey, readerSecret := gw.CreateUser(t)
	nobodyKey, nobodySecret := gw.CreateUser(t)
	root := gw.S3Client(gw.RootKey, gw.RootSecret)
	dir := t.TempDir()

	// Two buckets with the same kind of chain: one left alone, one with a
	// changed object.
	chains := map[string]*verifytest.Chain{}
	for _, bucket := range []string{"clean", "changed"} {
		gw.CreateBucket(t, bucket)
		gw.PutBucketPolicy(t, bucket, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":[%[2]q]},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::%[1]s"},
 {"Effect":"Allow","Principal":{"AWS":[%[2]q]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::%[1]s/audit/*"}]}`, bucket, readerKey))
		c, err := verifytest.Build(verifytest.Spec{Bucket: bucket, Prefix: "audit", Destination: "d-1",
			Start: time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour), Objects: []int{1, 0, 2, 1}, RotateAt: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Upload(context.Background(), root, 4); err != nil {
			t.Fatal(err)
		}
		chains[bucket] = c
	}
	changed := chains["changed"].Objects[1]
	if err := verifytest.Put(context.Background(), root, "changed", changed.Key, append(changed.Body, 0), "application/x-ndjson", "gzip"); err != nil {
		t.Fatal(err)
	}
	// Both chains' keys: one file serves both buckets.
	keys := chains["clean"].Keys
	keys.Keys = append(keys.Keys, chains["changed"].Keys.Keys...)
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, "signing-keys.json")
	if err := os.WriteFile(keysFile, keysJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	keysServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/signing-keys" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(keysJSON)
	}))
	t.Cleanup(keysServer.Close)

	// Nothing of the machine's AWS setup applies: the credentials are the
	// environment's, as the SDK's default chain finds them.
	credsEnv := func(key, secret string) []string {
		return append(withoutEnv(os.Environ(), "AWS_*", config.EnvConfig),
			"HOME="+dir, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"), "AWS_CONFIG_FILE="+filepath.Join(dir, "none"),
			"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret)
	}
	reader, nobody := credsEnv(readerKey, readerSecret), credsEnv(nobodyKey, nobodySecret)
	common := []string{"-prefix", "audit", "-endpoint-url", gw.URL, "-region", gw.Region}
	args := func(bucket string, more ...string) []string {
		return append(append([]string{"verify", "-bucket", bucket}, common...), more...)
	}
	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout []string // in stdout
		stderr []string // in stderr
		json   func(t *testing.T, r verify.Report)
	}{{
		name: "clean",
		env:  reader, args: args("clean", "-keys", keysFile),
		stdout: []string{"Checked s3://clean/audit/ against the digests in audit/_auditexport/digests/, all hours", "destination d-1: 4 digests over 4 hours", chains["clean"].Keys.Keys[0].KeyID + ", " + chains["clean"].Keys.Keys[1].KeyID, "OK: 1 destination, 4 digests"},
	}, {
		name: "clean, keys from the agent's URL, -json",
		env:  reader, args: args("clean", "-keys-url", keysServer.URL+"/v1/signing-keys", "-json", "-parallel", "2"),
		json: func(t *testing.T, r verify.Report) {
			if r.Digests != 4 || r.Objects != 4 || len(r.Problems) != 0 || len(r.Destinations) != 1 {
				t.Errorf("report %+v, want 4 digests, 4 objects, 1 destination, no problems", r)
			}
		},
	}, {
		name: "a changed object",
		env:  reader, args: args("changed", "-keys", keysFile),
		code:   1,
		stdout: []string{"PROBLEM object_modified " + changed.Key, "object " + changed.Key + " modified: SHA-256", "FAILED:", "; 1 problem\n"},
		stderr: []string{"1 problem found"},
	}, {
		name: "a changed object, -json",
		env:  reader, args: args("changed", "-keys", keysFile, "-json", "-from", time.Now().UTC().Add(-4*time.Hour).Format(time.DateOnly)),
		code: 1,
		json: func(t *testing.T, r verify.Report) {
			if len(r.Problems) != 1 || r.Problems[0].Kind != verify.KindObjectModified || r.Problems[0].Key != changed.Key {
				t.Errorf("problems %+v, want one object_modified on %s", r.Problems, changed.Key)
			}
		},
	}, {
		name: "access denied",
		env:  nobody, args: args("clean", "-keys", keysFile),
		code:   2,
		stderr: []string{"AccessDenied", "s3:ListBucket on arn:aws:s3:::clean", "s3:GetObject on arn:aws:s3:::clean/audit/*"},
	}, {
		name: "no keys",
		env:  reader, args: args("clean"),
		code:   2,
		stderr: []string{"-keys FILE or -keys-url URL is required", "Usage:", "-endpoint-url"},
	}, {
		name: "a bad -to",
		env:  reader, args: args("clean", "-keys", keysFile, "-to", "yesterday"),
		code:   2,
		stderr: []string{`-to "yesterday": want RFC 3339`},
	}, {
		name: "keys that are not a key set",
		env:  reader, args: args("clean", "-keys", filepath.Join(dir, "none")),
		code:   2,
		stderr: []string{"-keys:", "none"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runAgent(t, dir, tt.env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not say %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if tt.json != nil {
				var r verify.Report
				if err := json.Unmarshal([]byte(stdout), &r); err != nil {
					t.Fatalf("-json output does not parse: %v\n%s", err, stdout)
				}
				tt.json(t, r)
			}
		})
	}
}
