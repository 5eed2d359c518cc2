package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresVersion is the PostgreSQL major version the harness is written
// against; any 14 or later works.
const PostgresVersion = 15

// pgStartTimeout bounds pg_ctl start and stop (-t): generous, because on a
// busy machine a first start writes and fsyncs the whole cluster.
const pgStartTimeout = 120 * time.Second

// Postgres is a PostgreSQL server of its own, on a free loopback port, with
// trust authentication for the user "postgres".
type Postgres struct {
	// Host and Port are where the server listens.
	Host string
	Port int

	dir     string // holds data/, the log and the Unix socket
	bin     string // directory of initdb and pg_ctl
	runAs   bool   // run the binaries as the postgres user (we are root)
	mu      sync.Mutex
	dbCount int
}

// StartPostgres initialises a cluster in a temporary directory and starts it;
// it is stopped and removed when the test ends. The test fails (it does not
// skip) when the server cannot start. Starting takes a few seconds: a
// package with several tests shares one server through SharedPostgres.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := startPostgres()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// SharedPostgres is one server for a whole test package, started by the first
// test that needs it and stopped by TestMain:
//
//	var pg testenv.SharedPostgres
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Close()
//		os.Exit(code)
//	}
//
// Tests call pg.Get(t) and take a fresh database each with NewDatabase.
type SharedPostgres struct {
	once sync.Once
	p    *Postgres
	err  error
}

// Get returns the package's server, starting it on first use. It fails the
// test when the server cannot start.
func (s *SharedPostgres) Get(t testing.TB) *Postgres {
	t.Helper()
	s.once.Do(func() { s.p, s.err = startPostgres() })
	if s.err != nil {
		t.Fatalf("start PostgreSQL: %v", s.err)
	}
	return s.p
}

// Close stops the server if it was started.
func (s *SharedPostgres) Close() {
	if s.p != nil {
		s.p.Close()
	}
}

// NewPostgres starts a server as StartPostgres does, outside a test (the
// bench uses it); the caller stops it with Close.
func NewPostgres() (*Postgres, error) { return startPostgres() }

func startPostgres() (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Host: "127.0.0.1", bin: bin, runAs: os.Geteuid() == 0}

	// Not t.TempDir: its parent directories are private to root, and the
	// server runs as the postgres user.
	p.dir, err = os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		return nil, err
	}
	if err := p.chown(p.dir); err != nil {
		os.RemoveAll(p.dir)
		return nil, err
	}
	// --no-sync: the cluster is thrown away with the test; the server
	// itself runs with fsync on, so commits cost what they cost in
	// production.
	if out, err := p.run("initdb", "-D", p.dataDir(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(p.dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	// PostgreSQL cannot be told to pick a port itself: take a free one and
	// try again if another process took it first.
	for attempt := 0; ; attempt++ {
		p.Port, err = freePort()
		if err == nil {
			err = p.start()
		}
		if err == nil {
			return p, nil
		}
		if attempt == 4 || !strings.Contains(err.Error(), "could not bind") {
			os.RemoveAll(p.dir)
			return nil, err
		}
	}
}

// postgresBin finds the directory of initdb and pg_ctl: on PATH, or where
// Debian and Ubuntu install them (/usr/lib/postgresql/N/bin), newest first.
func postgresBin() (string, error) {
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(path), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL %d or later (apt-get install postgresql-%d)",
		PostgresVersion, PostgresVersion)
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) logPath() string { return filepath.Join(p.dir, "log") }

// start starts the server on p.Port and waits until it accepts connections.
// The settings keep it small: several servers and agents share two cores.
func (p *Postgres) start() error {
	opts := fmt.Sprintf("-c listen_addresses=%s -p %d -k %s -c max_connections=50 -c shared_buffers=32MB -c fsync=on",
		p.Host, p.Port, p.dir)
	out, err := p.run("pg_ctl", "-D", p.dataDir(), "-l", p.logPath(), "-w",
		"-t", strconv.Itoa(int(pgStartTimeout.Seconds())), "-o", opts, "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\nserver log:\n%s", err, out, p.logTail())
	}
	return nil
}

