package mitoken

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/clock"
	"github.com/mitoken/mitoken/internal/wire"
)

const res = "https://vault.azure.net"

func TestCacheHitReturnsCachedTokenWithoutFetching(t *testing.T) {
	src := &fakeSource{}
	b, _ := newTestBase(t, src)
	ctx := context.Background()

	first, err := b.getToken(ctx, res)
	require.NoError(t, err)
	second, err := b.getToken(ctx, res+"/.default")
	require.NoError(t, err)

	assert.Equal(t, first, second)
	assert.Equal(t, "tok-A", second.AccessToken)
	assert.EqualValues(t, 1, src.calls.Load())
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := b.getToken(ctx, res); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "a cache hit must not allocate")
}

func TestCacheKeysByResourceAndScope(t *testing.T) {
	src := &fakeSource{}
	b, c := newTestBase(t, src)
	other := *b
	other.scope = c.scope(scopeKey{source: "test", endpoint: "mem", id: identity{kind: byClientID, value: "x"}})
	ctx := context.Background()

	_, err := b.getToken(ctx, res)
	require.NoError(t, err)
	_, err = b.getToken(ctx, "https://management.azure.com")
	require.NoError(t, err)
	_, err = other.getToken(ctx, res)
	require.NoError(t, err)
	assert.EqualValues(t, 3, src.calls.Load(), "each (identity, resource) pair needs its own token")

	same := *b // a second credential for the same key shares the cache
	same.scope = c.scope(scopeKey{source: "test", endpoint: "mem"})
	_, err = same.getToken(ctx, res)
	require.NoError(t, err)
	assert.EqualValues(t, 3, src.calls.Load())
}

func TestCacheCollapsesConcurrentColdCallers(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{}), started: make(chan struct{}, 10)}
	b, _ := newTestBase(t, src)

	const callers = 1000
	var wg sync.WaitGroup
	toks := make([]Token, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = b.getToken(context.Background(), res)
		}()
	}
	<-src.started // the one request is under way; release it
	close(src.gate)
	wg.Wait()

	assert.EqualValues(t, 1, src.calls.Load(), "1,000 cold callers must share one request")
	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, "tok-A", toks[i].AccessToken)
	}
}

func TestCacheRefreshesInBackgroundAfterRefreshOn(t *testing.T) {
	src := &fakeSource{}
	b, c := newTestBase(t, src)
	old, err := b.getToken(context.Background(), res)
	require.NoError(t, err)

	// One hour token: refresh due 5 min before expiry.
	assert.Equal(t, epoch.Add(55*time.Minute), old.RefreshOn)
	src.clk.Set(old.RefreshOn.Add(time.Second))
	src.gate = make(chan struct{})
	src.started = make(chan struct{}, 1)

	// While the background request is held, every caller gets the old token at once.
	for range 100 {
		tok, err := b.getToken(context.Background(), res)
		require.NoError(t, err)
		assert.Equal(t, "tok-A", tok.AccessToken)
	}
	<-src.started
	close(src.gate)
	c.running.Wait()

	assert.EqualValues(t, 2, src.calls.Load(), "exactly one background request")
	tok, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-B", tok.AccessToken)
	assert.EqualValues(t, 2, src.calls.Load())
}

func TestCacheBlocksForExpiredToken(t *testing.T) {
	src := &fakeSource{}
	b, _ := newTestBase(t, src)
	old, err := b.getToken(context.Background(), res)
	require.NoError(t, err)

	src.clk.Set(old.ExpiresOn.Add(-expiryMargin)) // inside the safety margin: no longer handed out
	tok, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-B", tok.AccessToken)
	assert.EqualValues(t, 2, src.calls.Load())
}

func TestCacheCancelledCallerReturnsWhileOthersGetToken(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	b, _ := newTestBase(t, src)

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := b.getToken(ctx, res)
		cancelled <- err
	}()
	<-src.started

	var wg sync.WaitGroup
	results := make([]Token, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := b.getToken(context.Background(), res)
			assert.NoError(t, err)
			results[i] = tok
		}()
	}

	cancel()
	select {
	case err := <-cancelled:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled caller must return while the request is still under way")
	}

	src.mu.Lock()
	fetchCtx := src.lastCtx
	src.mu.Unlock()
	assert.NoError(t, fetchCtx.Err(), "the shared request must not be cancelled with its first caller")
	deadline, ok := fetchCtx.Deadline()
	assert.True(t, ok, "the shared request has its own deadline")
	assert.WithinDuration(t, time.Now().Add(time.Minute), deadline, 10*time.Second)

	close(src.gate)
	wg.Wait()
	for _, tok := range results {
		assert.Equal(t, "tok-A", tok.AccessToken)
	}
	assert.EqualValues(t, 1, src.calls.Load())
}

