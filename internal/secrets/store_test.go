package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/testenv"
)

func openStore(t *testing.T) (store.Store, int64) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tn, err := st.CreateTenant(context.Background(), "acme", "ext")
	if err != nil {
		t.Fatal(err)
	}
	return st, tn.ID
}

// rawSecret is what the raw store holds in a destination's secret field.
func rawSecret(t *testing.T, st store.Store, tenantID int64, id string) json.RawMessage {
	t.Helper()
	d, err := st.GetDestination(context.Background(), tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(d.Spec, &fields); err != nil {
		t.Fatal(err)
	}
	return fields[secretField]
}

func openedSecret(t *testing.T, st store.Store, tenantID int64, id string) string {
	t.Helper()
	d, err := st.GetDestination(context.Background(), tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	var spec api.DestinationSpec
	if err := json.Unmarshal(d.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	return spec.SecretAccessKey
}

func TestStoreSealsOnTheWayIn(t *testing.T) {
	ctx := context.Background()
	raw, tid := openStore(t)
	sealedStore := WrapStore(raw, NewKeyring(newKey(t)))
	created, err := sealedStore.CreateDestination(ctx, store.Destination{ID: "dst_1", TenantID: tid, Spec: specJSON(t, secret)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(created.Spec, []byte(secret)) {
		t.Error("CreateDestination did not return the spec as given")
	}
	if s := rawSecret(t, raw, tid, "dst_1"); bytes.Contains(s, []byte(secret)) || !bytes.Contains(s, []byte(`"sealed"`)) {
		t.Fatalf("stored secret field %s", s)
	}
	if got := openedSecret(t, sealedStore, tid, "dst_1"); got != secret {
		t.Fatalf("GetDestination secret %q", got)
	}
	withStatus, _, err := sealedStore.DestinationStatus(ctx, tid, "dst_1")
	if err != nil || !bytes.Contains(withStatus.Spec, []byte(secret)) {
		t.Fatalf("DestinationStatus did not open the secret: %s, %v", withStatus.Spec, err)
	}
	updated, err := sealedStore.UpdateDestination(ctx, tid, "dst_1", specJSON(t, "new-"+secret))
	if err != nil || !bytes.Contains(updated.Spec, []byte("new-"+secret)) {
		t.Fatalf("UpdateDestination = %s, %v", updated.Spec, err)
	}
	if s := rawSecret(t, raw, tid, "dst_1"); bytes.Contains(s, []byte(secret)) {
		t.Fatalf("updated secret stored in the clear: %s", s)
	}
	list, err := sealedStore.ListDestinations(ctx, 0)
	if err != nil || len(list) != 1 || !bytes.Contains(list[0].Spec, []byte("new-"+secret)) {
		t.Fatalf("ListDestinations = %+v, %v", list, err)
	}
}

func TestResealRotates(t *testing.T) {
	ctx := context.Background()
	raw, tid := openStore(t)
	oldKey, newKeyK := newKey(t), newKey(t)
	// dst_plain was stored before secrets were sealed; dst_old under the
	// old key; dst_role has no secret.
	if _, err := raw.CreateDestination(ctx, store.Destination{ID: "dst_plain", TenantID: tid, Spec: specJSON(t, secret)}); err != nil {
		t.Fatal(err)
	}
	if _, err := WrapStore(raw, NewKeyring(oldKey)).CreateDestination(ctx, store.Destination{ID: "dst_old", TenantID: tid, Spec: specJSON(t, "old-"+secret)}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.CreateDestination(ctx, store.Destination{ID: "dst_role", TenantID: tid, Spec: []byte(`{"bucket":"b","region":"us-east-1","role_arn":"arn:aws:iam::123456789012:role/r"}`)}); err != nil {
		t.Fatal(err)
	}

	// Without the old key, the start is refused with what to configure.
	_, err := Reseal(ctx, raw, NewKeyring(newKeyK))
	if err == nil || !strings.Contains(err.Error(), "dst_old") || !strings.Contains(err.Error(), oldKey.ID()) || !strings.Contains(err.Error(), "previous_key_file") {
		t.Fatalf("Reseal without the old key: %v", err)
	}
	if s := rawSecret(t, raw, tid, "dst_plain"); string(s) != `"`+secret+`"` {
		t.Fatalf("a refused Reseal changed the store: %s", s)
	}

	n, err := Reseal(ctx, raw, NewKeyring(newKeyK, oldKey))
	if err != nil || n != 2 {
		t.Fatalf("Reseal = %d, %v; want 2 destinations", n, err)
	}
	for id, want := range map[string]string{"dst_plain": secret, "dst_old": "old-" + secret} {
		var s Sealed
		if err := json.Unmarshal(rawSecret(t, raw, tid, id), &s); err != nil || s.KeyID != newKeyK.ID() {
			t.Fatalf("%s after Reseal: key %q, %v", id, s.KeyID, err)
		}
		// The new key alone opens everything now.
		if got := openedSecret(t, WrapStore(raw, NewKeyring(newKeyK)), tid, id); got != want {
			t.Fatalf("%s opens to %q, want %q", id, got, want)
		}
	}
	if n, err := Reseal(ctx, raw, NewKeyring(newKeyK)); err != nil || n != 0 {
		t.Fatalf("second Reseal = %d, %v; want nothing to do", n, err)
	}
}

// The KMS key wraps data keys through a real KMS API (moto's).
func TestKMSKey(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMoto(t)
	client := kms.NewFromConfig(m.Config(), func(o *kms.Options) { o.BaseEndpoint = aws.String(m.URL) })
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("auditexport test")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(key.KeyMetadata.Arn)
	ring := NewKeyring(NewKMSKey(client, arn))
	if ring.CurrentID() != "kms:"+arn {
		t.Fatalf("key id %q", ring.CurrentID())
	}
	stored, err := ring.SealSpec(ctx, "dst_1", specJSON(t, secret))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) {
		t.Fatal("the secret is in the sealed spec")
	}
	// A fresh keyring has nothing cached: it must ask KMS to unwrap.
	opened, err := NewKeyring(NewKMSKey(client, arn)).OpenSpec(ctx, "dst_1", stored)
	if err != nil || !bytes.Contains(opened, []byte(secret)) {
		t.Fatalf("OpenSpec = %s, %v", opened, err)
	}
	// Rotating from the KMS key to a local one.
	raw, tid := openStore(t)
	if _, err := WrapStore(raw, ring).CreateDestination(ctx, store.Destination{ID: "dst_1", TenantID: tid, Spec: specJSON(t, secret)}); err != nil {
		t.Fatal(err)
	}
	local := newKey(t)
	if n, err := Reseal(ctx, raw, NewKeyring(local, NewKMSKey(client, arn))); err != nil || n != 1 {
		t.Fatalf("Reseal from KMS = %d, %v", n, err)
	}
	if got := openedSecret(t, WrapStore(raw, NewKeyring(local)), tid, "dst_1"); got != secret {
		t.Fatalf("after rotation the secret opens to %q", got)
	}
}
