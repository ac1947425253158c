package mitoken

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mitoken/mitoken/internal/clock"
	"github.com/mitoken/mitoken/internal/wire"
)

// Cache holds the tokens of the credentials that use it. By default every
// credential in a process shares one Cache, so building many credentials for
// the same identity still sends one request per resource and refresh; pass
// WithCache(NewCache()) to isolate a credential. A Cache is safe for
// concurrent use.
//
// A cached token is returned until its RefreshOn without locks or
// allocations. Between RefreshOn and expiry, callers still get it at once
// while one background request renews it. Concurrent callers that find no
// usable token share one request. A failed background refresh keeps the old
// token and tries again after a backoff; a request that failed with 429 or
// 5xx is not repeated for a few seconds, and callers in that time get the
// same error.
type Cache struct {
	clock  clock.Clock
	jitter func(max time.Duration) time.Duration

	mu     sync.Mutex
	scopes map[scopeKey]*scope

	flights singleflight.Group
	running sync.WaitGroup // flights and background refreshes under way
}

// NewCache returns an empty cache.
func NewCache() *Cache { return newCache(clock.Real{}) }

func newCache(clk clock.Clock) *Cache {
	return &Cache{
		clock:  clk,
		jitter: randomJitter,
		scopes: make(map[scopeKey]*scope),
	}
}

var defaultCache = NewCache()

// Cache timing. Tokens from Entra live one to twenty-four hours; IMDS and App
// Service hand out the same token until shortly before its expiry.
const (
	// longLived tokens refresh at half-life; shorter ones refreshWindow
	// before expiry, but not before half-life.
	longLived     = 2 * time.Hour
	refreshWindow = 5 * time.Minute
	// maxJitter bounds how much earlier than computed a refresh may start;
	// the jitter is also at most a twentieth of the token's lifetime and a
	// tenth of the time until the refresh is due.
	maxJitter = 5 * time.Minute
	// expiryMargin: a token this close to expiry is not handed out (a caller
	// could not use it before it lapsed). At most a quarter of the lifetime.
	expiryMargin = 30 * time.Second
	// missBackoff: after a miss that failed with 429 or 5xx, callers get the
	// same error for this long without a new request.
	missBackoff = 5 * time.Second
	// refreshBackoff doubles after each failed background refresh, up to
	// maxRefreshBackoff.
	refreshBackoff    = 30 * time.Second
	maxRefreshBackoff = 5 * time.Minute
	// defaultFetchTimeout bounds one token request, retries included, once it
	// runs detached from its callers. The IMDS schedule retries for up to about
	// 100 s.
	defaultFetchTimeout = 2 * time.Minute
)

func randomJitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

// scopeKey is everything a token depends on except the resource.
type scopeKey struct {
	source, endpoint string
	id               identity
}

// scope holds the tokens of one identity at one endpoint.
type scope struct {
	cache *Cache
	key   scopeKey
	mu    sync.Mutex                       // serializes writers of cells
	cells atomic.Pointer[map[string]*cell] // copy-on-write: readers never lock
	first atomic.Pointer[cell]             // the first resource asked for, checked before the map
}

// cell holds the token for one resource of a scope.
type cell struct {
	resource   string
	flightKey  string
	entry      atomic.Pointer[entry]
	failed     atomic.Pointer[failure]
	refreshing atomic.Bool
}

// entry is immutable once stored.
type entry struct {
	tok       Token
	refreshAt time.Time // background refresh starts here (RefreshOn, or later after a failure)
	staleAt   time.Time // from here on, callers wait for a new token
	failures  int       // consecutive failed background refreshes
}

type failure struct {
	err   error
	until time.Time
}

// fetcher is what a source gives the cache: one token request, retries
// included. It is called on a context detached from the callers.
type fetcher func(ctx context.Context, resource string) (wire.Token, error)

func (c *Cache) scope(key scopeKey) *scope {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.scopes[key]
	if s == nil {
		s = &scope{cache: c, key: key}
		c.scopes[key] = s
	}
	return s
}

func (s *scope) lookup(resource string) *cell {
	// Most credentials ask for one resource: compare it before hashing.
	if one := s.first.Load(); one != nil && one.resource == resource {
		return one
	}
	if m := s.cells.Load(); m != nil {
		return (*m)[resource]
	}
	return nil
}

