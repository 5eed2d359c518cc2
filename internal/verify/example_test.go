package verify_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/verify/verifytest"
)

// The guide's Node.js example checks digests written here, with only
// Node.js's standard library: a good one and its link pass, and each kind
// of damage fails.
func TestNodeExampleVerifiesDigests(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node (Node.js 18 or later) is needed to run examples/verify-digest/verify.mjs: ", err)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "examples", "verify-digest", "verify.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifytest.Build(verifytest.Spec{Bucket: "b", Prefix: "audit", Destination: "d-1",
		Start: time.Date(2025, 1, 31, 10, 0, 0, 0, time.UTC), Objects: []int{1, 0, 2}, RotateAt: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keys := func(name string, ks digest.KeySet) string {
		data, err := json.Marshal(ks)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, data)
	}
	allKeys, firstKey := keys("keys.json", c.Keys), keys("first-key.json", digest.KeySet{Keys: c.Keys.Keys[:1]})
	digests := make([]string, len(c.Encoded))
	for i, enc := range c.Encoded {
		digests[i] = write(filepath.Base(c.DigestKeys[i]), enc.Body)
	}
	// The document line changed (one more event), the signature line kept.
	var plain bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(c.Encoded[2].Body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(plain.String(), `"events":3`, `"events":2`, 1)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(forged))
	_ = zw.Close()
	tampered := write("tampered.json.gz", gz.Bytes())

	tests := []struct {
		name string
		args []string
		ok   bool
		says string
	}{
		{"a digest and its link to the previous one", []string{"--keys", allKeys, "--previous", digests[1], digests[2]}, true, "OK: digest of d-1 for 2025-01-31T12:00:00Z, 2 objects"},
		{"the first digest", []string{"--keys", allKeys, digests[0]}, true, "signed by " + c.Keys.Keys[0].KeyID},
		{"an empty hour", []string{"--keys", allKeys, "--previous", digests[0], digests[1]}, true, "0 objects"},
		{"the document changed", []string{"--keys", allKeys, tampered}, false, "the signature does not match key " + c.Keys.Keys[1].KeyID},
		{"not the previous digest", []string{"--keys", allKeys, "--previous", digests[0], digests[2]}, false, "previous digest's SHA-256"},
		{"signed with an unpublished key", []string{"--keys", firstKey, digests[2]}, false, "not among the published keys"},
		{"the chain's start has no previous", []string{"--keys", allKeys, "--previous", digests[1], digests[0]}, false, "starts a chain (created)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(node, append([]string{script}, tt.args...)...).CombinedOutput()
			var exit *exec.ExitError
			switch {
			case err != nil && !errors.As(err, &exit):
				t.Fatalf("node: %v", err)
			case tt.ok != (err == nil):
				t.Fatalf("node %v: %v, want success %v:\n%s", tt.args, err, tt.ok, out)
			case !strings.Contains(string(out), tt.says):
				t.Errorf("output does not say %q:\n%s", tt.says, out)
			}
		})
	}
}

// docs/guides/digests.md is the generated copy of its template: they stay
// equal until the docs are generated again.
func TestDigestGuideIsItsTemplate(t *testing.T) {
	root := filepath.Join("..", "..")
	tmpl, err := os.ReadFile(filepath.Join(root, "templates", "guides", "digests.md.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "guides", "digests.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tmpl, doc) {
		t.Error("docs/guides/digests.md differs from templates/guides/digests.md.tmpl: edit the template and copy it (or run make generate)")
	}
	for _, f := range []string{"-bucket", "-prefix", "-keys", "-keys-url", "-destination", "-from", "-to", "-region", "-endpoint-url", "-parallel", "-json", "examples/verify-digest/verify.mjs"} {
		if !bytes.Contains(doc, []byte("`"+f)) {
			t.Errorf("the guide does not mention %s", f)
		}
	}
}
