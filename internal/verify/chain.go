package verify

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditexport/auditexport/internal/digest"
)

// maxNamedMissing is how many missing hours of one hole are reported one by
// one; the rest of a longer hole is one problem naming its ends.
const maxNamedMissing = 48

// chain walks one destination's digests in hour order.
type chain struct {
	v      *verifier
	dest   string
	report Destination
	// prev is the digest before the one being checked: all that is kept of
	// the digests already read.
	prev *held
}

// held is what the next digest is checked against.
type held struct {
	key     string
	hour    time.Time
	sha256  string
	link    *digest.Link // nil when the digest could not be decoded
	nextSeq int64
}

// fetched is one digest object as read, or why it was not.
type fetched struct {
	key       string
	hour      time.Time
	body      []byte
	notDigest bool  // the key is in the folder but is not a digest key
	after     bool  // the first digest after the range, not read
	gone      bool  // listed, then not found
	err       error // the listing or the read failed
}

func (c *chain) walk(ctx context.Context) error {
	v := c.v
	folder := digest.FolderFor(v.prefix, c.dest)
	in := &s3.ListObjectsV2Input{Prefix: &folder}
	if !v.opts.From.IsZero() {
		// Start with the hour before the range, when it has a digest: the
		// first digest in the range is checked against it.
		before := v.opts.From.UTC().Truncate(time.Hour).Add(-time.Hour)
		in.StartAfter = ptr(digest.Key(v.prefix, c.dest, before.Add(-time.Hour)))
	}
	for slot := range c.readAhead(ctx, in) {
		var f fetched
		select {
		case f = <-slot:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if f.err != nil {
			return f.err
		}
		c.check(ctx, f)
	}
	return context.Cause(ctx)
}

// readAhead lists the folder and reads its digests, up to Parallel ahead of
// the one being checked, delivering them in key order.
func (c *chain) readAhead(ctx context.Context, in *s3.ListObjectsV2Input) <-chan chan fetched {
	v := c.v
	out := make(chan chan fetched, v.opts.Parallel)
	send := func(f fetched) bool {
		slot := make(chan fetched, 1)
		slot <- f
		select {
		case out <- slot:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		err := v.list(ctx, in, func(page *s3.ListObjectsV2Output) bool {
			for _, obj := range page.Contents {
				key := deref(obj.Key)
				dest, hour, ok := digest.ParseKey(v.prefix, key)
				if !ok || dest != c.dest {
					if !send(fetched{key: key, notDigest: true}) {
						return false
					}
					continue
				}
				if !v.opts.To.IsZero() && !hour.Before(v.opts.To) {
					// Keys sort in hour order: the rest are later. This
					// one shows whether the range's last hours are missing.
					send(fetched{key: key, hour: hour, after: true})
					return false
				}
				slot := make(chan fetched, 1)
				go func() { slot <- v.fetchDigest(ctx, key, hour) }()
				select {
				case out <- slot:
				case <-ctx.Done():
					return false
				}
			}
			return true
		})
		if err != nil {
			send(fetched{err: err})
		}
	}()
	return out
}

func (v *verifier) fetchDigest(ctx context.Context, key string, hour time.Time) fetched {
	f := fetched{key: key, hour: hour}
	out, err := v.opts.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			f.gone = true
			return f
		}
		f.err = v.requestError("GetObject", key, err)
		return f
	}
	defer out.Body.Close()
	// Stored bytes are gzip: they are no larger than the decompressed
	// limit Decode applies.
	f.body, err = io.ReadAll(io.LimitReader(out.Body, digest.MaxBytes+1))
	if err != nil {
		f.err = fmt.Errorf("reading digest s3://%s/%s: %w", v.opts.Bucket, key, err)
	}
	return f
}

