package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/auditexport/auditexport/internal/digest"
	"github.com/auditexport/auditexport/internal/policy"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// Every destination gets one signed digest per UTC hour, from the hour it
// was created in, written once the hour is over, even when the hour has no
// object: a hole in the chain is then a sign of tampering, never of a quiet
// hour. A digest lists the objects committed since the previous digest
// (by the store's commit log, in commit order) and links to the previous
// digest's bytes, so that `auditexport-agent verify` can prove nothing is
// missing or altered.
//
// Digests follow the plans' crash protocol: build and sign, save the bytes
// in the store (fenced by the destination's lease), PUT them with
// If-None-Match: *, then mark them written (fenced). After a crash the
// saved bytes are PUT again; a saved digest is never signed again.

// Signer gives the current digest signing key. *signing.Keys is one.
type Signer interface {
	SigningKey(ctx context.Context) (ed25519.PrivateKey, error)
}

// ObjectReader is a Sink that can read an object back. A digest PUT that
// finds its key taken (412) is read back, when the sink can, to check that
// it is the digest this agent saved.
type ObjectReader interface {
	ReadObject(ctx context.Context, key string) ([]byte, error)
}

// ReadObject reads a digest back. See ObjectReader.
func (s writerSink) ReadObject(ctx context.Context, key string) ([]byte, error) {
	return s.w.Get(ctx, key, digest.MaxBytes)
}

// ErrDigestMismatch is wrapped by the error of a digest whose key holds
// other bytes than the digest saved for it. The chain stops there (and the
// destination's status says so) until an operator looks: something else
// wrote into the digest folder.
var ErrDigestMismatch = errors.New("the digest in the bucket is not the one this agent signed")

// writeDigests writes the destination's due digests. A failure is logged
// and shown in the destination's status and metrics, and retried at the
// next pass; it does not stop data delivery.
func (d *Deliverer) writeDigests(ctx context.Context, t *target) {
	if !d.digestsDue(t) {
		return // no hour has ended since the last pass: nothing to read
	}
	n, err := d.digestPass(ctx, t)
	if n > 0 && d.metrics != nil {
		d.metrics.DigestsWrote(t.tenant.Name, t.dest.ID, n)
	}
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, store.ErrLeaseLost):
		d.log.Warn("lease lost while writing digests", "destination", t.dest.ID, "epoch", t.fence.Epoch)
		d.wakeLeases()
	default:
		d.log.Error("digest not written; retrying at the next pass", "tenant", t.tenant.Name, "destination", t.dest.ID, "error", err)
		d.recordAttempt(ctx, t, store.Attempt{At: d.now(), Err: "integrity digest: " + err.Error(), Fence: t.fence})
		if d.metrics != nil {
			d.metrics.DigestFailed(t.tenant.Name, t.dest.ID)
		}
	}
}

// digestsDue reports whether a digest pass may have work: an hour has
// ended since the last pass wrote every digest due.
func (d *Deliverer) digestsDue(t *target) bool {
	return d.opts.Signer != nil && !d.now().Before(t.digestsDue)
}

// digestPass finishes a digest saved but not written, then writes one
// digest per hour that is over and has none. It returns how many it wrote.
// Once every digest due is written it sets t.digestsDue to the end of the
// hour in progress, so the passes before then cost nothing.
func (d *Deliverer) digestPass(ctx context.Context, t *target) (int, error) {
	written := 0
	prev, err := d.store.LastDigest(ctx, t.dest.ID)
	var hour time.Time
	var last *store.SavedDigest
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, started, err := d.store.LogStart(ctx, t.dest.ID)
		if err != nil {
			return 0, err
		}
		hour = started.UTC().Truncate(time.Hour)
	case err != nil:
		return 0, fmt.Errorf("reading the last digest: %w", err)
	default:
		last = &prev
		if prev.WrittenAt.IsZero() {
			if err := d.putDigest(ctx, t, prev); err != nil {
				return 0, err
			}
			written++
		}
		hour = prev.Hour.Add(time.Hour)
	}
	for !hour.Add(time.Hour).After(d.now()) {
		if ctx.Err() != nil {
			return written, ctx.Err()
		}
		saved, err := d.saveDigest(ctx, t, last, hour)
		if err != nil {
			return written, err
		}
		if err := d.putDigest(ctx, t, saved); err != nil {
			return written, err
		}
		written++
		last, hour = &saved, hour.Add(time.Hour)
	}
	t.digestsDue = hour.Add(time.Hour)
	return written, nil
}

// saveDigest builds, signs and saves the digest of hour, which follows
// prev (nil for the destination's first digest).
func (d *Deliverer) saveDigest(ctx context.Context, t *target, prev *store.SavedDigest, hour time.Time) (store.SavedDigest, error) {
	doc, err := d.digestDocument(ctx, t, prev, hour)
	if err != nil {
		return store.SavedDigest{}, err
	}
	priv, err := d.opts.Signer.SigningKey(ctx)
	if err != nil {
		return store.SavedDigest{}, fmt.Errorf("signing key: %w", err)
	}
	enc, err := digest.Encode(doc, priv)
	if err != nil {
		return store.SavedDigest{}, err
	}
	saved := store.SavedDigest{
		DestinationID: t.dest.ID, Hour: hour, Key: digest.Key(doc.Prefix, t.dest.ID, hour),
		Bucket: doc.Bucket, Prefix: doc.Prefix, NextSeq: doc.NextSeq,
		Body: enc.Body, SHA256: enc.SHA256, Signature: enc.Signature, KeyID: enc.KeyID,
		CreatedAt: doc.CreatedAt, Fence: t.fence,
	}
	if err := d.store.SaveDigest(ctx, saved); err != nil {
		return store.SavedDigest{}, fmt.Errorf("saving digest %s: %w", saved.Key, err)
	}
	return saved, nil
}

