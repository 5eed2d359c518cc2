package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CreateTenant adds a tenant and its head row in one statement. A taken name
// is an error wrapping ErrConflict.
func (p *Postgres) CreateTenant(ctx context.Context, name, externalID string) (Tenant, error) {
	t := Tenant{Name: name, ExternalID: externalID, CreatedAt: p.now()}
	err := p.queryRow(ctx, `WITH t AS (
			INSERT INTO tenants (name, external_id, created_at) VALUES ($1, $2, $3)
			RETURNING id)
		INSERT INTO tenant_heads (tenant_id) SELECT id FROM t RETURNING tenant_id`,
		[]any{name, externalID, toMs(t.CreatedAt)}, &t.ID)
	if pgCode(err) == codeUniqueViolation {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrConflict)
	}
	if err != nil {
		return Tenant{}, p.fail(ctx, fmt.Sprintf("create tenant %q", name), err)
	}
	return t, nil
}

// TenantByName looks a tenant up by its unique name.
func (p *Postgres) TenantByName(ctx context.Context, name string) (Tenant, error) {
	t, err := p.tenant(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = $1`, name)
	if err != nil {
		return Tenant{}, p.fail(ctx, "tenant by name", pgNotFound(err, "tenant %q", name))
	}
	return t, nil
}

// TenantByID looks a tenant up by id.
func (p *Postgres) TenantByID(ctx context.Context, id int64) (Tenant, error) {
	t, err := p.tenant(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id)
	if err != nil {
		return Tenant{}, p.fail(ctx, "tenant by id", pgNotFound(err, "tenant %d", id))
	}
	return t, nil
}

func (p *Postgres) tenant(ctx context.Context, sql string, arg any) (Tenant, error) {
	var t Tenant
	var created int64
	err := p.queryRow(ctx, sql, []any{arg}, &t.ID, &t.Name, &t.ExternalID, &created)
	t.CreatedAt = fromMs(created)
	return t, err
}

// ListTenants lists every tenant in id order.
func (p *Postgres) ListTenants(ctx context.Context) ([]Tenant, error) {
	ctx2, cancel := p.bound(ctx)
	defer cancel()
	rows, err := p.pool.Query(ctx2, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, p.fail(ctx, "list tenants", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Tenant, error) {
		return scanTenant(row)
	})
	if err != nil {
		return nil, p.fail(ctx, "list tenants", err)
	}
	return ts, nil
}

// CreateToken stores a token. Only its hash is kept; a hash that is already
// stored is an error wrapping ErrConflict, and an unknown tenant one wrapping
// ErrNotFound.
func (p *Postgres) CreateToken(ctx context.Context, t Token) (Token, error) {
	t.CreatedAt = p.now()
	var tenantID *int64
	if t.TenantID != 0 {
		tenantID = &t.TenantID
	}
	err := p.queryRow(ctx, `INSERT INTO tokens (hash, scope, tenant_id, created_at)
		VALUES ($1, $2, $3, $4) RETURNING id`,
		[]any{t.Hash, t.Scope, tenantID, toMs(t.CreatedAt)}, &t.ID)
	switch pgCode(err) {
	case codeUniqueViolation:
		return Token{}, fmt.Errorf("token: %w", ErrConflict)
	case codeForeignKeyViolation:
		return Token{}, fmt.Errorf("create token: tenant %d: %w", t.TenantID, ErrNotFound)
	}
	if err != nil {
		return Token{}, p.fail(ctx, "create token", err)
	}
	return t, nil
}

// TokenByHash looks a token up by the SHA-256 of its secret.
func (p *Postgres) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	var t Token
	var tenantID *int64
	var created int64
	err := p.queryRow(ctx, `SELECT id, hash, scope, tenant_id, created_at FROM tokens WHERE hash = $1`,
		[]any{hash}, &t.ID, &t.Hash, &t.Scope, &tenantID, &created)
	if err != nil {
		return Token{}, p.fail(ctx, "token by hash", pgNotFound(err, "token"))
	}
	if tenantID != nil {
		t.TenantID = *tenantID
	}
	t.CreatedAt = fromMs(created)
	return t, nil
}
