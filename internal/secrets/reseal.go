package secrets

import (
	"context"
	"fmt"

	"github.com/auditexport/auditexport/internal/store"
)

// Reseal brings every stored secret under the keyring's current key: a
// plaintext one (stored before sealing) is sealed, and one sealed with a
// previous key is opened and sealed again with a new data key. It runs
// before the agent serves, so no update races it, and returns how many
// destinations it rewrote. A secret sealed with a key the keyring lacks
// is an error naming the destination and the key.
func Reseal(ctx context.Context, s store.Store, keys *Keyring) (int, error) {
	ds, err := s.ListDestinations(ctx, 0)
	if err != nil {
		return 0, err
	}
	// Every key is checked before anything is rewritten, so a missing
	// previous key refuses the start with the store unchanged.
	var todo []store.Destination
	for _, d := range ds {
		_, st, sl, err := inspect(d.Spec)
		if err != nil {
			return 0, fmt.Errorf("destination %s: %w", d.ID, err)
		}
		if st == sealed && !keys.Has(sl.KeyID) {
			return 0, fmt.Errorf("destination %s: its secret is sealed with key %s, which is not configured: set secrets.previous_key_file, previous_key_env or previous_kms_key_arn to that key (or secrets.key_file, if it is the current one)", d.ID, sl.KeyID)
		}
		if st == plaintext || st == sealed && sl.KeyID != keys.CurrentID() {
			todo = append(todo, d)
		}
	}
	for i, d := range todo {
		plain, err := keys.OpenSpec(ctx, d.ID, d.Spec)
		if err != nil {
			return i, err
		}
		spec, err := keys.SealSpec(ctx, d.ID, plain)
		if err != nil {
			return i, err
		}
		if _, err := s.UpdateDestination(ctx, d.TenantID, d.ID, spec); err != nil {
			return i, fmt.Errorf("re-sealing destination %s: %w", d.ID, err)
		}
	}
	return len(todo), nil
}
