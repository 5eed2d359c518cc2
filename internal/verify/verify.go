// Package verify checks a bucket prefix against the signed hourly digests the
// agent wrote there: every digest's signature and chain link, that no hour's
// digest is missing, that every listed object is present and unchanged, that
// nothing under the prefix escaped the digests, and that the sequence ranges
// join without a gap or an overlap. It needs only read access to the bucket.
//
// Memory does not grow with the length of the chain: one destination's
// digests are read in key order (hour order) with a small read-ahead, and of
// the digests already checked only the previous one is kept. What grows with
// the number of objects is the set of listed keys, kept as 8-byte hashes.
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/digest"
)

const (
	// DefaultParallel is how many objects are hashed at once.
	DefaultParallel = 8
	// DefaultTolerance is how close to the ends of the checked window an
	// object's LastModified may be and still not be required in a digest.
	// LastModified is when the upload started (for a multipart upload) or
	// ended, by the server's clock; the agent commits the object after
	// that, by its own clock, so an object uploaded just before an hour
	// ends may be listed by the next hour's digest.
	DefaultTolerance = 15 * time.Minute
)

// S3 is the part of the S3 API that verify calls: only reads.
type S3 interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Options say what to verify.
type Options struct {
	Client S3
	Bucket string
	// Prefix is the destinations' prefix, as in their configuration
	// ("audit" or "audit/"; "" for the whole bucket).
	Prefix string
	// DestinationID limits the check to one destination's digests; ""
	// checks every destination with digests under Prefix.
	DestinationID string
	// From and To limit the check to the digests of the hours that overlap
	// [From, To), and the not-in-any-digest check to the objects whose
	// LastModified is inside it (less Tolerance at either end). Zero means
	// unbounded.
	From, To time.Time
	// Keys are the published signing keys.
	Keys digest.KeySet
	// Parallel is how many objects are hashed at once (DefaultParallel
	// when 0).
	Parallel int
	// Tolerance is DefaultTolerance when 0.
	Tolerance time.Duration
}

// Problem kinds.
const (
	KindNoDigests         = "no_digests"
	KindDigestUnreadable  = "digest_unreadable"
	KindDigestMismatch    = "digest_mismatch"
	KindSignature         = "signature"
	KindChain             = "chain"
	KindDigestMissing     = "digest_missing"
	KindObjectModified    = "object_modified"
	KindObjectMissing     = "object_missing"
	KindObjectNotInDigest = "object_not_in_digest"
	KindObjectListedTwice = "object_listed_twice"
	KindSequenceGap       = "sequence_gap"
	KindSequenceOverlap   = "sequence_overlap"
	KindSequenceRange     = "sequence_range"
)

// Problem is one thing found wrong.
type Problem struct {
	Kind string `json:"kind"`
	// Key is the object the problem is about: a digest, a data object, or
	// the key a missing digest should have.
	Key string `json:"key"`
	// Digest is the digest that says what Key should be, when that is
	// another object.
	Digest  string `json:"digest,omitempty"`
	Message string `json:"message"`
}

// Destination is what was checked of one destination's chain.
type Destination struct {
	ID      string `json:"id"`
	Digests int    `json:"digests"`
	// Hours is the number of hours from the first to the last digest
	// checked: Digests plus the missing ones.
	Hours     int       `json:"hours"`
	Objects   int       `json:"objects"`
	FirstHour time.Time `json:"first_hour,omitzero"`
	LastHour  time.Time `json:"last_hour,omitzero"`
	// KeyIDs are the signing keys its digests name, in order of first use.
	KeyIDs []string `json:"key_ids"`
}

