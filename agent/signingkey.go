package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/secrets"
	"github.com/auditexport/auditexport/internal/signing"
	"github.com/auditexport/auditexport/internal/store"
)

const signingKeyUsage = "auditexport-agent signing-key list [flags]\n  auditexport-agent signing-key rotate [flags]\n\n" +
	"Lists the keys that sign the hourly integrity digests, or adds a new current key. A rotated key\n" +
	"stays published (GET /v1/signing-keys) with the end of its validity, so older digests still verify;\n" +
	"every agent sharing the store signs with the new key from its next digest on."

// runSigningKey lists or rotates the digest signing keys in the store of the
// agent the config describes.
func runSigningKey(ctx context.Context, args []string, out io.Writer) error {
	f := newAdminFlags("signing-key")
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "list" && pos[0] != "rotate") {
		return usageError{msg: "use signing-key list or signing-key rotate", usage: flagUsage(f.fs)}
	}
	st, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if pos[0] == "list" {
		ks, err := st.SigningKeys(ctx)
		if err != nil {
			return err
		}
		printSigningKeys(out, ks)
		return nil
	}
	keys, err := f.keyring(ctx)
	if err != nil {
		return err
	}
	k, err := signing.New(st, keys).Rotate(ctx)
	if err != nil {
		return fmt.Errorf("rotating the signing key: %w", err)
	}
	fmt.Fprintf(out, "signing key %s is current from %s; the previous key stays published\n", k.KeyID, k.NotBefore.Format(time.RFC3339))
	return nil
}

// keyring is the secrets keyring of the agent the config describes: the
// new private key is sealed with the key the agent opens it with.
func (a adminFlags) keyring(ctx context.Context) (*secrets.Keyring, error) {
	path, from := config.Find(*a.configPath)
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading the config named by %s: %w", from, err)
	}
	if *a.dataDir != "" {
		cfg.DataDir = *a.dataDir
	}
	keys, _, err := secrets.FromConfig(ctx, cfg)
	return keys, err
}

func printSigningKeys(out io.Writer, ks []store.SigningKey) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tALGORITHM\tNOT BEFORE\tNOT AFTER\tPUBLIC KEY")
	for _, k := range ks {
		notAfter := "(current)"
		if !k.NotAfter.IsZero() {
			notAfter = k.NotAfter.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\tEd25519\t%s\t%s\t%s\n", k.KeyID, k.NotBefore.Format(time.RFC3339), notAfter,
			base64.StdEncoding.EncodeToString(k.PublicKey))
	}
	tw.Flush()
}
