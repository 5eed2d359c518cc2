package secrets

import (
	"context"

	"github.com/auditexport/auditexport/internal/store"
)

// Store is a store.Store whose destinations' secrets are sealed on the way
// in and opened on the way out: the one seam between plaintext specs (the
// API, delivery) and what is on disk. Everything else passes through.
type Store struct {
	store.Store
	keys *Keyring
}

// WrapStore seals the destination secrets that pass through s with keys.
func WrapStore(s store.Store, keys *Keyring) *Store {
	return &Store{Store: s, keys: keys}
}

// CreateDestination stores d with its secret sealed and returns it with
// the secret in the clear, as given.
func (s *Store) CreateDestination(ctx context.Context, d store.Destination) (store.Destination, error) {
	plain := d.Spec
	spec, err := s.keys.SealSpec(ctx, d.ID, d.Spec)
	if err != nil {
		return store.Destination{}, err
	}
	d.Spec = spec
	out, err := s.Store.CreateDestination(ctx, d)
	if err != nil {
		return store.Destination{}, err
	}
	out.Spec = plain
	return out, nil
}

// UpdateDestination replaces the spec, its secret sealed.
func (s *Store) UpdateDestination(ctx context.Context, tenantID int64, id string, spec []byte) (store.Destination, error) {
	sealedSpec, err := s.keys.SealSpec(ctx, id, spec)
	if err != nil {
		return store.Destination{}, err
	}
	out, err := s.Store.UpdateDestination(ctx, tenantID, id, sealedSpec)
	if err != nil {
		return store.Destination{}, err
	}
	out.Spec = spec
	return out, nil
}

// GetDestination returns the destination with its secret opened.
func (s *Store) GetDestination(ctx context.Context, tenantID int64, id string) (store.Destination, error) {
	d, err := s.Store.GetDestination(ctx, tenantID, id)
	if err != nil {
		return store.Destination{}, err
	}
	return s.open(ctx, d)
}

// DestinationStatus returns the destination, its secret opened, and its status.
func (s *Store) DestinationStatus(ctx context.Context, tenantID int64, id string) (store.Destination, store.Status, error) {
	d, st, err := s.Store.DestinationStatus(ctx, tenantID, id)
	if err != nil {
		return store.Destination{}, store.Status{}, err
	}
	d, err = s.open(ctx, d)
	if err != nil {
		return store.Destination{}, store.Status{}, err
	}
	return d, st, nil
}

// ListDestinations returns the destinations with their secrets opened.
func (s *Store) ListDestinations(ctx context.Context, tenantID int64) ([]store.Destination, error) {
	ds, err := s.Store.ListDestinations(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i], err = s.open(ctx, ds[i]); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (s *Store) open(ctx context.Context, d store.Destination) (store.Destination, error) {
	spec, err := s.keys.OpenSpec(ctx, d.ID, d.Spec)
	if err != nil {
		return store.Destination{}, err
	}
	d.Spec = spec
	return d, nil
}