func (s *scope) cellFor(resource string) *cell {
	if cl := s.lookup(resource); cl != nil {
		return cl
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cells.Load()
	if old != nil {
		if cl := (*old)[resource]; cl != nil {
			return cl
		}
	}
	m := make(map[string]*cell, 1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	cl := &cell{resource: resource, flightKey: s.key.source + "\x00" + s.key.endpoint + "\x00" + s.key.id.describe() + "\x00" + resource}
	m[resource] = cl
	s.cells.Store(&m)
	if old == nil {
		s.first.Store(cl)
	}
	return cl
}

// hit returns the cached token for resource when it is still good, starting
// a background refresh when it is due. It never blocks and, when no refresh
// is due, never allocates.
func (b *base) hit(resource string) (Token, bool) {
	cl := b.scope.lookup(resource)
	if cl == nil {
		return Token{}, false
	}
	e := cl.entry.Load()
	if e == nil {
		return Token{}, false
	}
	now := b.scope.cache.clock.Now()
	if now.Before(e.refreshAt) {
		return e.tok, true
	}
	if now.Before(e.staleAt) {
		b.refreshInBackground(cl, resource)
		return e.tok, true
	}
	return Token{}, false
}

type flightResult struct {
	tok Token
	err error
}

// miss waits for a token from the shared request for resource, starting one
// if none is under way. The caller stops waiting when ctx ends; the request
// goes on and its token is cached for the next caller.
func (b *base) miss(ctx context.Context, resource string) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	c := b.scope.cache
	cl := b.scope.cellFor(resource)
	if tok, ok := b.hit(resource); ok { // filled while we were getting here
		return tok, nil
	}
	if f := cl.failed.Load(); f != nil && c.clock.Now().Before(f.until) {
		return Token{}, f.err
	}
	if !b.life.enter() {
		return Token{}, ErrClosed
	}
	done := make(chan flightResult, 1)
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		defer b.life.exit()
		tok, err := b.shared(ctx, cl, resource, false)
		done <- flightResult{tok, err}
	}()
	select {
	case r := <-done:
		return r.tok, r.err
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

// shared joins the request for cl under way, or starts one, and waits for
// its result. It stops waiting, with ErrClosed, when the credential is
// closed: a request another credential started goes on without it.
func (b *base) shared(parent context.Context, cl *cell, resource string, background bool) (Token, error) {
	for try := 0; ; try++ {
		ch := b.scope.cache.flights.DoChan(cl.flightKey, b.flight(parent, cl, resource, background))
		select {
		case r := <-ch:
			if errors.Is(r.Err, ErrClosed) && !b.life.isClosed() && try < 3 {
				continue // another credential's request, cancelled by its Close
			}
			tok, _ := r.Val.(Token)
			return tok, r.Err
		case <-b.life.done():
			return Token{}, ErrClosed
		}
	}
}

func (b *base) refreshInBackground(cl *cell, resource string) {
	if !cl.refreshing.CompareAndSwap(false, true) {
		return
	}
	if !b.life.enter() {
		cl.refreshing.Store(false)
		return
	}
	c := b.scope.cache
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		defer b.life.exit()
		defer cl.refreshing.Store(false)
		_, err := b.shared(context.Background(), cl, resource, true)
		if err != nil && !errors.Is(err, ErrClosed) {
			b.backOffRefresh(cl, err)
		}
	}()
}

// backOffRefresh keeps the current token after a failed background refresh
// and pushes the next attempt out.
func (b *base) backOffRefresh(cl *cell, err error) {
	now := b.scope.cache.clock.Now()
	for {
		e := cl.entry.Load()
		if e == nil || !now.Before(e.staleAt) || now.Before(e.refreshAt) {
			return // gone, expired, or already renewed by someone else
		}
		wait := refreshBackoff << min(e.failures, 8)
		if wait > maxRefreshBackoff {
			wait = maxRefreshBackoff
		}
		next := *e
		next.failures++
		next.refreshAt = now.Add(wait).Round(0)
		if cl.entry.CompareAndSwap(e, &next) {
			b.logger.Warn("mitoken: background token refresh failed; keeping the current token",
				slog.String("source", b.source), slog.String("resource", e.tok.Resource),
				slog.Duration("retry_in", wait), slog.Time("expires_on", e.tok.ExpiresOn),
				slog.String("error", err.Error()))
			return
		}
	}
}

// flight returns the function the shared request runs. It runs on a context
// detached from the callers, with its own deadline, and never lets a panic
// escape.
func (b *base) flight(parent context.Context, cl *cell, resource string, background bool) func() (any, error) {
	return func() (v any, err error) {
		defer func() {
			if r := recover(); r != nil {
				v, err = nil, &panicError{source: b.source}
				b.logger.Info("mitoken: token request failed", slog.String("source", b.source),
					slog.String("resource", resource), slog.Bool("background", background),
					slog.String("error", err.Error()))
			}
		}()
		c := b.scope.cache
		// Another flight may have finished between the caller's check and ours.
		if e := cl.entry.Load(); e != nil {
			now := c.clock.Now()
			if now.Before(e.refreshAt) || (!background && now.Before(e.staleAt)) {
				return e.tok, nil
			}
		}
		// Close waits for this request and cancels it.
		if !b.life.enter() {
			return nil, ErrClosed
		}
		defer b.life.exit()
		c.running.Add(1)
		defer c.running.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), b.fetchTimeout)
		defer cancel()
		if b.life != nil {
			defer context.AfterFunc(b.life.ctx, cancel)()
		}
		wt, err := b.fetch(ctx, resource)
		now := c.clock.Now()
		if err != nil {
			switch {
			case b.life.isClosed():
				err = ErrClosed
			case ctx.Err() != nil && !errors.Is(err, ErrUnavailable):
				err = &timeoutError{source: b.source, after: b.fetchTimeout, err: err}
			}
			if worthBackoff(err) {
				cl.failed.Store(&failure{err: err, until: now.Add(missBackoff)})
			}
			b.logger.Info("mitoken: token request failed", slog.String("source", b.source),
				slog.String("resource", resource), slog.Bool("background", background),
				slog.String("error", err.Error()))
			return nil, err
		}
		e := c.newEntry(wt, resource, now)
		cl.entry.Store(e)
		cl.failed.Store(nil)
		b.logger.Info("mitoken: token acquired", slog.String("source", b.source),
			slog.String("resource", e.tok.Resource), slog.Bool("background", background),
			slog.Time("expires_on", e.tok.ExpiresOn), slog.Time("refresh_on", e.tok.RefreshOn))
		return e.tok, nil
	}
}