// check checks one digest and makes it the previous one.
func (c *chain) check(ctx context.Context, f fetched) {
	v := c.v
	if f.notDigest {
		v.problem(Problem{Kind: KindDigestUnreadable, Key: f.key, Message: fmt.Sprintf(
			"object %s in the digest folder of destination %s is not a digest: digest keys are %s",
			f.key, c.dest, digest.Key(v.prefix, c.dest, time.Date(2006, 1, 2, 15, 0, 0, 0, time.UTC)))})
		return
	}
	if f.gone {
		return // deleted since it was listed: reported as a missing hour
	}
	if f.after {
		c.missingBefore(f)
		return
	}
	p, err := digest.Decode(f.body)
	cur := &held{key: f.key, hour: f.hour, sha256: p.SHA256}
	if err == nil {
		cur.link, cur.nextSeq = p.Link(f.key), p.Document.NextSeq
	}
	defer func() { c.prev = cur }()
	if !v.inRange(f.hour) {
		return // the hour before the range: read for its link only
	}
	c.count(f.hour)
	if err != nil {
		v.problem(Problem{Kind: KindDigestUnreadable, Key: f.key, Message: fmt.Sprintf("digest %s unreadable: %v", f.key, err)})
		return
	}
	if !slices.Contains(c.report.KeyIDs, p.Signature.KeyID) {
		c.report.KeyIDs = append(c.report.KeyIDs, p.Signature.KeyID)
	}
	if err := v.opts.Keys.Check(p); err != nil {
		v.problem(Problem{Kind: KindSignature, Key: f.key, Message: fmt.Sprintf("digest %s: %v", f.key, err)})
	}
	c.checkFields(f, p.Document)
	if c.checkLink(f, p.Document) {
		c.checkJoin(f.key, p.Document)
	}
	c.checkRanges(f.key, p.Document)
	c.checkObjects(ctx, f.key, p.Document)
}

func (c *chain) count(hour time.Time) {
	r := &c.report
	r.Digests++
	r.Hours++
	if r.FirstHour.IsZero() {
		r.FirstHour = hour
	}
	r.LastHour = hour
	if v := c.v; v.first.IsZero() || hour.Before(v.first) {
		v.first = hour
	}
	if end := hour.Add(time.Hour); end.After(c.v.last) {
		c.v.last = end
	}
}

// checkFields checks that the document is about what its key says.
func (c *chain) checkFields(f fetched, d digest.Document) {
	v := c.v
	var bad []string
	if d.DestinationID != c.dest {
		bad = append(bad, fmt.Sprintf("destination_id %q", d.DestinationID))
	}
	if !d.HourStart.Equal(f.hour) {
		bad = append(bad, "hour_start "+hourString(d.HourStart))
	}
	if !d.HourEnd.Equal(f.hour.Add(time.Hour)) {
		bad = append(bad, "hour_end "+hourString(d.HourEnd))
	}
	if d.Bucket != v.opts.Bucket {
		bad = append(bad, fmt.Sprintf("bucket %q", d.Bucket))
	}
	if strings.TrimSuffix(d.Prefix, "/") != v.prefix {
		bad = append(bad, fmt.Sprintf("prefix %q", d.Prefix))
	}
	if len(bad) > 0 {
		v.problem(Problem{Kind: KindDigestMismatch, Key: f.key, Message: fmt.Sprintf(
			"digest %s says %s, but its key is for destination %s, hour %s, in bucket %q under prefix %q",
			f.key, strings.Join(bad, ", "), c.dest, hourString(f.hour), v.opts.Bucket, v.prefix)})
	}
}

// checkLink checks the digest's link to the previous one, and reports the
// hours whose digests are missing before it. It reports whether the
// sequence ranges of the two should join.
func (c *chain) checkLink(f fetched, d digest.Document) bool {
	v, prev := c.v, c.prev
	if d.Previous == nil {
		switch {
		case d.ChainStart == nil || (d.ChainStart.Reason != digest.StartCreated && d.ChainStart.Reason != digest.StartLocationChanged):
			v.problem(Problem{Kind: KindChain, Key: f.key, Message: fmt.Sprintf(
				"digest %s has no previous link and no chain_start reason (%q or %q)", f.key, digest.StartCreated, digest.StartLocationChanged)})
		case d.ChainStart.Reason == digest.StartCreated && prev != nil:
			v.problem(Problem{Kind: KindChain, Key: f.key, Message: fmt.Sprintf(
				"digest %s starts a new chain (destination created) but digest %s (hour %s) comes before it", f.key, prev.key, hourString(prev.hour))})
		}
		return false
	}
	// The hours between the previous digest (or the range's start) and
	// this one have no digest.
	var from time.Time
	var after string
	switch {
	case prev != nil:
		from, after = prev.hour.Add(time.Hour), fmt.Sprintf("digest %s (hour %s)", prev.key, hourString(prev.hour))
	case !v.opts.From.IsZero():
		from, after = v.opts.From.UTC().Truncate(time.Hour), "the start of the range ("+hourString(v.opts.From)+")"
		if !from.Before(f.hour) {
			return false // the first hour of the range: its previous is outside it
		}
	default:
		_, linked, ok := digest.ParseKey(v.prefix, d.Previous.Key)
		if !ok || !linked.Before(f.hour) {
			linked = f.hour.Add(-time.Hour)
		}
		c.report.Hours++
		v.problem(Problem{Kind: KindDigestMissing, Key: d.Previous.Key, Digest: f.key, Message: fmt.Sprintf(
			"digest %s (hour %s) missing: digest %s links to it as its previous, and no digest of destination %s comes before it, so earlier ones may be missing too",
			d.Previous.Key, hourString(linked), f.key, c.dest)})
		return false
	}
	if from.Before(f.hour) {
		c.missing(from, f.hour, after, fmt.Sprintf("digest %s (hour %s)", f.key, hourString(f.hour)))
		return false
	}
	if prev.link == nil {
		// The previous digest is unreadable (reported): only its key and
		// its stored bytes are known.
		if d.Previous.Key != prev.key || d.Previous.SHA256 != prev.sha256 {
			v.problem(Problem{Kind: KindChain, Key: f.key, Message: fmt.Sprintf(
				"digest %s links to %s with SHA-256 %s, but the previous digest is %s with SHA-256 %s", f.key, d.Previous.Key, d.Previous.SHA256, prev.key, prev.sha256)})
		}
		return false
	}
	if diff := linkDiff(*d.Previous, *prev.link); diff != "" {
		v.problem(Problem{Kind: KindChain, Key: f.key, Message: fmt.Sprintf(
			"digest %s's previous link does not match digest %s: %s", f.key, prev.key, diff)})
	}
	return true
}

