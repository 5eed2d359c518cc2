// Package store keeps tenants, tokens, the event log, destinations and their
// delivery cursors. Store is the contract; SQLite is the default engine and
// PostgreSQL the one several agents share. Open picks one from a Config.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a tenant, token, destination or plan does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique name is taken.
var ErrConflict = errors.New("already exists")

// Tenant is a customer of the platform.
type Tenant struct {
	ID         int64
	Name       string
	ExternalID string
	CreatedAt  time.Time
}

// Token is an API token; only the SHA-256 of the secret is stored.
type Token struct {
	ID        int64
	Hash      []byte // sha256 of the token string
	Scope     string // api.ScopeManage or api.ScopeIngest
	TenantID  int64  // 0 for an ingest token valid for every tenant
	CreatedAt time.Time
}

// Event is one audit event to append. Body is kept byte for byte.
type Event struct {
	MessageID string
	EventName string
	TimeMs    int64 // event timestamp, Unix milliseconds UTC
	Body      []byte
}

// AppendBatch is the events of one ingest request, all for one tenant.
type AppendBatch struct {
	TenantID int64
	Events   []Event
}

// AppendResult tells what happened to one AppendBatch.
type AppendResult struct {
	Stored     int
	Duplicates int
	FirstSeq   int64 // 0 when nothing was stored
	LastSeq    int64
}

// StoredEvent is an event read back from the log.
type StoredEvent struct {
	Seq       int64
	EventName string
	TimeMs    int64
	Body      []byte
}

// Group is the events of one event name and one UTC day inside a sequence
// range: delivery writes one object (or more parts) per group.
type Group struct {
	EventName string
	// Names, when set, makes the group mixed: the events of all these
	// names in the range and span, EventName unused. Delivery builds one
	// from GroupsBy's groups of one span for a destination whose object
	// keys do not name the event type.
	Names    []string
	Day      time.Time     // start (UTC) of the events' day, or of their span
	Span     time.Duration // the group's time span; 0 means a day
	FirstSeq int64
	LastSeq  int64
	Count    int64
}