// stop stops the server, cancelling running transactions (-m fast).
func (p *Postgres) stop() error {
	out, err := p.run("pg_ctl", "-D", p.dataDir(), "-m", "fast", "-w",
		"-t", strconv.Itoa(int(pgStartTimeout.Seconds())), "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the server (for a test of the database going away); Start
// brings it back on the same port with its data.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

// Start starts the server again after Stop.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}

// PID is the process id of the server's postmaster (the parent of its
// backends), read from postmaster.pid; 0 when it is not running.
func (p *Postgres) PID() int {
	data, err := os.ReadFile(filepath.Join(p.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// Close stops the server and removes its files.
func (p *Postgres) Close() {
	_ = p.stop() // it may be stopped already
	os.RemoveAll(p.dir)
}

// URL returns the URL of database db as the postgres user, without TLS.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", p.Host, p.Port, db)
}

// NewDatabase creates an empty database (t_1, t_2, …) and returns its URL.
// It is dropped when the test ends, after the test's own cleanups (which
// close the stores using it) have run.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	p.dbCount++
	name := fmt.Sprintf("t_%d", p.dbCount)
	p.mu.Unlock()

	p.Exec(t, "postgres", "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections a failed test left open.
		_ = p.exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return p.URL(name)
}

// NewSchema creates an empty schema (s_1, s_2, …) in the database
// "postgres" and returns a URL whose connections use it as their
// search_path: a fresh place for a store's tables in a few milliseconds,
// where a new database costs a second of copying and fsyncing. It is dropped
// when the test ends.
func (p *Postgres) NewSchema(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	p.dbCount++
	name := fmt.Sprintf("s_%d", p.dbCount)
	p.mu.Unlock()

	p.Exec(t, "postgres", "CREATE SCHEMA "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.exec(ctx, "postgres", "DROP SCHEMA IF EXISTS "+name+" CASCADE")
	})
	return p.URL("postgres") + "&search_path=" + name
}

// EnableTLS turns TLS on with a new self-signed certificate for 127.0.0.1 and
// returns the certificate's file, to pass as sslrootcert. Connections with
// sslmode=disable keep working. The server reloads its configuration; it
// keeps TLS on until it stops.
func (p *Postgres) EnableTLS(t testing.TB) (caFile string) {
	t.Helper()
	// In the server's directory, not t.TempDir, whose parents the postgres
	// user cannot enter.
	dir, err := os.MkdirTemp(p.dir, "tls-") //nolint:usetesting // see above
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := SelfSignedCert(t, dir)
	for _, path := range []string{dir, certFile, keyFile} {
		if err := p.chown(path); err != nil {
			t.Fatal(err)
		}
	}
	// ALTER SYSTEM cannot run in a transaction: one statement at a time.
	for _, stmt := range []string{
		"ALTER SYSTEM SET ssl_cert_file = '" + certFile + "'",
		"ALTER SYSTEM SET ssl_key_file = '" + keyFile + "'",
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		p.Exec(t, "postgres", stmt)
	}
	// The postmaster rereads its configuration asynchronously.
	url := fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=verify-full&sslrootcert=%s", p.Host, p.Port, certFile)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return certFile
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS not on after reload: %v\nserver log:\n%s", err, p.logTail())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// Exec runs SQL statements in database db.
func (p *Postgres) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.exec(ctx, db, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (p *Postgres) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, p.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// run runs one of the server's programs, as the postgres user when we are
// root (PostgreSQL refuses to run as root).
func (p *Postgres) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.runAs {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

// chown gives dir to the postgres user when we are root.
func (p *Postgres) chown(dir string) error {
	if !p.runAs {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, PostgreSQL needs the user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// logTail returns the end of the server log, for error messages.
func (p *Postgres) logTail() string {
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		return err.Error()
	}
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