// linkDiff says how the link a digest makes differs from the previous
// digest as stored, "" when it does not.
func linkDiff(got, want digest.Link) string {
	var d []string
	if got.Key != want.Key {
		d = append(d, fmt.Sprintf("key %s, the previous digest is %s", got.Key, want.Key))
	}
	if got.SHA256 != want.SHA256 {
		d = append(d, fmt.Sprintf("SHA-256 %s, the previous digest's stored bytes hash to %s", got.SHA256, want.SHA256))
	}
	if got.Signature != want.Signature {
		d = append(d, "its signature differs from the previous digest's")
	}
	if got.SigningKeyID != want.SigningKeyID {
		d = append(d, fmt.Sprintf("signing key %s, the previous digest names %s", got.SigningKeyID, want.SigningKeyID))
	}
	return strings.Join(d, "; ")
}

// missingBefore reports the hours of the range after the last digest
// checked whose digests are missing, now that a later digest shows the
// chain went on.
func (c *chain) missingBefore(f fetched) {
	v := c.v
	to := v.opts.To.UTC().Truncate(time.Hour)
	if to.Before(v.opts.To) {
		to = to.Add(time.Hour) // the hour the range ends in is inside it
	}
	to = minTime(to, f.hour)
	next := fmt.Sprintf("digest %s (hour %s, after the range)", f.key, hourString(f.hour))
	switch {
	case c.prev != nil && c.prev.hour.Add(time.Hour).Before(to):
		c.missing(maxTime(c.prev.hour.Add(time.Hour), v.opts.From.UTC().Truncate(time.Hour)), to,
			fmt.Sprintf("digest %s (hour %s)", c.prev.key, hourString(c.prev.hour)), next)
	case c.prev == nil && !v.opts.From.IsZero():
		c.missing(v.opts.From.UTC().Truncate(time.Hour), to, "the start of the range ("+hourString(v.opts.From)+")", next)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// missing reports the hours [from, to) as missing, each with its key.
func (c *chain) missing(from, to time.Time, after, before string) {
	v := c.v
	n := 0
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		c.report.Hours++
		n++
		if n > maxNamedMissing {
			continue
		}
		v.problem(Problem{Kind: KindDigestMissing, Key: digest.Key(v.prefix, c.dest, h), Message: fmt.Sprintf(
			"digest for hour %s missing: digests missing between %s and %s", hourString(h), after, before)})
	}
	if n > maxNamedMissing {
		rest := from.Add(maxNamedMissing * time.Hour)
		v.problem(Problem{Kind: KindDigestMissing, Key: digest.Key(v.prefix, c.dest, rest), Message: fmt.Sprintf(
			"digests for the %d hours %s to %s missing too: digests missing between %s and %s",
			n-maxNamedMissing, hourString(rest), hourString(to.Add(-time.Hour)), after, before)})
	}
}

// checkJoin checks that the digest's range starts where the previous one's
// ended.
func (c *chain) checkJoin(key string, d digest.Document) {
	prev := c.prev
	switch {
	case d.FirstSeq > prev.nextSeq:
		c.v.problem(Problem{Kind: KindSequenceGap, Key: key, Message: fmt.Sprintf(
			"sequence gap: seqs %d..%d are in no digest: digest %s ends before %d (next_seq), digest %s starts at %d (first_seq)",
			prev.nextSeq, d.FirstSeq-1, prev.key, prev.nextSeq, key, d.FirstSeq)})
	case d.FirstSeq < prev.nextSeq:
		c.v.problem(Problem{Kind: KindSequenceOverlap, Key: key, Message: fmt.Sprintf(
			"sequence overlap: seqs %d..%d are in digest %s (next_seq %d) and again in digest %s (first_seq %d)",
			d.FirstSeq, prev.nextSeq-1, prev.key, prev.nextSeq, key, d.FirstSeq)})
	}
}

// checkRanges checks the digest's own range and that its objects' ranges
// lie inside it and, unless it is filtered, cover it.
func (c *chain) checkRanges(key string, d digest.Document) {
	v := c.v
	if d.NextSeq != d.LastSeq+1 {
		v.problem(Problem{Kind: KindSequenceRange, Key: key, Message: fmt.Sprintf("digest %s: next_seq %d is not last_seq %d + 1", key, d.NextSeq, d.LastSeq)})
	}
	if d.LastSeq < d.FirstSeq-1 {
		v.problem(Problem{Kind: KindSequenceRange, Key: key, Message: fmt.Sprintf("digest %s: last_seq %d is before first_seq %d - 1", key, d.LastSeq, d.FirstSeq)})
		return
	}
	type span struct{ first, last int64 }
	spans := make([]span, 0, len(d.Objects))
	for _, o := range d.Objects {
		switch {
		case o.FirstSeq > o.LastSeq:
			v.problem(Problem{Kind: KindSequenceRange, Key: o.Key, Digest: key, Message: fmt.Sprintf(
				"object %s: first_seq %d is after last_seq %d in digest %s", o.Key, o.FirstSeq, o.LastSeq, key)})
			continue
		case o.FirstSeq < d.FirstSeq || o.LastSeq > d.LastSeq:
			v.problem(Problem{Kind: KindSequenceRange, Key: o.Key, Digest: key, Message: fmt.Sprintf(
				"object %s: seqs %d..%d lie outside digest %s's range %d..%d", o.Key, o.FirstSeq, o.LastSeq, key, d.FirstSeq, d.LastSeq)})
		case o.Events > o.LastSeq-o.FirstSeq+1:
			v.problem(Problem{Kind: KindSequenceRange, Key: o.Key, Digest: key, Message: fmt.Sprintf(
				"object %s: %d events cannot have seqs in %d..%d (digest %s)", o.Key, o.Events, o.FirstSeq, o.LastSeq, key)})
		}
		spans = append(spans, span{o.FirstSeq, o.LastSeq})
	}
	if d.Filtered {
		return
	}
	// Objects of different event types interleave, so their ranges may
	// overlap; together they must leave no seq of the digest out.
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	next := d.FirstSeq
	gap := func(from, to int64) {
		v.problem(Problem{Kind: KindSequenceGap, Key: key, Message: fmt.Sprintf(
			"sequence gap: seqs %d..%d of digest %s's range %d..%d are in none of its objects", from, to, key, d.FirstSeq, d.LastSeq)})
	}
	for _, s := range spans {
		if s.first > next && next <= d.LastSeq {
			gap(next, min(s.first-1, d.LastSeq))
		}
		next = max(next, s.last+1)
	}
	if next <= d.LastSeq {
		gap(next, d.LastSeq)
	}
}

// checkObjects remembers the digest's objects as listed and has each one
// hashed.
func (c *chain) checkObjects(ctx context.Context, key string, d digest.Document) {
	v := c.v
	for _, o := range d.Objects {
		c.report.Objects++
		v.listed = append(v.listed, maphash.String(v.seed, o.Key))
		if !o.CommittedAt.Before(d.HourEnd) {
			v.problem(Problem{Kind: KindDigestMismatch, Key: o.Key, Digest: key, Message: fmt.Sprintf(
				"object %s committed at %s, not before the end of digest %s's hour (%s)", o.Key, o.CommittedAt.UTC().Format(time.RFC3339Nano), key, hourString(d.HourEnd))})
		}
		v.hashers.submit(ctx, hashJob{key: o.Key, sha256: o.SHA256, size: o.Size, digest: key})
	}
}