// digestDocument is the digest of hour: the commits logged after prev's
// range and before the hour's end.
func (d *Deliverer) digestDocument(ctx context.Context, t *target, prev *store.SavedDigest, hour time.Time) (digest.Document, error) {
	doc := digest.Document{
		DestinationID: t.dest.ID, Tenant: t.tenant.Name,
		Bucket: t.spec.Bucket, Prefix: policy.CleanPrefix(t.spec.Prefix),
		HourStart: hour, HourEnd: hour.Add(time.Hour), CreatedAt: d.now(),
		Filtered: len(t.spec.EventTypes) > 0,
	}
	switch {
	case prev == nil:
		cursor, _, err := d.store.LogStart(ctx, t.dest.ID)
		if err != nil {
			return doc, err
		}
		doc.FirstSeq = cursor + 1
		doc.ChainStart = &digest.ChainStart{Reason: digest.StartCreated}
	case prev.Bucket != doc.Bucket || prev.Prefix != doc.Prefix:
		doc.FirstSeq = prev.NextSeq
		doc.ChainStart = &digest.ChainStart{Reason: digest.StartLocationChanged,
			Detail: "s3://" + prev.Bucket + "/" + prev.Prefix}
	default:
		doc.FirstSeq = prev.NextSeq
		doc.Previous = &digest.Link{Key: prev.Key, SHA256: prev.SHA256, Signature: prev.Signature, SigningKeyID: prev.KeyID}
	}
	commits, err := d.store.CommitsFrom(ctx, t.dest.ID, doc.FirstSeq, doc.HourEnd)
	if err != nil {
		return doc, fmt.Errorf("reading the delivery log: %w", err)
	}
	doc.LastSeq = doc.FirstSeq - 1
	for _, c := range commits {
		doc.LastSeq = c.ToSeq
		for _, o := range c.Objects {
			doc.Objects = append(doc.Objects, o.Digest())
		}
	}
	doc.NextSeq = doc.LastSeq + 1
	return doc, nil
}

// putDigest writes a saved digest's bytes, never over an object, and marks
// it written. A key already taken (a PUT that landed before a crash, or a
// retry) counts as written once its bytes are read back equal, or when the
// sink cannot read back (the delivery role need not have s3:GetObject).
func (d *Deliverer) putDigest(ctx context.Context, t *target, saved store.SavedDigest) error {
	up := t.sink.NewUpload(ctx, saved.Key, s3sink.PutMeta{
		ContentType: digest.ContentType, ContentEncoding: digest.ContentEncoding,
	}, 0)
	if _, err := up.Write(saved.Body); err != nil {
		up.Abort()
		return fmt.Errorf("writing digest %s: %w", saved.Key, err)
	}
	res, err := up.Close()
	if err != nil {
		return fmt.Errorf("writing digest %s: %w", saved.Key, err)
	}
	if res.AlreadyExists {
		if err := d.checkStoredDigest(ctx, t, saved); err != nil {
			return err
		}
	}
	if err := d.store.MarkDigestWritten(ctx, t.dest.ID, saved.Hour, d.now(), t.fence); err != nil {
		return fmt.Errorf("recording digest %s: %w", saved.Key, err)
	}
	d.log.Debug("digest written", "destination", t.dest.ID, "key", saved.Key, "key_id", saved.KeyID,
		"already_existed", res.AlreadyExists)
	return nil
}

// checkStoredDigest compares the digest found at saved.Key with saved.
func (d *Deliverer) checkStoredDigest(ctx context.Context, t *target, saved store.SavedDigest) error {
	r, ok := t.sink.(ObjectReader)
	if !ok {
		return nil
	}
	body, err := r.ReadObject(ctx, saved.Key)
	if err != nil {
		d.log.Debug("digest already in the bucket; cannot read it back to compare", "key", saved.Key, "error", err)
		return nil
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != saved.SHA256 {
		return fmt.Errorf("%s: %w (its SHA-256 is %s, the saved digest's %s): check who else writes under %s",
			saved.Key, ErrDigestMismatch, got, saved.SHA256, digest.FolderFor(saved.Prefix, ""))
	}
	return nil
}

// pruneDeliveryLog drops the delivery log entries and saved digests older
// than the log retention that a written digest covers (see
// store.DeliveryLog.PruneDeliveryLog). It runs with the event retention
// sweep, on the leader.
func (d *Deliverer) pruneDeliveryLog(ctx context.Context) {
	keep := d.opts.LogRetention
	if keep <= 0 {
		keep = store.DefaultLogRetention
	}
	n, err := d.store.PruneDeliveryLog(ctx, d.now().Add(-keep))
	if err != nil {
		d.log.Error("retention: pruning the delivery log", "error", err)
		return
	}
	if n > 0 {
		d.log.Debug("retention: pruned the delivery log", "rows", n)
	}
}
