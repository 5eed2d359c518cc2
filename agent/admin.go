package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/daemon"
	"github.com/auditexport/auditexport/internal/store"
	"github.com/auditexport/auditexport/internal/tokens"
)

var tenantNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// adminFlags are the flags every operator command shares.
type adminFlags struct {
	fs         *flag.FlagSet
	configPath *string
	dataDir    *string
}

func newAdminFlags(name string) adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return adminFlags{
		fs:         fs,
		configPath: fs.String("config", "", "the running agent's HCL config `file`, for its store (data_dir or store.postgres)"),
		dataDir:    fs.String("data-dir", "", "the running agent's data `directory` (overrides the config's data_dir; SQLite only)"),
	}
}

// open opens the store of the agent that serve runs with the same config.
// It never creates one: a new, empty store would hold tenants and tokens the
// running agent does not know, and reject with 401.
func (a adminFlags) open(ctx context.Context) (store.Store, error) {
	path, from := config.Find(*a.configPath)
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading the config named by %s: %w", from, err)
	}
	dataFrom := fmt.Sprintf("data_dir %q from %s", cfg.DataDir, from)
	if path != "" {
		dataFrom = fmt.Sprintf("data_dir %q from %s (%s)", cfg.DataDir, path, from)
	}
	if *a.dataDir != "" {
		cfg.DataDir = *a.dataDir
		dataFrom = fmt.Sprintf("-data-dir %q", cfg.DataDir)
	}
	st, err := daemon.OpenExistingStore(ctx, cfg)
	var nf *daemon.StoreNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("no agent store at %s (%s). Point this command at the running agent: "+
			"its config with -config FILE or %s=FILE, or its data directory with -data-dir DIR; "+
			"or start `auditexport-agent serve` with this config first, which creates the store",
			nf.Path, dataFrom, config.EnvConfig)
	}
	var nm *daemon.NotMigratedError
	if errors.As(err, &nm) {
		return nil, fmt.Errorf("%w with this config; or point this command at the running agent's database: "+
			"its config with -config FILE or %s=FILE, or %s=URL", nm, config.EnvConfig, config.EnvDatabaseURL)
	}
	return st, err
}

// runMigrate brings the store's schema up to date and exits, so that a
// schema change is applied (and any failure seen) before agents of a new
// version are rolled out. Agents starting meanwhile wait for it.
func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	configPath := fs.String("config", "", "the agent's HCL config `file`, for its store")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{msg: fmt.Sprintf("migrate takes no arguments, got %q", pos), usage: flagUsage(fs)}
	}
	path, from := config.Find(*configPath)
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("loading the config named by %s: %w", from, err)
	}
	if err := daemon.Migrate(ctx, cfg); err != nil {
		return fmt.Errorf("migrate %s: %w", daemon.DescribeStore(cfg), err)
	}
	fmt.Fprintf(out, "migrated %s\n", daemon.DescribeStore(cfg))
	return nil
}

func runTenant(ctx context.Context, args []string, out io.Writer) error {
	f := newAdminFlags("tenant")
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 2 && pos[0] == "create":
		st, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		t, err := createTenant(ctx, st, pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "tenant %s created\nexternal id: %s\n", t.Name, t.ExternalID)
		return nil
	case len(pos) == 1 && pos[0] == "list":
		st, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		ts, err := st.ListTenants(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			fmt.Fprintf(out, "%s\t%s\n", t.Name, t.ExternalID)
		}
		return nil
	}
	return usageError{msg: "use tenant create NAME or tenant list", usage: flagUsage(f.fs)}
}

func createTenant(ctx context.Context, st store.Store, name string) (store.Tenant, error) {
	if !tenantNameRe.MatchString(name) {
		return store.Tenant{}, fmt.Errorf("tenant name %q: use 1-63 lowercase letters, digits and hyphens, starting with a letter or digit (it appears in object keys)", name)
	}
	t, err := st.CreateTenant(ctx, name, tokens.NewExternalID())
	if errors.Is(err, store.ErrConflict) {
		return t, fmt.Errorf("tenant %q already exists", name)
	}
	return t, err
}

func runToken(ctx context.Context, args []string, out io.Writer) error {
	f := newAdminFlags("token")
	tenant := f.fs.String("tenant", "", "`name` of the tenant the token belongs to: required for a manage token; an ingest token with it may post for that tenant only")
	scope := f.fs.String("scope", "", "\"manage\" (with -tenant, the default) or \"ingest\" (the platform's token for posting events)")
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "create" {
		return usageError{msg: "use token create -tenant NAME or token create -scope ingest", usage: flagUsage(f.fs)}
	}
	if *scope == "" {
		*scope = api.ScopeManage
	}
	st, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := createToken(ctx, st, *scope, *tenant)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

// createToken stores a new token's hash and returns the token, which is
// never shown again.
func createToken(ctx context.Context, st store.Store, scope, tenantName string) (string, error) {
	var tenantID int64
	switch {
	case scope == api.ScopeManage && tenantName == "":
		return "", usageError{msg: "a manage token belongs to one tenant: add -tenant NAME"}
	case scope != api.ScopeManage && scope != api.ScopeIngest:
		return "", usageError{msg: fmt.Sprintf("-scope %q: use manage or ingest", scope)}
	case tenantName != "":
		t, err := st.TenantByName(ctx, tenantName)
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("tenant %q does not exist: create it with `auditexport-agent tenant create %s`", tenantName, tenantName)
		}
		if err != nil {
			return "", err
		}
		tenantID = t.ID
	}
	tok := tokens.New(scope)
	_, err := st.CreateToken(ctx, store.Token{Hash: tokens.Hash(tok), Scope: scope, TenantID: tenantID})
	return tok, err
}