// UnlistedCheck is what the not-in-any-digest check covered.
type UnlistedCheck struct {
	// Checked is how many objects under the prefix were required to be in
	// a digest; Outside how many were not, for their LastModified lies
	// outside the window.
	Checked int `json:"checked"`
	Outside int `json:"outside_window"`
	// From and To bound the LastModified of the objects checked.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Skipped says why the check did not run, "" when it did.
	Skipped string `json:"skipped,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Bucket       string        `json:"bucket"`
	Prefix       string        `json:"prefix"`
	From         time.Time     `json:"from,omitzero"`
	To           time.Time     `json:"to,omitzero"`
	Destinations []Destination `json:"destinations"`
	Digests      int           `json:"digests"`
	Hours        int           `json:"hours"`
	Objects      int           `json:"objects"`
	BytesHashed  int64         `json:"bytes_hashed"`
	Unlisted     UnlistedCheck `json:"unlisted_check"`
	Problems     []Problem     `json:"problems"`
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Run verifies what opts describe. Problems found are in the report; an
// error means the check could not be done (a denied or failed request, bad
// options), and names what to fix.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	v := &verifier{
		opts:   opts,
		prefix: strings.TrimSuffix(opts.Prefix, "/"),
		seed:   maphash.MakeSeed(),
		cancel: cancel,
		report: &Report{Bucket: opts.Bucket, Prefix: opts.Prefix, From: opts.From, To: opts.To, Problems: []Problem{}},
	}
	v.hashers = v.startHashers(ctx)
	err := v.run(ctx)
	close(v.hashers.jobs)
	v.hashers.wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := v.checkUnlisted(ctx); err != nil {
		return nil, err
	}
	r := v.report
	r.BytesHashed = v.hashers.bytes.Load()
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Message, b.Message))
	})
	return r, nil
}

func (o *Options) validate() error {
	switch {
	case o.Client == nil:
		return errors.New("verify: no S3 client")
	case o.Bucket == "":
		return errors.New("verify: the bucket is required")
	case len(o.Keys.Keys) == 0:
		return errors.New("verify: the signing key set has no keys")
	case !o.From.IsZero() && !o.To.IsZero() && !o.From.Before(o.To):
		return fmt.Errorf("verify: the range's start %s is not before its end %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	return nil
}

// verifier is one run's state.
type verifier struct {
	opts    Options
	prefix  string // without its trailing "/"
	seed    maphash.Seed
	cancel  context.CancelCauseFunc
	hashers *hashPool

	mu     sync.Mutex // guards report.Problems, for the hash workers
	report *Report

	// listed holds a 64-bit hash of every key a checked digest lists: 8
	// bytes an object (plus the slice's spare capacity), sorted once all
	// digests are read. A collision between a listed key and an unlisted
	// one hides the unlisted one with a probability of about n/2^64.
	listed []uint64
	// otherDestinations are destinations with digests under the prefix
	// that were not checked (with DestinationID set).
	otherDestinations []string
	// first and last bound the hours of the digests checked, over every
	// destination: the not-in-any-digest check's window.
	first, last time.Time
}

func (v *verifier) problem(p Problem) {
	v.mu.Lock()
	v.report.Problems = append(v.report.Problems, p)
	v.mu.Unlock()
}

// fail stops the run with err, a request that could not be made.
func (v *verifier) fail(err error) { v.cancel(err) }

func (v *verifier) run(ctx context.Context) error {
	dests, err := v.destinations(ctx)
	if err != nil {
		return err
	}
	if len(dests) == 0 {
		folder := digest.FolderFor(v.prefix, v.opts.DestinationID)
		v.problem(Problem{Kind: KindNoDigests, Key: folder, Message: fmt.Sprintf(
			"no digests under s3://%s/%s: check -prefix (the destination's prefix) and -destination", v.opts.Bucket, folder)})
		return nil
	}
	for _, id := range dests {
		c := &chain{v: v, dest: id, report: Destination{ID: id, KeyIDs: []string{}}}
		if err := c.walk(ctx); err != nil {
			return err
		}
		if c.report.Digests == 0 && c.report.Hours == 0 && !v.opts.From.IsZero() {
			continue // a destination with no digest in the range
		}
		v.report.Destinations = append(v.report.Destinations, c.report)
		v.report.Digests += c.report.Digests
		v.report.Hours += c.report.Hours
		v.report.Objects += c.report.Objects
	}
	if len(v.report.Destinations) == 0 {
		v.problem(Problem{Kind: KindNoDigests, Key: digest.FolderFor(v.prefix, v.opts.DestinationID), Message: fmt.Sprintf(
			"no digests under s3://%s/%s for hours in the range", v.opts.Bucket, digest.FolderFor(v.prefix, v.opts.DestinationID))})
	}
	return nil
}

// destinations lists the destinations with digests under the prefix: the
// folders of FolderFor(prefix, ""). With DestinationID set it is that one
// alone, and the others are remembered for the not-in-any-digest check.
func (v *verifier) destinations(ctx context.Context) ([]string, error) {
	root := digest.FolderFor(v.prefix, "")
	var ids []string
	err := v.list(ctx, &s3.ListObjectsV2Input{Prefix: &root, Delimiter: ptr("/")}, func(page *s3.ListObjectsV2Output) bool {
		for _, cp := range page.CommonPrefixes {
			if id := strings.TrimSuffix(strings.TrimPrefix(deref(cp.Prefix), root), "/"); id != "" {
				ids = append(ids, id)
			}
		}
		return true
	})
	if err != nil || v.opts.DestinationID == "" {
		return ids, err
	}
	found := false
	for _, id := range ids {
		if id == v.opts.DestinationID {
			found = true
		} else {
			v.otherDestinations = append(v.otherDestinations, id)
		}
	}
	if !found {
		return nil, nil
	}
	return []string{v.opts.DestinationID}, nil
}

// inRange reports whether the hour starting at h overlaps [From, To).
func (v *verifier) inRange(h time.Time) bool {
	return (v.opts.From.IsZero() || h.Add(time.Hour).After(v.opts.From)) && (v.opts.To.IsZero() || h.Before(v.opts.To))
}

// checkUnlisted lists every object under the prefix, outside the
// _auditexport/ folder, and reports those that no checked digest lists,
// among the objects whose LastModified lies inside the checked window.
func (v *verifier) checkUnlisted(ctx context.Context) error {
	u := &v.report.Unlisted
	switch {
	case len(v.otherDestinations) > 0:
		u.Skipped = fmt.Sprintf("other destinations (%s) have digests under the prefix too: check without -destination to know every object is in a digest",
			strings.Join(v.otherDestinations, ", "))
		return nil
	case v.first.IsZero():
		u.Skipped = "no digest was checked"
		return nil
	}
	u.From, u.To = v.first, v.last
	if !v.opts.From.IsZero() && v.opts.From.After(u.From) {
		u.From = v.opts.From
	}
	if !v.opts.To.IsZero() && v.opts.To.Before(u.To) {
		u.To = v.opts.To
	}
	u.From, u.To = u.From.Add(v.opts.Tolerance), u.To.Add(-v.opts.Tolerance)

	slices.Sort(v.listed)
	twice := map[uint64]bool{}
	for i := 1; i < len(v.listed); i++ {
		if v.listed[i] == v.listed[i-1] {
			twice[v.listed[i]] = true
		}
	}
	var prefix string
	if v.prefix != "" {
		prefix = v.prefix + "/"
	}
	skip := prefix + "_auditexport/"
	return v.list(ctx, &s3.ListObjectsV2Input{Prefix: &prefix}, func(page *s3.ListObjectsV2Output) bool {
		for _, obj := range page.Contents {
			key := deref(obj.Key)
			if strings.HasPrefix(key, skip) {
				continue
			}
			h := maphash.String(v.seed, key)
			if twice[h] {
				v.problem(Problem{Kind: KindObjectListedTwice, Key: key, Message: fmt.Sprintf("object %s is listed by more than one digest", key)})
			}
			modified := deref(obj.LastModified)
			if modified.Before(u.From) || !modified.Before(u.To) {
				u.Outside++
				continue
			}
			u.Checked++
			if _, found := slices.BinarySearch(v.listed, h); !found {
				v.problem(Problem{Kind: KindObjectNotInDigest, Key: key, Message: fmt.Sprintf(
					"object %s not in any digest (last modified %s)", key, modified.UTC().Format(time.RFC3339))})
			}
		}
		return true
	})
}

// list pages through a listing of the bucket, calling fn with each page
// until it returns false.
func (v *verifier) list(ctx context.Context, in *s3.ListObjectsV2Input, fn func(*s3.ListObjectsV2Output) bool) error {
	in.Bucket = &v.opts.Bucket
	pages := s3.NewListObjectsV2Paginator(v.opts.Client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return v.requestError("ListObjectsV2", deref(in.Prefix), err)
		}
		if !fn(page) {
			return nil
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// hourString formats an hour as in messages: "2024-05-01T13:00:00Z".
func hourString(h time.Time) string { return h.UTC().Format(time.RFC3339) }

// counter is an atomic byte count.
type counter = atomic.Int64