// lifecycle is what Close ends: the requests and background refreshes a
// credential started. A nil *lifecycle (a bare base in tests) never closes.
type lifecycle struct {
	closed atomic.Bool
	mu     sync.Mutex // orders enter against close
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newLifecycle() *lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	return &lifecycle{ctx: ctx, cancel: cancel}
}

func (l *lifecycle) isClosed() bool { return l != nil && l.closed.Load() }

// enter counts one goroutine or request of the credential, or reports false
// when the credential is closed. Every successful enter needs an exit.
func (l *lifecycle) enter() bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *lifecycle) exit() {
	if l != nil {
		l.wg.Done()
	}
}

// done is closed when the credential is closed; nil (never) for a nil l.
func (l *lifecycle) done() <-chan struct{} {
	if l == nil {
		return nil
	}
	return l.ctx.Done()
}

// close refuses new work, cancels the work under way and waits for it.
func (l *lifecycle) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed.Store(true)
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
}

// worthBackoff reports whether a failed request should not be repeated at
// once: the endpoint said it was throttling (429) or failing (5xx).
func worthBackoff(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500)
}

// newEntry computes when a fresh token should be refreshed and when it is
// too close to expiry to hand out.
func (c *Cache) newEntry(wt wire.Token, resource string, now time.Time) *entry {
	now = now.Round(0) // compare on the wall clock: expiry is a wall-clock fact
	exp := wt.ExpiresOn.Round(0)
	life := exp.Sub(now)
	margin := min(expiryMargin, life/4)
	var refresh time.Time
	switch {
	case wt.RefreshIn > 0:
		refresh = now.Add(wt.RefreshIn)
	case life >= longLived:
		refresh = now.Add(life / 2)
	default:
		refresh = exp.Add(-refreshWindow)
		if half := now.Add(life / 2); refresh.Before(half) {
			refresh = half
		}
	}
	refresh = refresh.Add(-c.jitter(jitterBound(life, refresh.Sub(now))))
	if stale := exp.Add(-margin); refresh.After(stale) {
		refresh = stale
	}
	if refresh.Before(now) {
		refresh = now
	}
	res := wt.Resource
	if res == "" {
		res = resource
	}
	return &entry{
		tok: Token{
			AccessToken: wt.AccessToken,
			TokenType:   wt.TokenType,
			ExpiresOn:   exp,
			RefreshOn:   refresh,
			Resource:    res,
			ClientID:    wt.ClientID,
		},
		refreshAt: refresh,
		staleAt:   exp.Add(-margin),
	}
}

// jitterBound is the most a refresh due after wait is moved earlier for a
// token of lifetime life: a twentieth of the lifetime and a tenth of the wait
// (so a short refresh_in is not jittered into an immediate refresh), at most
// maxJitter.
func jitterBound(life, wait time.Duration) time.Duration { return min(life/20, wait/10, maxJitter) }

// timeoutError reports a token request that ran out of its own time.
type timeoutError struct {
	source string
	after  time.Duration
	err    error
}

func (e *timeoutError) Error() string {
	return "mitoken: " + e.source + ": token request gave up after " + e.after.String() + ": " + e.err.Error()
}

func (e *timeoutError) Unwrap() error { return e.err }

// invalidate drops the cached token for resource if it is still the one
// whose access token is accessToken, so the next GetToken fetches a new one.
// A newer token, fetched meanwhile by another caller, is left alone.
func (b *base) invalidate(resource, accessToken string) bool {
	resource = strings.TrimSuffix(resource, "/.default")
	cl := b.scope.lookup(resource)
	if cl == nil {
		return false
	}
	e := cl.entry.Load()
	if e == nil || e.tok.AccessToken != accessToken {
		return false
	}
	return cl.entry.CompareAndSwap(e, nil)
}
