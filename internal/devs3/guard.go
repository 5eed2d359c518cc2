package devs3

import (
	"encoding/xml"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
)

// writeGuard makes If-None-Match: * hold for every request that creates an
// object. gofakes3 checks the header on PutObject only, and the agent sends
// it on CompleteMultipartUpload as well. Every object write takes a lock for
// its key, so the existence check and the write that follows it cannot
// interleave with another write of the same key.
type writeGuard struct {
	backend gofakes3.Backend
	next    http.Handler
	// Writes to different keys rarely share a stripe, and a fixed set keeps
	// memory bounded however many keys are written.
	locks [64]sync.Mutex
}

func newWriteGuard(backend gofakes3.Backend, next http.Handler) *writeGuard {
	return &writeGuard{backend: backend, next: next}
}

func (g *writeGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, ok := objectWrite(r)
	if !ok {
		g.next.ServeHTTP(w, r)
		return
	}

	mu := g.lock(bucket, key)
	mu.Lock()
	defer mu.Unlock()

	if r.Header.Get("If-None-Match") == "*" && g.exists(bucket, key) {
		// Read the body the client is still sending, so that it sees the
		// 412 rather than a connection reset mid-upload.
		_, _ = io.Copy(io.Discard, r.Body)
		writeError(w, http.StatusPreconditionFailed, s3Error{
			Code:      string(gofakes3.ErrPreconditionFailed),
			Message:   "At least one of the pre-conditions you specified did not hold",
			Condition: "If-None-Match",
			Resource:  "/" + bucket + "/" + key,
		})
		return
	}
	g.next.ServeHTTP(w, r)
}

// objectWrite reports whether r creates or replaces an object, and which.
// Uploading a part does not: the object appears only on completion.
func objectWrite(r *http.Request) (bucket, key string, ok bool) {
	bucket, key, found := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !found || bucket == "" || key == "" {
		return "", "", false
	}
	_, upload := r.URL.Query()["uploadId"]
	switch {
	case r.Method == http.MethodPut && !upload:
		return bucket, key, true
	case r.Method == http.MethodPost && upload:
		return bucket, key, true
	}
	return "", "", false
}

func (g *writeGuard) lock(bucket, key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return &g.locks[h.Sum32()%uint32(len(g.locks))]
}

// exists reports whether the object is there. Any other outcome, such as a
// missing bucket, is left for gofakes3 to answer.
func (g *writeGuard) exists(bucket, key string) bool {
	_, err := g.backend.HeadObject(bucket, key)
	return err == nil
}

// s3Error is the XML body of an S3 error response.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	Condition string `xml:",omitempty"`
	Resource  string `xml:",omitempty"`
}

func writeError(w http.ResponseWriter, status int, e s3Error) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(e)
}
