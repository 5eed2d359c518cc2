// Package devs3 runs a throw-away S3-compatible server on loopback, so that
// `auditexport-agent dev` and the tests can deliver objects without an AWS
// account.
//
// Objects are plain files under the server's directory, one folder per
// bucket (see BucketDir), so a user can browse what the agent wrote with ls
// and zcat. The server is built on gofakes3 with its filesystem backend and
// adds what the agent relies on and gofakes3 lacks:
//
//   - If-None-Match: * is honoured on PutObject, CopyObject and
//     CompleteMultipartUpload, atomically, with a 412 PreconditionFailed.
//   - aws-chunked request bodies (the SDK's trailing checksums over HTTPS,
//     signed or unsigned) are decoded; checksums and signatures are not
//     checked.
//   - Every response carries x-amz-bucket-region: us-east-1, which the SDK
//     reads to discover a bucket's region.
//   - The same endpoint answers STS AssumeRole (the Query API) for the roles
//     added with AddRole, each trusting one external id, so that the agent
//     can take the cross-account role path a customer's Terraform sets up.
//     A wrong or missing external id, or an unknown role, is refused with
//     AccessDenied as AWS refuses it. S3 requests signed with the temporary
//     credentials it issued are accepted; a session token it did not issue,
//     or one that has expired, is refused.
//
// Clients must use path-style addressing (s3.Options.UsePathStyle) and
// region us-east-1; any static credentials are accepted. Signatures are not
// checked: listen on loopback only.
//
// Because objects are files, a key cannot be both an object and a prefix of
// another key's folder ("a" and "a/b"); the agent's key layout never does
// that.
package devs3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"

	"github.com/auditexport/auditexport/internal/clock"
)

// Region is the region every bucket of the server reports.
const Region = "us-east-1"

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Server is a running S3-compatible server. Create one with Start.
type Server struct {
	root      string // holds buckets/ and metadata/
	removeDir bool   // root was created by Start and is removed by Close
	backend   gofakes3.Backend
	sts       *stsService
	listener  net.Listener
	http      *http.Server
	done      chan struct{} // closed when Serve returns

	closeOnce sync.Once
	closeErr  error
}

// Start serves S3 on addr (such as "127.0.0.1:0" for a free port) with
// objects stored under dir, until ctx is done or Close is called. An existing
// dir keeps its buckets and objects from an earlier run. An empty dir means
// a new temporary directory that Close removes.
func Start(ctx context.Context, dir, addr string) (*Server, error) {
	return start(ctx, dir, addr, clock.Real{})
}

// start is Start with the clock that session expiry is measured on.
func start(ctx context.Context, dir, addr string, c clock.Clock) (*Server, error) {
	s := &Server{root: dir, sts: newSTS(c), done: make(chan struct{})}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "auditexport-devs3-")
		if err != nil {
			return nil, fmt.Errorf("creating a directory for the dev S3 server: %w", err)
		}
		s.root, s.removeDir = tmp, true
	}
	if err := s.listen(ctx, addr); err != nil {
		_ = s.removeRoot()
		return nil, err
	}

	go s.serve()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// listen opens the backend and the listener.
func (s *Server) listen(ctx context.Context, addr string) error {
	fs, err := s3afero.FsPath(s.root, s3afero.FsPathCreateAll)
	if err != nil {
		return fmt.Errorf("opening dev S3 directory %s: %w", s.root, err)
	}
	backend, err := s3afero.MultiBucket(fs)
	if err != nil {
		return fmt.Errorf("opening dev S3 directory %s: %w", s.root, err)
	}
	s.backend = backend

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dev S3 server: %w", err)
	}
	s.listener = ln
	var fresh freshConns
	s.http = &http.Server{
		Handler:           newHandler(backend, s.sts),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         fresh.track,
	}
	s.http.RegisterOnShutdown(fresh.closeAll)
	return nil
}

// freshConns tracks connections that have not sent a request yet. Shutdown
// treats such a connection as busy for its first five seconds, and HTTP
// clients often open one they end up not using, so without closing them
// Close would wait for nothing.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state != http.StateNew {
		delete(f.conns, c)
		return
	}
	if f.conns == nil {
		f.conns = make(map[net.Conn]struct{})
	}
	f.conns[c] = struct{}{}
}

// closeAll runs once Shutdown has closed the listener, so no new
// connection can arrive behind it.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (s *Server) serve() {
	defer close(s.done)
	// Serve always returns an error; http.ErrServerClosed is the normal end
	// and anything else leaves nothing to serve either.
	_ = s.http.Serve(s.listener)
}

// newHandler wraps gofakes3 with the behaviour the agent relies on and puts
// STS beside it. The chunk decoder runs before the write guard so that a
// rejected upload's body is drained as the client sent it.
func newHandler(backend gofakes3.Backend, svc *stsService) http.Handler {
	fake := gofakes3.New(backend)
	h := http.Handler(newWriteGuard(backend, fake.Server()))
	h = decodeChunked(h)
	h = svc.checkSessions(h)
	h = withRegion(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isSTSRequest(r) {
			svc.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withRegion adds the region header that real S3 sends on HeadBucket; the
// SDK and the agent's connection test use it to find a bucket's region.
func withRegion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amz-bucket-region", Region)
		next.ServeHTTP(w, r)
	})
}

// URL is the server's endpoint, such as "http://127.0.0.1:40123", for
// s3.Options.BaseEndpoint and sts.Options.BaseEndpoint alike.
func (s *Server) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP
	// A wildcard listener is reachable on loopback; the wildcard itself is
	// not a usable destination address on every system.
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(host.String(), fmt.Sprint(addr.Port))
}

// BucketDir is the directory that holds the objects of bucket name, each
// stored as a file at its key.
func (s *Server) BucketDir(name string) string {
	return filepath.Join(s.root, "buckets", name)
}

// CreateBucket creates bucket name, or does nothing if it already exists, so
// that a dev server restarted on the same directory keeps its bucket.
func (s *Server) CreateBucket(name string) error {
	if err := gofakes3.ValidateBucketName(name); err != nil {
		return fmt.Errorf("bucket name %q: %w", name, err)
	}
	err := s.backend.CreateBucket(name)
	if err != nil && !gofakes3.IsAlreadyExists(err) {
		return fmt.Errorf("creating bucket %q: %w", name, err)
	}
	return nil
}

// AddRole lets callers of STS AssumeRole assume roleARN (such as
// arn:aws:iam::000000000000:role/dev) when they pass externalID, as a role
// whose trust policy has the sts:ExternalId condition does. Adding a role
// again replaces its external id.
func (s *Server) AddRole(roleARN, externalID string) error {
	return s.sts.addRole(roleARN, externalID)
}

// Close stops the server, waiting a few seconds for requests in flight, and
// removes the directory if Start created it. It is safe to call more than
// once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := s.http.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = s.http.Close()
		}
		<-s.done
		s.closeErr = errors.Join(err, s.removeRoot())
	})
	return s.closeErr
}

func (s *Server) removeRoot() error {
	if !s.removeDir {
		return nil
	}
	return os.RemoveAll(s.root)
}