func TestCacheAbandonedRequestStillFillsCache(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	b, c := newTestBase(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.getToken(ctx, res); done <- err }()
	<-src.started
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	close(src.gate)
	c.running.Wait()

	tok, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-A", tok.AccessToken)
	assert.EqualValues(t, 1, src.calls.Load())
}

func TestCacheAlreadyCancelledContext(t *testing.T) {
	src := &fakeSource{}
	b, _ := newTestBase(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.getToken(ctx, res)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, src.calls.Load())
}

func TestCacheMissFailureBackoff(t *testing.T) {
	throttled := &ResponseError{Source: "test", StatusCode: http.StatusTooManyRequests, Attempts: 7}
	for _, tc := range []struct {
		name       string
		err        error
		backsOff   bool
		wantErrIs  error
		wantErrStr string
	}{
		{name: "429 is not repeated within the backoff", err: throttled, backsOff: true},
		{name: "503 is not repeated within the backoff", err: &ResponseError{Source: "test", StatusCode: 503, Attempts: 7}, backsOff: true},
		{name: "400 is asked again at once", err: &ResponseError{Source: "test", StatusCode: 400, Attempts: 1}},
		{name: "unavailable is asked again at once", err: unavailable("test", "nothing here", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{errs: []error{tc.err}}
			b, _ := newTestBase(t, src)

			_, err := b.getToken(context.Background(), res)
			require.Same(t, tc.err, err)

			_, err2 := b.getToken(context.Background(), res)
			if tc.backsOff {
				assert.Same(t, tc.err, err2, "callers within the backoff get the same error")
				assert.EqualValues(t, 1, src.calls.Load(), "no new request within the backoff")
				src.clk.Advance(missBackoff)
				tok, err := b.getToken(context.Background(), res)
				require.NoError(t, err)
				assert.Equal(t, "tok-B", tok.AccessToken)
				assert.EqualValues(t, 2, src.calls.Load())
			} else {
				require.NoError(t, err2, "errors are never cached")
				assert.EqualValues(t, 2, src.calls.Load())
			}
		})
	}
}

func TestCacheFailedBackgroundRefreshKeepsTokenAndBacksOff(t *testing.T) {
	src := &fakeSource{}
	b, c := newTestBase(t, src)
	old, err := b.getToken(context.Background(), res)
	require.NoError(t, err)

	src.errs = []error{&ResponseError{Source: "test", StatusCode: 500, Attempts: 7}, &ResponseError{Source: "test", StatusCode: 500, Attempts: 7}}
	src.clk.Set(old.RefreshOn)
	tok, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-A", tok.AccessToken)
	c.running.Wait()
	assert.EqualValues(t, 2, src.calls.Load())

	// Within the backoff, no new background request, and the old token is served.
	src.clk.Advance(refreshBackoff - time.Second)
	tok, err = b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-A", tok.AccessToken)
	c.running.Wait()
	assert.EqualValues(t, 2, src.calls.Load())

	// After it, one more try, which fails again: the backoff doubles.
	src.clk.Advance(time.Second)
	_, err = b.getToken(context.Background(), res)
	require.NoError(t, err)
	c.running.Wait()
	assert.EqualValues(t, 3, src.calls.Load())
	src.clk.Advance(2*refreshBackoff - time.Second)
	_, _ = b.getToken(context.Background(), res)
	c.running.Wait()
	assert.EqualValues(t, 3, src.calls.Load())

	// The next try succeeds and the new token replaces the old one.
	src.clk.Advance(time.Second)
	_, _ = b.getToken(context.Background(), res)
	c.running.Wait()
	assert.EqualValues(t, 4, src.calls.Load())
	tok, err = b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-D", tok.AccessToken, "the fourth request's token")
}

func TestCacheRecoversFromPanicInRequest(t *testing.T) {
	src := &fakeSource{panics: true}
	b, _ := newTestBase(t, src)
	_, err := b.getToken(context.Background(), res)
	var pe *panicError
	require.ErrorAs(t, err, &pe)
	assert.NotContains(t, err.Error(), "secret-in-panic")

	src.panics = false
	tok, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-B", tok.AccessToken)
}

func TestCacheRequestTimeoutIsReported(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{})} // never released: the request runs out of time
	b, _ := newTestBase(t, src)
	b.fetchTimeout = 20 * time.Millisecond
	_, err := b.getToken(context.Background(), res)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "gave up after 20ms")
}

