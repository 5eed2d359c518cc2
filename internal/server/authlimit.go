package server

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxAuthClients bounds how many client addresses the failure limiter
// remembers, so that failures from many addresses cannot grow it without
// end. Addresses whose budget has refilled are forgotten first.
const maxAuthClients = 10000

// authLimiter slows token guessing: each client address may fail to
// authenticate perMinute times at once, and then once more every
// 60/perMinute seconds. Beyond that every request of the address answers
// 429 before its token is checked, so a guess cannot be told from a miss.
type authLimiter struct {
	perMinute int
	now       func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newAuthLimiter(perMinute int, now func() time.Time) *authLimiter {
	return &authLimiter{perMinute: perMinute, now: now, clients: map[string]*rate.Limiter{}}
}

// blocked reports how long the request's address must wait before its
// token is checked again; 0 when it may go on.
func (l *authLimiter) blocked(r *http.Request) time.Duration {
	if l.perMinute <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[clientAddr(r)]
	if !ok {
		return 0
	}
	now := l.now()
	if lim.TokensAt(now) >= 1 {
		return 0
	}
	res := lim.ReserveN(now, 1)
	defer res.CancelAt(now)
	return res.DelayFrom(now)
}

// failed records a failed authentication of the request's address.
func (l *authLimiter) failed(r *http.Request) {
	if l.perMinute <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	addr := clientAddr(r)
	lim, ok := l.clients[addr]
	if !ok {
		if !l.roomLocked() {
			return
		}
		lim = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
		l.clients[addr] = lim
	}
	lim.AllowN(l.now(), 1)
}

// roomLocked makes room for one more address by forgetting those whose
// budget has refilled. When every remembered address is still limited it
// reports false, and the new one goes untracked: the ones already slowed
// stay slowed.
func (l *authLimiter) roomLocked() bool {
	if len(l.clients) < maxAuthClients {
		return true
	}
	now := l.now()
	for addr, lim := range l.clients {
		if lim.TokensAt(now) >= float64(l.perMinute) {
			delete(l.clients, addr)
		}
	}
	return len(l.clients) < maxAuthClients
}

// clientAddr is the address of the connection's peer; an IPv6 peer counts
// as its /64, which one host usually has whole. Behind a proxy the address
// is the proxy's, and the limit is shared by everyone behind it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// retryAfter is a delay in whole seconds for a Retry-After header.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
