package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditexport/auditexport/internal/api"
)

// eventNames are the event types, with how often each occurs (in tenths).
var eventNames = []struct {
	name   string
	weight int
}{{"user.login", 6}, {"user.logout", 3}, {"role.granted", 1}}

// userAgents vary the events so they compress like real ones rather than
// like copies of one line.
var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"terraform-provider-acme/2.4.1 (+https://www.terraform.io) Terraform/1.11.4",
	"acme-cli/3.2.0 go1.26 linux/amd64",
}

// words pad events that must be larger than the natural ~400 bytes.
var words = []string{"policy", "member", "invite", "session", "token", "scope", "rotated",
	"granted", "revoked", "project", "billing", "export", "webhook", "sso", "mfa", "device"}

// eventGen builds audit events shaped like a SaaS platform's: actor, target,
// request context, outcome. The messageId is a random UUID, as platforms
// send them, so the store's duplicate check sees realistic keys.
type eventGen struct {
	rng  *rand.Rand
	size int // target size in bytes; 0 is the natural ~400
}

// newEventGen returns a generator; generators with different seeds produce
// different messageIds.
func newEventGen(seed uint64, size int) *eventGen {
	return &eventGen{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), size: size}
}

// appendEvent appends one event (a JSON object, no newline).
func (g *eventGen) appendEvent(b []byte, now time.Time) []byte {
	start := len(b)
	user, org := g.rng.IntN(20000), g.rng.IntN(500)
	b = append(b, `{"timestamp":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","eventName":"`...)
	b = append(b, g.name()...)
	b = append(b, `","messageId":"`...)
	b = g.appendUUID(b)
	b = append(b, `","actor":{"id":"usr_`...)
	b = appendPadded(b, int64(user), 6)
	b = append(b, `","email":"user`...)
	b = appendPadded(b, int64(user), 6)
	b = append(b, `@example.com","type":"user"},"target":{"id":"org_`...)
	b = appendPadded(b, int64(org), 4)
	b = append(b, `","type":"organization"},"context":{"ip":"10.`...)
	for i := range 3 {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(g.rng.IntN(256)), 10)
	}
	b = append(b, `","userAgent":"`...)
	b = append(b, userAgents[g.rng.IntN(len(userAgents))]...)
	b = append(b, `","requestId":"req_`...)
	b = strconv.AppendUint(b, uint64(g.rng.Uint32()), 36)
	b = append(b, `"},"outcome":"success","version":2`...)
	if pad := g.size - (len(b) - start) - len(`,"details":""}`); pad > 0 {
		b = append(b, `,"details":"`...)
		for n := 0; n < pad; {
			w := words[g.rng.IntN(len(words))]
			if n > 0 {
				b = append(b, ' ')
				n++
			}
			if rest := pad - n; len(w) > rest {
				w = w[:rest]
			}
			b = append(b, w...)
			n += len(w)
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendUUID appends a random (version 4) UUID.
func (g *eventGen) appendUUID(b []byte) []byte {
	const hex = "0123456789abcdef"
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], g.rng.Uint64())
	binary.LittleEndian.PutUint64(u[8:], g.rng.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0x0f])
	}
	return b
}

func (g *eventGen) name() string {
	r := g.rng.IntN(10)
	for _, n := range eventNames {
		if r < n.weight {
			return n.name
		}
		r -= n.weight
	}
	return eventNames[0].name
}

// appendPadded appends v zero-padded to width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var digits [20]byte
	s := strconv.AppendInt(digits[:0], v, 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ingestResult is one ingest run.
type ingestResult struct {
	events   int64
	bytes    int64 // NDJSON bytes posted, newlines included
	requests int
	batch    int
	clients  int
	elapsed  time.Duration
	latency  []time.Duration // per request, sorted
	// cpu is what the agent, the clients (the bench process) and the rest
	// of the machine used during the run.
	cpu cpuUse
}

func (r ingestResult) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }
func (r ingestResult) mbPerSec() float64     { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }

// percentile returns the p-th percentile (0 < p <= 1) of sorted durations,
// by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// runIngest posts total events for tenant from clients concurrent clients, in
// requests of batch events, and checks every event was stored (a 2xx from
// the agent means durable). Events are built while the run goes on, by the
// clients, as a platform would. Each batch has its own generator, seeded
// with seed and the batch's index: runs with the same seed post the same
// events (but for their timestamps), whichever client sends which batch.
func runIngest(ctx context.Context, c *api.Client, tenant string, total int64, batch, clients int,
	seed uint64, size int, p pids, report func(done int64)) (ingestResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := ingestResult{batch: batch, clients: clients}
	batches := (total + int64(batch) - 1) / int64(batch)
	var (
		next, done, posted atomic.Int64
		mu                 sync.Mutex
		firstErr           error
		wg                 sync.WaitGroup
	)
	lat := make([][]time.Duration, clients)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	meter, start := startCPU(p), time.Now()
	for w := range clients {
		wg.Go(func() {
			var body []byte
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= batches {
					return
				}
				first := i * int64(batch)
				n := min(int64(batch), total-first)
				gen := newEventGen(seed<<40+uint64(i), size)
				body = body[:0]
				now := time.Now()
				for range n {
					body = gen.appendEvent(body, now)
					body = append(body, '\n')
				}
				t := time.Now()
				out, err := c.PostEvents(ctx, tenant, body)
				d := time.Since(t)
				if err != nil {
					fail(fmt.Errorf("posting events %d-%d: %w", first, first+n-1, err))
					return
				}
				if int64(out.Stored) != n {
					fail(fmt.Errorf("the agent stored %d of %d events (%d duplicates)", out.Stored, n, out.Duplicates))
					return
				}
				lat[w] = append(lat[w], d)
				posted.Add(int64(len(body)))
				if report != nil {
					report(done.Add(n))
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.cpu = meter.stop()
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.events, res.bytes = total, posted.Load()
	for _, l := range lat {
		res.latency = append(res.latency, l...)
	}
	slices.Sort(res.latency)
	res.requests = len(res.latency)
	if int64(res.requests) != batches {
		return res, errors.New("some requests were not sent")
	}
	return res, nil
}

// progressEvery returns a report function for runIngest that prints progress
// at most once per interval.
func progressEvery(what string, total int64, interval time.Duration) func(int64) {
	var mu sync.Mutex
	last := time.Now()
	return func(done int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < interval {
			return
		}
		last = time.Now()
		progress("%s: %s of %s events", what, count(done), count(total))
	}
}
