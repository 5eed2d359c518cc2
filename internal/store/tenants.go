package store

import (
	"context"
	"database/sql"
	"fmt"
)

const tenantColumns = `id, name, external_id, created_at`

// CreateTenant adds a tenant. A taken name is an error wrapping ErrConflict.
func (s *SQLite) CreateTenant(ctx context.Context, name, externalID string) (Tenant, error) {
	t := Tenant{Name: name, ExternalID: externalID, CreatedAt: s.now()}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tenants (name, external_id, created_at) VALUES (?, ?, ?)`,
			name, externalID, toMs(t.CreatedAt))
		if err != nil {
			return err
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	if isUnique(err) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrConflict)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %q: %w", name, err)
	}
	return t, nil
}

// TenantByName looks a tenant up by its unique name.
func (s *SQLite) TenantByName(ctx context.Context, name string) (Tenant, error) {
	row := s.read.QueryRowContext(ctx,
		`SELECT `+tenantColumns+` FROM tenants WHERE name = ?`, name)
	t, err := scanTenant(row)
	if err != nil {
		return Tenant{}, notFound(err, "tenant %q", name)
	}
	return t, nil
}

// TenantByID looks a tenant up by id.
func (s *SQLite) TenantByID(ctx context.Context, id int64) (Tenant, error) {
	row := s.read.QueryRowContext(ctx,
		`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id)
	t, err := scanTenant(row)
	if err != nil {
		return Tenant{}, notFound(err, "tenant %d", id)
	}
	return t, nil
}

// ListTenants lists every tenant in id order.
func (s *SQLite) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()

	var ts []Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

func scanTenant(sc scanner) (Tenant, error) {
	var t Tenant
	var created int64
	if err := sc.Scan(&t.ID, &t.Name, &t.ExternalID, &created); err != nil {
		return Tenant{}, err
	}
	t.CreatedAt = fromMs(created)
	return t, nil
}

// CreateToken stores a token. Only its hash is kept; a hash that is already
// stored is an error wrapping ErrConflict, and an unknown tenant one wrapping
// ErrNotFound.
func (s *SQLite) CreateToken(ctx context.Context, t Token) (Token, error) {
	t.CreatedAt = s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if t.TenantID != 0 {
			if err := tenantExists(ctx, tx, t.TenantID); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tokens (hash, scope, tenant_id, created_at) VALUES (?, ?, ?, ?)`,
			t.Hash, t.Scope, nullID(t.TenantID), toMs(t.CreatedAt))
		if err != nil {
			return err
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	if isUnique(err) {
		return Token{}, fmt.Errorf("token: %w", ErrConflict)
	}
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	}
	return t, nil
}

// TokenByHash looks a token up by the SHA-256 of its secret.
func (s *SQLite) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	var t Token
	var tenantID sql.NullInt64
	var created int64
	err := s.read.QueryRowContext(ctx,
		`SELECT id, hash, scope, tenant_id, created_at FROM tokens WHERE hash = ?`, hash).
		Scan(&t.ID, &t.Hash, &t.Scope, &tenantID, &created)
	if err != nil {
		return Token{}, notFound(err, "token")
	}
	t.TenantID = tenantID.Int64
	t.CreatedAt = fromMs(created)
	return t, nil
}

// tenantExists returns an error wrapping ErrNotFound unless the tenant exists.
func tenantExists(ctx context.Context, tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE id = ?`, id).Scan(&one)
	return notFound(err, "tenant %d", id)
}

// nullID stores the id 0 ("none") as NULL.
func nullID(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}
