package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/testenv"
	"github.com/auditexport/auditexport/internal/verify"
	"github.com/auditexport/auditexport/internal/verify/verifytest"
)

const (
	prefix = "audit"
	dest   = "d-0001"
)

// readOnlyPolicy is the guide's bucket policy for a verifier: list the
// bucket, read the prefix, nothing else.
// listOnly may list it and nothing else.
func readOnlyPolicy(bucket, principal, listOnly string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":[%[2]q,%[4]q]},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::%[1]s"},
 {"Effect":"Allow","Principal":{"AWS":[%[2]q]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::%[1]s/%[3]s/*"}]}`,
		bucket, principal, prefix, listOnly)
}

// server is a versitygw with a reader that may only list and read.
type server struct {
	gw           *testenv.VersityGW
	root, reader *s3.Client
	readerKey    string
	buckets      atomic.Int32
	// withoutPolicy may not read the buckets; listOnly may list them only.
	withoutPolicy, listOnly *s3.Client
	listOnlyKey             string
}

func startServer(t *testing.T) *server {
	t.Helper()
	gw := testenv.StartVersityGW(t)
	key, secret := gw.CreateUser(t)
	nobodyKey, nobodySecret := gw.CreateUser(t)
	listKey, listSecret := gw.CreateUser(t)
	client := func(key, secret string) *s3.Client {
		// The SDK's own HTTP client, as the command uses: it keeps more
		// idle connections per host than http.DefaultTransport's two.
		return s3.New(s3.Options{Region: gw.Region, Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
			BaseEndpoint: aws.String(gw.URL), UsePathStyle: true})
	}
	return &server{gw: gw, root: client(gw.RootKey, gw.RootSecret), reader: client(key, secret), readerKey: key,
		withoutPolicy: client(nobodyKey, nobodySecret), listOnly: client(listKey, listSecret), listOnlyKey: listKey}
}

// bucket creates a new bucket the reader may read.
func (s *server) bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("verify-%d", s.buckets.Add(1))
	s.gw.CreateBucket(t, name)
	s.gw.PutBucketPolicy(t, name, readOnlyPolicy(name, s.readerKey, s.listOnlyKey))
	return name
}

// standardChain is six hours, two of them empty, the signing key rotated
// at the fourth; its first hour is three hours ago, so that objects written
// now fall inside the hours the digests cover.
func standardChain(t *testing.T, bucket string) *verifytest.Chain {
	t.Helper()
	c, err := verifytest.Build(verifytest.Spec{
		Bucket: bucket, Prefix: prefix, Destination: dest,
		Start:    time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour),
		Objects:  []int{2, 0, 1, 2, 0, 1},
		RotateAt: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func upload(t *testing.T, s *server, c *verifytest.Chain) {
	t.Helper()
	if err := c.Upload(context.Background(), s.root, 8); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, s *server, c *verifytest.Chain, change func(*verify.Options)) *verify.Report {
	t.Helper()
	opts := verify.Options{Client: s.reader, Bucket: c.Spec.Bucket, Prefix: prefix, Keys: c.Keys, Parallel: 4}
	if change != nil {
		change(&opts)
	}
	r, err := verify.Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

func get(t *testing.T, client *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := out.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

func remove(t *testing.T, s *server, bucket, key string) {
	t.Helper()
	if _, err := s.root.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, s *server, bucket, key string, body []byte) {
	t.Helper()
	if err := verifytest.Put(context.Background(), s.root, bucket, key, body, "application/x-ndjson", "gzip"); err != nil {
		t.Fatal(err)
	}
}

// A clean chain, its key rotation included, verifies, and the report counts
// what was checked.
func TestCleanChainVerifies(t *testing.T) {
	s := startServer(t)
	c := standardChain(t, s.bucket(t))
	upload(t, s, c)
	r := run(t, s, c, nil)
	if !r.OK() {
		t.Fatalf("problems in a clean chain: %+v", r.Problems)
	}
	var size int64
	for _, o := range c.Objects {
		size += int64(len(o.Body))
	}
	want := verify.Destination{ID: dest, Digests: 6, Hours: 6, Objects: len(c.Objects),
		FirstHour: c.Docs[0].HourStart, LastHour: c.Docs[5].HourStart,
		KeyIDs: []string{c.Keys.Keys[0].KeyID, c.Keys.Keys[1].KeyID}}
	if len(r.Destinations) != 1 || !equalDestination(r.Destinations[0], want) {
		t.Errorf("destinations = %+v, want [%+v]", r.Destinations, want)
	}
	if r.Digests != 6 || r.Hours != 6 || r.Objects != 6 || r.BytesHashed != size {
		t.Errorf("counts: %d digests, %d hours, %d objects, %d bytes hashed; want 6, 6, 6, %d", r.Digests, r.Hours, r.Objects, r.BytesHashed, size)
	}
	if r.Unlisted.Skipped != "" || r.Unlisted.Checked != len(c.Objects) {
		t.Errorf("not-in-any-digest check: %+v, want all %d objects checked", r.Unlisted, len(c.Objects))
	}
}

func equalDestination(a, b verify.Destination) bool {
	return a.ID == b.ID && a.Digests == b.Digests && a.Hours == b.Hours && a.Objects == b.Objects &&
		a.FirstHour.Equal(b.FirstHour) && a.LastHour.Equal(b.LastHour) && slices.Equal(a.KeyIDs, b.KeyIDs)
}

// want is an expected problem: its kind, its key, and words its message
// must have.
type want struct {
	kind, key string
	words     []string
}

// Every kind of tampering is found and named, and nothing else is
// reported.
func TestTamperingIsNamed(t *testing.T) {
	s := startServer(t)
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// before changes the chain before it is uploaded; after, the bucket.
		before func(t *testing.T, c *verifytest.Chain)
		after  func(t *testing.T, c *verifytest.Chain) []want
		opts   func(*verify.Options, *verifytest.Chain)
	}{{
		name: "one byte of an object changed",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			o := c.Objects[3]
			body := get(t, s.root, c.Spec.Bucket, o.Key)
			body[len(body)/2] ^= 0x01
			put(t, s, c.Spec.Bucket, o.Key, body)
			return []want{{verify.KindObjectModified, o.Key, []string{"modified: SHA-256", "says " + listed(c, o.Key).SHA256, c.DigestKeys[o.Hour]}}}
		},
	}, {
		name: "an object deleted",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			o := c.Objects[0]
			remove(t, s, c.Spec.Bucket, o.Key)
			return []want{{verify.KindObjectMissing, o.Key, []string{"missing, listed by digest " + c.DigestKeys[0]}}}
		},
	}, {
		name: "two consecutive digests deleted",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			remove(t, s, c.Spec.Bucket, c.DigestKeys[1])
			remove(t, s, c.Spec.Bucket, c.DigestKeys[2])
			between := []string{"missing between", c.DigestKeys[0], c.DigestKeys[3]}
			return []want{
				{verify.KindDigestMissing, c.DigestKeys[1], between},
				{verify.KindDigestMissing, c.DigestKeys[2], between},
				// The objects only the deleted digests listed are then in
				// no digest.
				{verify.KindObjectNotInDigest, c.Objects[2].Key, []string{"not in any digest"}},
			}
		},
	}, {
		name: "a digest re-signed with an unpublished key",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			enc, err := digest.Encode(c.Docs[4], otherKey)
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, c.Spec.Bucket, c.DigestKeys[4], enc.Body)
			return []want{
				{verify.KindSignature, c.DigestKeys[4], []string{digest.KeyID(otherKey.Public().(ed25519.PublicKey)), "not among the published keys"}},
				// The next digest's link names the original bytes.
				{verify.KindChain, c.DigestKeys[5], []string{"previous link does not match", c.DigestKeys[4]}},
			}
		},
	}, {
		name: "an object added under the prefix",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			key := prefix + "/user.login/extra.ndjson.gz"
			put(t, s, c.Spec.Bucket, key, c.Objects[0].Body)
			return []want{{verify.KindObjectNotInDigest, key, []string{"object " + key + " not in any digest"}}}
		},
	}, {
		name: "a sequence gap: an object dropped from a digest and the bucket, the chain signed again",
		before: func(t *testing.T, c *verifytest.Chain) {
			d := &c.Docs[3]
			dropped := d.Objects[0]
			d.Objects = d.Objects[1:]
			if err := c.Reencode(3); err != nil {
				t.Fatal(err)
			}
			c.Objects = slices.DeleteFunc(c.Objects, func(o verifytest.Object) bool { return o.Key == dropped.Key })
		},
		after: func(t *testing.T, c *verifytest.Chain) []want {
			d := c.Docs[3]
			gap := fmt.Sprintf("seqs %d..%d", d.FirstSeq, d.Objects[0].FirstSeq-1)
			return []want{{verify.KindSequenceGap, c.DigestKeys[3], []string{"sequence gap", gap, c.DigestKeys[3]}}}
		},
	}, {
		name: "a digest's range overlapping the previous one's",
		before: func(t *testing.T, c *verifytest.Chain) {
			c.Docs[4].FirstSeq-- // hour 4 is empty: it now claims the last seq of hour 3
			if err := c.Reencode(4); err != nil {
				t.Fatal(err)
			}
		},
		after: func(t *testing.T, c *verifytest.Chain) []want {
			n := c.Docs[3].NextSeq - 1
			seqs := fmt.Sprintf("seqs %d..%d", n, n)
			return []want{
				{verify.KindSequenceOverlap, c.DigestKeys[4], []string{"sequence overlap", seqs, c.DigestKeys[3]}},
				// It lists no object for it, either.
				{verify.KindSequenceGap, c.DigestKeys[4], []string{"in none of its objects", seqs}},
			}
		},
	}, {
		name: "an object listed by two digests",
		before: func(t *testing.T, c *verifytest.Chain) {
			c.Docs[2].Objects = append(c.Docs[2].Objects, c.Docs[0].Objects[0])
			if err := c.Reencode(2); err != nil {
				t.Fatal(err)
			}
		},
		after: func(t *testing.T, c *verifytest.Chain) []want {
			o := c.Docs[0].Objects[0]
			return []want{
				{verify.KindObjectListedTwice, o.Key, []string{"more than one digest"}},
				{verify.KindSequenceRange, o.Key, []string{"outside digest " + c.DigestKeys[2]}},
			}
		},
	}, {
		name: "the range: only the hours inside it are checked",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			o := c.Objects[len(c.Objects)-1] // hour 5, outside the range
			put(t, s, c.Spec.Bucket, o.Key, []byte("changed"))
			return nil
		},
		// Hours 0 and 1: the objects, all written now, are last modified
		// after the range, so none is required in its digests.
		opts: rangeOf(0, 2),
	}, {
		name: "the range: its digests deleted",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			remove(t, s, c.Spec.Bucket, c.DigestKeys[1])
			remove(t, s, c.Spec.Bucket, c.DigestKeys[2])
			// Hour 1 is before the range; hour 2 is all of it, and the
			// next digest shows the chain went on.
			return []want{{verify.KindDigestMissing, c.DigestKeys[2], []string{"missing between the start of the range", c.DigestKeys[3]}}}
		},
		opts: rangeOf(2, 3),
	}, {
		name: "the range: a digest deleted inside it",
		after: func(t *testing.T, c *verifytest.Chain) []want {
			remove(t, s, c.Spec.Bucket, c.DigestKeys[1])
			return []want{{verify.KindDigestMissing, c.DigestKeys[1], []string{"missing between", c.DigestKeys[0], c.DigestKeys[2]}}}
		},
		opts: rangeOf(1, 2),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := standardChain(t, s.bucket(t))
			if tt.before != nil {
				tt.before(t, c)
			}
			upload(t, s, c)
			wants := tt.after(t, c)
			r := run(t, s, c, func(o *verify.Options) {
				if tt.opts != nil {
					tt.opts(o, c)
				}
			})
			checkProblems(t, r.Problems, wants)
		})
	}
}

// rangeOf limits a run to the standard chain's hours [from, to).
func rangeOf(from, to int) func(*verify.Options, *verifytest.Chain) {
	return func(o *verify.Options, c *verifytest.Chain) {
		o.From, o.To = c.Spec.Start.Add(time.Duration(from)*time.Hour), c.Spec.Start.Add(time.Duration(to)*time.Hour)
	}
}

// listed is the digest's entry for key.
func listed(c *verifytest.Chain, key string) digest.Object {
	for _, d := range c.Docs {
		for _, o := range d.Objects {
			if o.Key == key {
				return o
			}
		}
	}
	panic("not listed: " + key)
}

// checkProblems fails unless problems are exactly wants.
func checkProblems(t *testing.T, problems []verify.Problem, wants []want) {
	t.Helper()
	matched := make([]bool, len(problems))
	for _, w := range wants {
		found := false
		for i, p := range problems {
			if matched[i] || p.Kind != w.kind || p.Key != w.key {
				continue
			}
			for _, word := range w.words {
				if !strings.Contains(p.Message, word) {
					t.Errorf("%s problem on %s: message %q does not say %q", w.kind, w.key, p.Message, word)
				}
			}
			matched[i], found = true, true
			break
		}
		if !found {
			t.Errorf("no %s problem on %s; got:\n%s", w.kind, w.key, list(problems))
		}
	}
	for i, p := range problems {
		if !matched[i] {
			t.Errorf("unexpected problem %s on %s: %s", p.Kind, p.Key, p.Message)
		}
	}
}

func list(problems []verify.Problem) string {
	var b strings.Builder
	for _, p := range problems {
		fmt.Fprintf(&b, "  %s %s: %s\n", p.Kind, p.Key, p.Message)
	}
	return b.String()
}

// Every destination under the prefix is checked; with -destination only
// one is, and the not-in-any-digest check, which needs them all, is
// skipped with the reason.
func TestDestinationsSharingAPrefix(t *testing.T) {
	s := startServer(t)
	bucket := s.bucket(t)
	var keys digest.KeySet
	var chains []*verifytest.Chain
	for _, id := range []string{"d-0001", "d-0002"} {
		c, err := verifytest.Build(verifytest.Spec{Bucket: bucket, Prefix: prefix, Destination: id,
			Start: time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour), Objects: []int{1, 2, 0, 1, 1, 0}})
		if err != nil {
			t.Fatal(err)
		}
		upload(t, s, c)
		keys.Keys = append(keys.Keys, c.Keys.Keys...)
		chains = append(chains, c)
	}
	all := run(t, s, chains[0], func(o *verify.Options) { o.Keys = keys })
	if !all.OK() || len(all.Destinations) != 2 || all.Digests != 12 || all.Unlisted.Checked != 10 {
		t.Errorf("all destinations: %d destinations, %d digests, %d objects checked for a digest, problems:\n%s; want 2, 12, 10 and none",
			len(all.Destinations), all.Digests, all.Unlisted.Checked, list(all.Problems))
	}
	one := run(t, s, chains[0], func(o *verify.Options) { o.Keys, o.DestinationID = keys, "d-0001" })
	if !one.OK() || len(one.Destinations) != 1 || one.Digests != 6 || !strings.Contains(one.Unlisted.Skipped, "d-0002") {
		t.Errorf("-destination d-0001: %d destinations, %d digests, not-in-any-digest check %+v, problems:\n%s; want 1, 6, skipped naming d-0002",
			len(one.Destinations), one.Digests, one.Unlisted, list(one.Problems))
	}
}

// Without the read permissions the check stops with an error that names
// them, rather than reporting problems.
func TestDeniedAccessNamesThePermissions(t *testing.T) {
	s := startServer(t)
	c := standardChain(t, s.bucket(t))
	upload(t, s, c)
	tests := []struct {
		name   string
		client *s3.Client
		op     string
	}{
		{"no policy for the user", s.withoutPolicy, "ListObjectsV2"},
		{"s3:ListBucket only", s.listOnly, "GetObject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify.Run(context.Background(), verify.Options{Client: tt.client, Bucket: c.Spec.Bucket, Prefix: prefix, Keys: c.Keys})
			var re *verify.RequestError
			if !errors.As(err, &re) || !re.Denied() || re.Op != tt.op {
				t.Fatalf("err = %v, want a denied %s", err, tt.op)
			}
			for _, w := range []string{"s3:ListBucket on arn:aws:s3:::" + c.Spec.Bucket, "s3:GetObject on arn:aws:s3:::" + c.Spec.Bucket + "/" + prefix + "/*"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// An empty prefix, or the wrong one, is a problem: nothing was proven.
func TestNoDigestsIsAProblem(t *testing.T) {
	s := startServer(t)
	c := standardChain(t, s.bucket(t))
	upload(t, s, c)
	r := run(t, s, c, func(o *verify.Options) { o.Prefix = prefix + "/user.login" })
	checkProblems(t, r.Problems, []want{{verify.KindNoDigests, prefix + "/user.login/_auditexport/digests/", []string{"-prefix"}}})
}

// A scale figure, not a budget: 30 days of hourly digests with 10 objects
// each, verified against the loopback gateway. The time is logged. It
// uploads 7,920 objects first, so it runs only when asked for, with
// AUDITEXPORT_VERIFY_SCALE=1.
func TestThirtyDaysOfDigests(t *testing.T) {
	if os.Getenv("AUDITEXPORT_VERIFY_SCALE") == "" {
		t.Skip("a scale figure: set AUDITEXPORT_VERIFY_SCALE=1 to run it")
	}
	s := startServer(t)
	hours := make([]int, 30*24)
	for i := range hours {
		hours[i] = 10
	}
	c, err := verifytest.Build(verifytest.Spec{
		Bucket: s.bucket(t), Prefix: prefix, Destination: dest,
		Start:   time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(len(hours)-2) * time.Hour),
		Objects: hours, RotateAt: len(hours) / 2, EventsPerObject: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	upload(t, s, c)
	t.Logf("uploaded %d digests and %d objects in %s", len(c.Encoded), len(c.Objects), time.Since(began).Round(time.Millisecond))
	for _, parallel := range []int{1, verify.DefaultParallel} {
		began, cpu := time.Now(), cpuTime()
		r := run(t, s, c, func(o *verify.Options) { o.Parallel = parallel })
		took, cpu := time.Since(began), cpuTime()-cpu
		if !r.OK() || r.Digests != len(hours) || r.Objects != len(c.Objects) || r.Unlisted.Checked != len(c.Objects) {
			t.Fatalf("%d digests, %d objects, %d checked for a digest, problems:\n%s", r.Digests, r.Objects, r.Unlisted.Checked, list(r.Problems))
		}
		t.Logf("-parallel %d: verified %d digests, %d objects (%d bytes hashed) in %s (%s of the verifier's CPU): %.0f digests/s",
			parallel, r.Digests, r.Objects, r.BytesHashed, took.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(r.Digests)/took.Seconds())
	}
}
