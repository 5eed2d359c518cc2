package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// secretField is the field of a destination spec (api.DestinationSpec's
// JSON) that holds a static secret. In the store it holds a Sealed object
// instead of the string, so a spec read without opening it fails to
// decode rather than yield a wrong secret.
const secretField = "secret_access_key"

// specAAD binds a sealed secret to its destination and field.
func specAAD(destID string) []byte {
	return []byte("auditexport destination " + destID + " " + secretField)
}

// state is what a stored spec holds in its secret field.
type state int

const (
	noSecret  state = iota
	plaintext       // a string: stored before secrets were sealed
	sealed
)

// inspect decodes a spec's fields and tells what its secret field holds.
func inspect(spec []byte) (map[string]json.RawMessage, state, Sealed, error) {
	if len(bytes.TrimSpace(spec)) == 0 {
		return nil, noSecret, Sealed{}, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(spec, &fields); err != nil {
		return nil, noSecret, Sealed{}, fmt.Errorf("decoding the destination spec: %w", err)
	}
	raw, ok := fields[secretField]
	if !ok {
		return fields, noSecret, Sealed{}, nil
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if str == "" {
			return fields, noSecret, Sealed{}, nil
		}
		return fields, plaintext, Sealed{}, nil
	}
	var s Sealed
	if err := json.Unmarshal(raw, &s); err != nil || s.Algorithm == "" {
		return nil, noSecret, Sealed{}, fmt.Errorf("the destination spec's %s is neither a string nor a sealed value", secretField)
	}
	return fields, sealed, s, nil
}

// SealSpec returns the spec of destination destID with its secret sealed.
// A spec without a secret, or with one sealed already, is returned as is.
func (k *Keyring) SealSpec(ctx context.Context, destID string, spec []byte) ([]byte, error) {
	fields, st, _, err := inspect(spec)
	if err != nil || st != plaintext {
		return spec, err
	}
	var secret string
	_ = json.Unmarshal(fields[secretField], &secret)
	s, err := k.Seal(ctx, []byte(secret), specAAD(destID))
	if err != nil {
		return nil, fmt.Errorf("sealing the secret of destination %s: %w", destID, err)
	}
	return replaceField(fields, s)
}

// OpenSpec returns the spec of destination destID with its secret opened:
// the JSON of api.DestinationSpec again. A spec with a plaintext secret
// (stored before sealing, and not yet re-sealed) is returned as is.
func (k *Keyring) OpenSpec(ctx context.Context, destID string, spec []byte) ([]byte, error) {
	fields, st, s, err := inspect(spec)
	if err != nil || st != sealed {
		return spec, err
	}
	plain, err := k.Open(ctx, s, specAAD(destID))
	if err != nil {
		return nil, fmt.Errorf("opening the secret of destination %s: %w", destID, err)
	}
	return replaceField(fields, string(plain))
}

func replaceField(fields map[string]json.RawMessage, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	fields[secretField] = raw
	return json.Marshal(fields)
}
