// Package destination is what the agent knows about a stored destination
// apart from delivering to it: its spec as decoded from the store, the S3
// target it maps to, where a new one starts (backfill) and the status the
// API, the provider and the metrics show. The HTTP API and the delivery
// loop both read destinations through it, so they agree.
package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/s3sink"
	"github.com/auditexport/auditexport/internal/store"
)

// Decode returns the spec of a stored destination. The static secret is
// whatever the store holds: the secrets package's store wrapper opens it
// on the way out, so through that wrapper it is the plaintext.
func Decode(d store.Destination) (api.DestinationSpec, error) {
	var spec api.DestinationSpec
	if err := json.Unmarshal(d.Spec, &spec); err != nil {
		return api.DestinationSpec{}, fmt.Errorf("destination %q: stored spec is unreadable: %w", d.ID, err)
	}
	return spec, nil
}

// TargetFor maps a destination spec to the S3 writer's target. externalID
// is the tenant's, sent with every AssumeRole.
func TargetFor(spec api.DestinationSpec, externalID string) s3sink.Target {
	return s3sink.Target{
		Bucket: spec.Bucket, Region: spec.Region, Prefix: spec.Prefix,
		RoleARN: spec.RoleARN, ExternalID: externalID,
		AccessKeyID: spec.AccessKeyID, SecretAccessKey: spec.SecretAccessKey,
		Encryption: spec.Encryption, KMSKeyARN: spec.KMSKeyARN,
		ACL: spec.ACL, StorageClass: spec.StorageClass,
		ExpectedBucketOwner: spec.ExpectedBucketOwner,
	}
}

// BackfillCursor is the cursor of a new destination: it delivers the events
// stored in the last `backfill` ("0", "1h", "7d") before now.
func BackfillCursor(ctx context.Context, s store.Store, tenantID int64, backfill string, now time.Time) (int64, error) {
	d, err := api.ParseBackfill(backfill)
	if err != nil {
		return 0, err
	}
	return s.LastSeqBefore(ctx, tenantID, 0, now.Add(-d))
}