// Destination is a stored destination. Spec is the JSON of api.DestinationSpec
// (including the static secret, which never leaves the agent).
type Destination struct {
	ID        string
	TenantID  int64
	Spec      []byte
	Cursor    int64 // last sequence delivered
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DestinationSummary is a destination with what the agent's state and lag
// metrics need of it, read in one statement with every other destination's
// (see Store.DestinationSummaries).
type DestinationSummary struct {
	Destination Destination
	Status      Status
	// Tenant is the name of the destination's tenant and Head its last
	// sequence number.
	Tenant string
	Head   int64
	// OldestUndelivered is when the first event after the destination's
	// cursor was stored (OldestAfter), zero when there is none.
	OldestUndelivered time.Time
}

// Status is the mutable delivery status of a destination.
type Status struct {
	LastDeliveryAt   time.Time // zero when never
	LastAttemptAt    time.Time
	LastError        string
	FailingSince     time.Time // zero when not failing
	EventsDelivered  int64
	ObjectsDelivered int64
	BytesDelivered   int64
	// Holder is the agent holding the destination's unexpired lease, ""
	// when none does (and always with a store that is not Shared).
	Holder string
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	At  time.Time
	Err string // "" when the attempt succeeded
	// Fence, when its Holder is set, makes the write fail with
	// ErrLeaseLost unless that lease is still held (see Leases).
	Fence Lease
}

// Plan is a persisted delivery batch. It is saved before any object is
// written, so that after a crash the same objects are rewritten with the same
// keys and bytes (conditional writes then make the retry harmless).
type Plan struct {
	DestinationID string
	FromSeq       int64 // first sequence in the plan (cursor + 1)
	ToSeq         int64 // last sequence in the plan; the new cursor on commit
	WindowEnd     time.Time
	// Objects is opaque to the store: the delivery package's JSON description
	// of the objects to write.
	Objects   []byte
	CreatedAt time.Time
	// Fence, when its Holder is set, makes SavePlan, UpdatePlan and
	// CommitPlan fail with ErrLeaseLost, changing nothing, unless that
	// lease is still held (see Leases). The store does not keep it.
	Fence Lease
}

// Delivered is what a committed plan adds to a destination's counters.
type Delivered struct {
	Events  int64
	Objects int64
	Bytes   int64
	At      time.Time
	// Log is the objects the plan wrote, in the order written: CommitPlan
	// adds them and the commit to the delivery log (see DeliveryLog).
	Log []LoggedObject
}

// Store is everything the agent keeps on disk. All methods are safe for
// concurrent use. Every engine meets these invariants, which the contract
// suite (package storetest) checks:
//
//   - A tenant's sequence numbers are dense (1, 2, 3, … without gaps; a
//     duplicate takes none) and follow commit order, also with several
//     agents appending to one database.
//   - A reader never sees sequence N+1 while N can still appear: once Head
//     returns N, every event up to N is readable and no later commit gets a
//     number at or below N. Delivery may advance its cursor to any head it
//     read.
//   - CommitPlan is atomic: the plan is deleted, the cursor moved and the
//     counters added together, or (when the plan is gone) nothing changes;
//     of concurrent commits of one plan exactly one counts.
//   - Duplicates are judged on (MessageID, TimeMs) per tenant, against the
//     events still retained and the others of the same call: an event whose
//     first copy was deleted by DeleteEvents is stored again, as new.
//   - Tenants are kept apart: a destination of another tenant is
//     ErrNotFound, and events are read per tenant only.
//   - Writes with a Fence are made only under that lease (see Leases), so
//     an agent that paused past its lease cannot record a part, commit a
//     plan or move a cursor after another agent took the destination over.
//   - Errors wrap ErrNotFound or ErrConflict where the method says so, and
//     ErrUnavailable when the database could not be reached in time.
type Store interface {
	CreateTenant(ctx context.Context, name, externalID string) (Tenant, error)
	TenantByName(ctx context.Context, name string) (Tenant, error)
	TenantByID(ctx context.Context, id int64) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)

	CreateToken(ctx context.Context, t Token) (Token, error)
	TokenByHash(ctx context.Context, hash []byte) (Token, error)

	// Append stores the batches in one durable transaction (group commit):
	// when it returns nil every new event is fsync'd. Events whose MessageID
	// and TimeMs are already stored for the tenant (or repeated in the call)
	// are counted as duplicates and not stored: a platform's retry resends
	// both. Duplicates are found while the first copy is retained. Each stored event gets the tenant's next
	// sequence number, in order.
	Append(ctx context.Context, batches []AppendBatch) ([]AppendResult, error)
	// AppendWriters is how many Append calls are worth running at once:
	// 1 for an engine with one writer (SQLite), more for one that commits
	// concurrent transactions (PostgreSQL), where one commit's round trips
	// and WAL flush overlap the next one's work, also for one tenant.
	AppendWriters() int
	// Head is the tenant's last assigned sequence number (0 when none).
	Head(ctx context.Context, tenantID int64) (int64, error)
	// OldestAfter is the timestamp (commit time) of the first event after seq,
	// or the zero time when there is none. Used for lag.
	OldestAfter(ctx context.Context, tenantID, seq int64) (time.Time, error)
	// LastSeqBefore is the last sequence number of the events stored before
	// t: the one just before the first event after `after` stored at or
	// after t, or the head when there is none. It scans from `after`.
	LastSeqBefore(ctx context.Context, tenantID, after int64, t time.Time) (int64, error)
	// GroupsBy lists the (event name, time span) groups of events with
	// from <= seq <= to, ordered by FirstSeq, for a span of 1h or 24h. An
	// empty eventNames means all.
	GroupsBy(ctx context.Context, tenantID, from, to int64, eventNames []string, span time.Duration) ([]Group, error)
	// Scan calls fn for each event of group g (between g.FirstSeq and
	// g.LastSeq, same event name or one of g.Names, same day or span) in
	// sequence order, streaming: it must not load the whole group into
	// memory. fn must not keep ev.Body.
	Scan(ctx context.Context, tenantID int64, g Group, fn func(ev StoredEvent) error) error

	// DeleteEvents deletes up to limit of the tenant's events with
	// seq <= maxSeq stored before `before`, oldest first (retention).
	DeleteEvents(ctx context.Context, tenantID, maxSeq int64, before time.Time, limit int) (int64, error)
	// ExpiredRange bounds what retention may delete: first is the seq of the
	// tenant's oldest stored event and last the seq of the last event stored
	// before `before` (by ingest time), or 0, 0 when the oldest stored event
	// is not older than `before`. Both are index lookups, whatever the
	// number of retained events.
	ExpiredRange(ctx context.Context, tenantID int64, before time.Time) (first, last int64, err error)

	CreateDestination(ctx context.Context, d Destination) (Destination, error)
	GetDestination(ctx context.Context, tenantID int64, id string) (Destination, error)
	// ListDestinations lists a tenant's destinations; tenantID 0 lists all.
	ListDestinations(ctx context.Context, tenantID int64) ([]Destination, error)
	// DestinationsVersion is a counter that moves on every create, update
	// and delete of a destination (a trigger's work, whoever writes), and
	// on nothing else: a poller can skip ListDestinations while it stands.
	DestinationsVersion(ctx context.Context) (int64, error)
	UpdateDestination(ctx context.Context, tenantID int64, id string, spec []byte) (Destination, error)
	DeleteDestination(ctx context.Context, tenantID int64, id string) error

	GetStatus(ctx context.Context, destID string) (Status, error)
	// DestinationStatus returns a destination of the tenant and its status
	// read together, in one statement: the cursor and the counters are
	// those of the same moment, never an old cursor beside the counters of
	// a plan committed in between. A destination of another tenant is
	// ErrNotFound; one without a status yet has the zero Status.
	DestinationStatus(ctx context.Context, tenantID int64, id string) (Destination, Status, error)
	// DestinationSummaries lists every destination of every tenant, ordered
	// by creation, each with its status, its tenant's name and head and
	// when its oldest undelivered event was stored, in one statement: what
	// DestinationStatus, Head and OldestAfter would read for each, without
	// a round trip (and a query plan) per destination.
	DestinationSummaries(ctx context.Context) ([]DestinationSummary, error)
	// RecordAttempt updates the destination's status in one statement:
	// LastAttemptAt = a.At; on success LastError and FailingSince are
	// cleared; on failure LastError = a.Err and FailingSince is set to a.At
	// unless already set. It fails with ErrNotFound for an unknown
	// destination. Being one statement, it cannot lose a concurrent
	// CommitPlan's counters the way a read-modify-write would.
	RecordAttempt(ctx context.Context, destID string, a Attempt) error

	// PendingPlan returns the destination's saved plan, or ErrNotFound.
	PendingPlan(ctx context.Context, destID string) (Plan, error)
	// SavePlan saves p; a destination has at most one pending plan.
	SavePlan(ctx context.Context, p Plan) error
	// UpdatePlan replaces the pending plan's Objects, to record an object's
	// boundaries before it is completed. It fails if the plan is gone.
	UpdatePlan(ctx context.Context, p Plan) error
	// CommitPlan, in one transaction, deletes the plan, sets the cursor to
	// p.ToSeq, adds d to the counters and logs the commit with d.Log. It
	// fails if the plan is gone.
	CommitPlan(ctx context.Context, p Plan, d Delivered) error

	Leases
	DeliveryLog

	Close() error
}
