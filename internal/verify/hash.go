package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// hashJob is one listed object to read and hash.
type hashJob struct {
	key, sha256 string
	size        int64
	digest      string // the digest that lists it
}

// hashPool is Parallel workers hashing listed objects while the digests are
// read; jobs is bounded, so reading digests waits for hashing to keep up.
type hashPool struct {
	jobs  chan hashJob
	wg    sync.WaitGroup
	bytes counter
}

func (v *verifier) startHashers(ctx context.Context) *hashPool {
	p := &hashPool{jobs: make(chan hashJob, v.opts.Parallel)}
	for range v.opts.Parallel {
		p.wg.Go(func() {
			for j := range p.jobs {
				if ctx.Err() == nil {
					v.hash(ctx, p, j)
				}
			}
		})
	}
	return p
}

func (p *hashPool) submit(ctx context.Context, j hashJob) {
	select {
	case p.jobs <- j:
	case <-ctx.Done():
	}
}

// hash reads one object and compares its SHA-256 and size with what its
// digest says.
func (v *verifier) hash(ctx context.Context, p *hashPool, j hashJob) {
	out, err := v.opts.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.opts.Bucket, Key: &j.key})
	if err != nil {
		if isNotFound(err) {
			v.problem(Problem{Kind: KindObjectMissing, Key: j.key, Digest: j.digest, Message: fmt.Sprintf(
				"object %s missing, listed by digest %s", j.key, j.digest)})
			return
		}
		v.fail(v.requestError("GetObject", j.key, err))
		return
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		v.fail(fmt.Errorf("reading s3://%s/%s: %w", v.opts.Bucket, j.key, err))
		return
	}
	p.bytes.Add(n)
	if got := hex.EncodeToString(h.Sum(nil)); got != j.sha256 || n != j.size {
		msg := fmt.Sprintf("object %s modified: SHA-256 %s, digest %s says %s", j.key, got, j.digest, j.sha256)
		if n != j.size {
			msg += fmt.Sprintf("; %d bytes, the digest says %d", n, j.size)
		}
		v.problem(Problem{Kind: KindObjectModified, Key: j.key, Digest: j.digest, Message: msg})
	}
}
