package mitoken

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/clock"
)

// hangingEndpoint answers with a token, except that the requests for which
// hang returns true wait until the client gives up; started receives one
// value per hanging request.
func hangingEndpoint(t *testing.T, hang func(n int32) bool) (*httptest.Server, chan struct{}, *atomic.Int32) {
	t.Helper()
	started := make(chan struct{}, 16)
	gone := make(chan struct{}, 16)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if hang(n) {
			started <- struct{}{}
			<-r.Context().Done()
			gone <- struct{}{}
			return
		}
		fmt.Fprint(w, tokenBody(time.Now().Add(time.Hour)))
	}))
	t.Cleanup(srv.Close)
	return srv, gone, &hits
}

func TestCloseCancelsABackgroundRefreshAndWaitsForIt(t *testing.T) {
	started := make(chan struct{}, 1)
	srv, gone, _ := hangingEndpoint(t, func(n int32) bool {
		if n == 2 {
			started <- struct{}{}
			return true
		}
		return false
	})
	clk := clock.NewFake(time.Now())
	cache := newCache(clk)
	t.Cleanup(cache.running.Wait)
	cred, err := NewIMDS(WithEndpoint(srv.URL), WithCache(cache), func(c *config) { c.fetchTimeout = time.Hour })
	require.NoError(t, err)

	tok, err := cred.GetToken(context.Background(), res)
	require.NoError(t, err)
	clk.Set(tok.RefreshOn.Add(time.Second))
	again, err := cred.GetToken(context.Background(), res)
	require.NoError(t, err, "a token due for refresh is still handed out")
	assert.Equal(t, tok.AccessToken, again.AccessToken)
	<-started // the background refresh is at the endpoint, which hangs

	closed := make(chan error, 1)
	go func() { closed <- cred.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return; the refresh was not cancelled")
	}
	assert.False(t, cred.scope.lookup(res).refreshing.Load(), "the refresh ended before Close returned")
	select {
	case <-gone: // the endpoint sees the request abandoned
	case <-time.After(10 * time.Second):
		t.Error("the refresh's request was not cancelled")
	}

	_, err = cred.GetToken(context.Background(), res)
	assert.ErrorIs(t, err, ErrClosed)
	assert.NoError(t, cred.Close(), "Close twice is fine")
}

func TestCloseEndsAWaitingCallerWithErrClosed(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv, _, _ := hangingEndpoint(t, func(int32) bool { arrived <- struct{}{}; return true })
	cache := NewCache()
	t.Cleanup(cache.running.Wait)
	cred, err := NewAppService(WithEndpoint(srv.URL), WithIdentityHeader("s"), WithCache(cache),
		func(c *config) { c.fetchTimeout = time.Hour })
	require.NoError(t, err)

	got := make(chan error, 1)
	go func() {
		_, err := cred.GetToken(context.Background(), res)
		got <- err
	}()
	<-arrived
	require.NoError(t, cred.Close())
	assert.ErrorIs(t, <-got, ErrClosed)
}

func TestClosingOneCredentialLeavesAnotherOnTheSameCacheWorking(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv, _, _ := hangingEndpoint(t, func(n int32) bool {
		if n == 1 {
			arrived <- struct{}{}
		}
		return n == 1
	})
	cache := NewCache()
	t.Cleanup(cache.running.Wait)
	opts := []Option{WithEndpoint(srv.URL), WithCache(cache), func(c *config) { c.fetchTimeout = time.Hour }}
	a, err := NewIMDS(opts...)
	require.NoError(t, err)
	b, err := NewIMDS(opts...)
	require.NoError(t, err)

	aDone := make(chan error, 1)
	go func() {
		_, err := a.GetToken(context.Background(), res)
		aDone <- err
	}()
	<-arrived
	bDone := make(chan error, 1)
	go func() {
		_, err := b.GetToken(context.Background(), res) // joins a's request, or starts its own
		bDone <- err
	}()
	require.NoError(t, a.Close())
	assert.ErrorIs(t, <-aDone, ErrClosed)
	assert.NoError(t, <-bDone, "b gets a token although a's request was cancelled")
	_, err = b.GetToken(context.Background(), res)
	assert.NoError(t, err)
}

func TestCloseOfAnIdleCredentialIsImmediate(t *testing.T) {
	cred, err := NewArc(WithEndpoint("http://127.0.0.1:1"), WithArcTokenDir(t.TempDir()))
	require.NoError(t, err)
	assert.NoError(t, cred.Close())
	_, err = cred.GetToken(context.Background(), res)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Equal(t, "mitoken: the credential is closed", err.Error())
}

func TestLogRecords(t *testing.T) {
	ep := newFakeEndpoint(t, step{status: 500})
	clk := clock.NewFake(time.Now())
	cache := newCache(clk)
	t.Cleanup(cache.running.Wait)
	logs := &captureHandler{store: &records{}}
	cred, err := NewIMDS(WithEndpoint(ep.URL), WithCache(cache), WithLogger(slog.New(logs)), withWaits(&waits{}),
		WithClientID("id-in-query"))
	require.NoError(t, err)
	tok, err := cred.GetToken(context.Background(), res)
	require.NoError(t, err)

	host := strings.TrimPrefix(ep.URL, "http://")
	attempts := logs.store.find("token request attempt")
	require.Len(t, attempts, 2, "one debug record per request")
	for i, status := range []int{500, 200} {
		a := attempts[i]
		assert.Equal(t, slog.LevelDebug, a.level)
		for _, want := range []string{"source=imds", "host=" + host, fmt.Sprintf("status=%d", status), fmt.Sprintf("attempt=%d", i+1), "latency="} {
			assert.Contains(t, a.text, want)
		}
	}
	retries := logs.store.find("retrying")
	require.Len(t, retries, 1, "one warning per retry")
	assert.Equal(t, slog.LevelWarn, retries[0].level)
	outcome := logs.store.find("token acquired")
	require.Len(t, outcome, 1, "one info record per refresh outcome")
	assert.Equal(t, slog.LevelInfo, outcome[0].level)
	assert.Contains(t, outcome[0].text, "background=false")

	// A background refresh that fails is one info record, and a warning
	// that the current token is kept.
	ep.mu.Lock()
	ep.steps = []step{{status: 400, body: `{"error":"invalid_request","error_description":"nope"}`}}
	ep.mu.Unlock()
	clk.Set(tok.RefreshOn.Add(time.Second))
	_, err = cred.GetToken(context.Background(), res)
	require.NoError(t, err)
	cache.running.Wait()
	failed := logs.store.find("token request failed")
	require.Len(t, failed, 1)
	assert.Equal(t, slog.LevelInfo, failed[0].level)
	assert.Contains(t, failed[0].text, "background=true")
	assert.Contains(t, failed[0].text, "nope")
	assert.Len(t, logs.store.find("keeping the current token"), 1)

	// And one that succeeds is one info record too.
	clk.Advance(time.Minute) // past the backoff, before expiry
	_, err = cred.GetToken(context.Background(), res)
	require.NoError(t, err)
	cache.running.Wait()
	acquired := logs.store.find("token acquired")
	require.Len(t, acquired, 2)
	assert.Contains(t, acquired[1].text, "background=true")

	for _, text := range logs.store.texts() {
		assert.NotContains(t, text, secretToken)
		assert.NotContains(t, text, "id-in-query")
		assert.NotContains(t, text, "api-version")
	}
}