func TestRefreshOnSchedule(t *testing.T) {
	now := epoch
	for _, tc := range []struct {
		name      string
		life      time.Duration
		refreshIn time.Duration
		want      time.Duration // RefreshOn - now, with no jitter
	}{
		{name: "24 h token refreshes at half-life", life: 24 * time.Hour, want: 12 * time.Hour},
		{name: "2 h token refreshes at half-life", life: 2 * time.Hour, want: time.Hour},
		{name: "1 h token refreshes 5 min before expiry", life: time.Hour, want: 55 * time.Minute},
		{name: "8 min token refreshes at half-life, not 3 min in", life: 8 * time.Minute, want: 4 * time.Minute},
		{name: "4 min token is cached and refreshed at 2 min", life: 4 * time.Minute, want: 2 * time.Minute},
		{name: "refresh_in wins", life: 24 * time.Hour, refreshIn: time.Hour, want: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(clock.NewFake(now))
			c.jitter = func(time.Duration) time.Duration { return 0 }
			e := c.newEntry(wire.Token{AccessToken: "x", ExpiresOn: now.Add(tc.life), RefreshIn: tc.refreshIn}, res, now)
			assert.Equal(t, now.Add(tc.want), e.tok.RefreshOn)
			assert.Equal(t, e.tok.RefreshOn, e.refreshAt)
			assert.True(t, e.staleAt.After(e.refreshAt), "refresh must start before the token goes stale")
			assert.True(t, e.staleAt.Before(e.tok.ExpiresOn))
		})
	}
}

func TestRefreshJitterStaysWithinBounds(t *testing.T) {
	now := epoch
	for _, life := range []time.Duration{4 * time.Minute, time.Hour, 24 * time.Hour} {
		c := newCache(clock.NewFake(now))
		var asked time.Duration
		c.jitter = func(max time.Duration) time.Duration { asked = max; return max }
		noJitter := newCache(clock.NewFake(now))
		noJitter.jitter = func(time.Duration) time.Duration { return 0 }
		tok := wire.Token{AccessToken: "x", ExpiresOn: now.Add(life)}

		e := c.newEntry(tok, res, now)
		base := noJitter.newEntry(tok, res, now)
		assert.Equal(t, min(life/20, base.refreshAt.Sub(now)/10, maxJitter), asked, "jitter bound for %v", life)
		assert.Equal(t, base.refreshAt.Add(-asked), e.refreshAt, "jitter moves the refresh earlier by at most its bound")
		assert.True(t, e.refreshAt.After(now))
	}
	// A short refresh_in is jittered by at most a tenth of it, so the refresh
	// never becomes due the moment the token arrives.
	c := newCache(clock.NewFake(now))
	c.jitter = func(max time.Duration) time.Duration { return max }
	e := c.newEntry(wire.Token{AccessToken: "x", ExpiresOn: now.Add(24 * time.Hour), RefreshIn: 2 * time.Second}, res, now)
	assert.Equal(t, now.Add(2*time.Second-200*time.Millisecond), e.refreshAt)

	// The real jitter source stays within [0, max).
	for range 10000 {
		j := randomJitter(time.Minute)
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.Less(t, j, time.Minute)
	}
	assert.Zero(t, randomJitter(0))
}

func TestInvalidateDropsOnlyTheRejectedToken(t *testing.T) {
	src := &fakeSource{}
	b, _ := newTestBase(t, src)
	old, err := b.getToken(context.Background(), res)
	require.NoError(t, err)

	assert.False(t, b.invalidate(res, "some-other-token"), "a token that is not cached is not dropped")
	assert.False(t, b.invalidate("https://other", old.AccessToken))
	assert.True(t, b.invalidate(res+"/.default", old.AccessToken))
	assert.False(t, b.invalidate(res, old.AccessToken), "already dropped")

	fresh, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, "tok-B", fresh.AccessToken)
	assert.False(t, b.invalidate(res, old.AccessToken), "a newer token is kept")
	again, err := b.getToken(context.Background(), res)
	require.NoError(t, err)
	assert.Equal(t, fresh, again)
}

func TestGetTokenRejectsBadResource(t *testing.T) {
	src := &fakeSource{}
	b, _ := newTestBase(t, src)
	for _, r := range []string{"", "/.default", "https://a https://b", "https://a\n"} {
		_, err := b.getToken(context.Background(), r)
		var ae *ArgumentError
		require.ErrorAs(t, err, &ae, "resource %q", r)
		assert.Equal(t, "resource", ae.Name)
	}
	//lint:ignore SA1012 testing the nil-context guard
	_, err := b.getToken(nil, res) //nolint:staticcheck
	var ae *ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "ctx", ae.Name)
	assert.Zero(t, src.calls.Load())
	assert.False(t, errors.Is(err, ErrUnavailable))
}
