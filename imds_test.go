package mitoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

const secretToken = "eyJ0eXAi.SECRET-ACCESS-TOKEN.sig"

// tokenBody is an IMDS 200 body: every number a string.
func tokenBody(expiresOn time.Time) string {
	return fmt.Sprintf(`{"access_token":%q,"client_id":"cid-1","expires_in":"3599","expires_on":"%d",`+
		`"ext_expires_in":"3599","not_before":"%d","resource":"https://vault.azure.net","token_type":"Bearer"}`,
		secretToken, expiresOn.Unix(), time.Now().Unix())
}

// step is one scripted answer of a fake endpoint.
type step struct {
	status int
	header map[string]string
	body   string
	hang   bool // accept and never answer (until the client gives up)
}

// fakeEndpoint answers with its steps in order, then with a valid token, and
// records what it was sent.
type fakeEndpoint struct {
	*httptest.Server
	mu    sync.Mutex
	steps []step
	reqs  []*http.Request
	hits  atomic.Int32
}

func newFakeEndpoint(t *testing.T, steps ...step) *fakeEndpoint {
	t.Helper()
	f := &fakeEndpoint{steps: steps}
	release := make(chan struct{})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		var s *step
		if len(f.steps) > 0 {
			s = &f.steps[0]
			f.steps = f.steps[1:]
		}
		f.mu.Unlock()
		if s == nil {
			fmt.Fprint(w, tokenBody(time.Now().Add(time.Hour)))
			return
		}
		if s.hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		for k, v := range s.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(s.status)
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(func() { close(release); f.Close() })
	return f
}

func (f *fakeEndpoint) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

// waits records the retry waits a credential asked for and shortens them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) record(d time.Duration) time.Duration {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return time.Millisecond
}

func (w *waits) total() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var sum time.Duration
	for _, d := range w.d {
		sum += d
	}
	return sum
}

func withWaits(w *waits) Option { return func(c *config) { c.retryWait = w.record } }

func TestIMDSRequestShape(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []Option
		env       string // AZURE_CLIENT_ID
		wantQuery url.Values
	}{
		{name: "system-assigned", wantQuery: url.Values{}},
		{name: "client ID", opts: []Option{WithClientID("11111111-aaaa")}, wantQuery: url.Values{"client_id": {"11111111-aaaa"}}},
		{name: "object ID", opts: []Option{WithObjectID("22222222-bbbb")}, wantQuery: url.Values{"object_id": {"22222222-bbbb"}}},
		{name: "resource ID", opts: []Option{WithResourceID("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u")},
			wantQuery: url.Values{"msi_res_id": {"/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}}},
		{name: "AZURE_CLIENT_ID is the default client ID", env: "33333333-cccc", wantQuery: url.Values{"client_id": {"33333333-cccc"}}},
		{name: "an option beats AZURE_CLIENT_ID", env: "33333333-cccc", opts: []Option{WithObjectID("o")}, wantQuery: url.Values{"object_id": {"o"}}},
		{name: "WithSystemAssigned ignores AZURE_CLIENT_ID", env: "33333333-cccc", opts: []Option{WithSystemAssigned()}, wantQuery: url.Values{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envClientID, tc.env)
			ep := newFakeEndpoint(t)
			cred, err := NewIMDS(append([]Option{WithEndpoint(ep.URL), WithCache(NewCache())}, tc.opts...)...)
			require.NoError(t, err)
			tok, err := cred.GetToken(context.Background(), "https://vault.azure.net/.default")
			require.NoError(t, err)
			assert.Equal(t, secretToken, tok.AccessToken)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, "cid-1", tok.ClientID)

			reqs := ep.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/metadata/identity/oauth2/token", r.URL.Path)
			want := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://vault.azure.net"}}
			for k, v := range tc.wantQuery {
				want[k] = v
			}
			assert.Equal(t, want, r.URL.Query())
			assert.Equal(t, "true", r.Header.Get("Metadata"))
			assert.Empty(t, r.Header.Get("X-Forwarded-For"))
			assert.Empty(t, r.Header.Get("Authorization"))
			assert.Empty(t, r.Header.Get("X-Identity-Header"))
		})
	}
}

func TestIMDSEndpointSelection(t *testing.T) {
	ep := newFakeEndpoint(t)
	other := newFakeEndpoint(t)

	t.Run("AZURE_POD_IDENTITY_AUTHORITY_HOST overrides the host", func(t *testing.T) {
		t.Setenv(envIMDSHost, ep.URL+"/")
		cred, err := NewIMDS(WithCache(NewCache()))
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), res)
		require.NoError(t, err)
		require.Len(t, ep.requests(), 1)
		assert.Equal(t, imdsTokenPath, ep.requests()[0].URL.Path)
	})
	t.Run("WithEndpoint beats the environment", func(t *testing.T) {
		t.Setenv(envIMDSHost, ep.URL)
		cred, err := NewIMDS(WithEndpoint(other.URL), WithCache(NewCache()))
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), res)
		require.NoError(t, err)
		assert.Len(t, other.requests(), 1)
		assert.Len(t, ep.requests(), 1, "unchanged")
	})
	t.Run("WithEndpoint with a path keeps it", func(t *testing.T) {
		cred, err := NewIMDS(WithEndpoint(other.URL+"/custom/token"), WithCache(NewCache()))
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), res)
		require.NoError(t, err)
		reqs := other.requests()
		assert.Equal(t, "/custom/token", reqs[len(reqs)-1].URL.Path)
	})
	t.Run("the default is the link-local address", func(t *testing.T) {
		t.Setenv(envIMDSHost, "")
		cred, err := NewIMDS() // no request is made: only the endpoint is checked
		require.NoError(t, err)
		assert.Equal(t, "http://169.254.169.254/metadata/identity/oauth2/token", cred.endpoint.String())
	})
	for _, bad := range []string{"169.254.169.254", "ftp://x", "http://", "http://user:pw@host", "://"} {
		t.Run("bad endpoint "+bad, func(t *testing.T) {
			_, err := NewIMDS(WithEndpoint(bad))
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "WithEndpoint", ae.Name)
			t.Setenv(envIMDSHost, bad)
			_, err = NewIMDS()
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, envIMDSHost, ae.Name)
		})
	}
}

func TestIMDSNeverUsesAProxy(t *testing.T) {
	assert.Nil(t, sharedTransport.Proxy, "IMDS is link-local and rejects forwarded requests")
}

func TestIMDSRetryAndErrors(t *testing.T) {
	identityNotFound := `{"error":"invalid_request","error_description":"Identity not found"}`
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name       string
		steps      []step
		opts       []Option
		ctxTimeout time.Duration
		wantOK     bool
		wantHits   int
		wantStatus int // of a *ResponseError
		wantIs     error
		wantMsg    string
		minWait    time.Duration // least total requested wait
	}{
		{name: "500, 500, 200 succeeds on the third try", steps: []step{{status: 500}, {status: 500}},
			wantOK: true, wantHits: 3, minWait: 2*time.Second + 4*time.Second},
		{name: "410 six times then 200 keeps retrying past 70 s", steps: repeat(step{status: 410}, 6),
			wantOK: true, wantHits: 7, minWait: 70 * time.Second},
		{name: "404 while the identity is being assigned is retried", steps: []step{{status: 404}},
			wantOK: true, wantHits: 2},
		{name: "429 honours Retry-After", steps: []step{{status: 429, header: map[string]string{"Retry-After": "17"}}},
			wantOK: true, wantHits: 2, minWait: 17 * time.Second},
		{name: "429 with Retry-After as an HTTP date", steps: []step{{status: 429, header: map[string]string{"Retry-After": time.Now().Add(40 * time.Second).UTC().Format(http.TimeFormat)}}},
			wantOK: true, wantHits: 2, minWait: 30 * time.Second},
		{name: "Retry-After beyond the cap gives up", steps: []step{{status: 503, header: map[string]string{"Retry-After": "3600"}}},
			wantHits: 1, wantStatus: 503},
		{name: "503 until retries run out", steps: repeat(step{status: 503, body: `{"error":"busy","error_description":"try later"}`}, 10),
			wantHits: 7, wantStatus: 503, wantMsg: "HTTP 503 busy: try later"},
		{name: "400 identity not found, system-assigned, is unavailable", steps: []step{{status: 400, body: identityNotFound}},
			wantHits: 1, wantStatus: 400, wantIs: ErrUnavailable, wantMsg: "no system-assigned managed identity"},
		{name: "400 identity not found, user-assigned, names the identity", steps: []step{{status: 400, body: identityNotFound}},
			opts: []Option{WithClientID("abc-123")}, wantHits: 1, wantStatus: 400, wantMsg: "client ID abc-123 is not assigned to this VM"},
		{name: "other 400 is not retried", steps: []step{{status: 400, body: `{"error":"invalid_request","error_description":"Required metadata header not specified"}`}},
			wantHits: 1, wantStatus: 400, wantMsg: "Required metadata header not specified"},
		{name: "redirect is not followed", steps: []step{{status: 307, header: map[string]string{"Location": "http://localhost:1/elsewhere"}}},
			wantHits: 1, wantStatus: 307, wantMsg: "redirect"},
		{name: "202 is not success", steps: []step{{status: 202, body: tokenBody(time.Now().Add(time.Hour))}},
			wantHits: 1, wantStatus: 202},
		{name: "malformed JSON", steps: []step{{status: 200, body: `{"access_token":`}},
			wantHits: 1, wantStatus: 200, wantMsg: "malformed JSON"},
		{name: "empty access_token", steps: []step{{status: 200, body: `{"access_token":"","expires_in":"3600"}`}},
			wantHits: 1, wantStatus: 200, wantMsg: "access_token is empty"},
		{name: "expiry in the past", steps: []step{{status: 200, body: tokenBody(past)}},
			wantHits: 1, wantStatus: 200, wantMsg: "already expired"},
		{name: "oversized body", steps: []step{{status: 200, body: `{"access_token":"` + strings.Repeat("a", wire.MaxBodyBytes) + `"}`}},
			wantHits: 1, wantStatus: 200, wantMsg: "larger than 256 KiB"},
		{name: "server accepts and never answers", steps: []step{{hang: true}}, ctxTimeout: 100 * time.Millisecond,
			wantHits: 1, wantIs: context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := newFakeEndpoint(t, tc.steps...)
			w := &waits{}
			cache := NewCache()
			t.Cleanup(cache.running.Wait)
			cred, err := NewIMDS(append([]Option{WithEndpoint(ep.URL), WithCache(cache), withWaits(w),
				func(c *config) { c.fetchTimeout = 2 * time.Second }}, tc.opts...)...)
			require.NoError(t, err)
			ctx := context.Background()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}
			tok, err := cred.GetToken(ctx, res)
			cache.running.Wait()
			assert.EqualValues(t, tc.wantHits, ep.hits.Load(), "requests made")
			assert.GreaterOrEqual(t, w.total(), tc.minWait, "waits asked for")
			if tc.wantOK {
				require.NoError(t, err)
				assert.Equal(t, secretToken, tok.AccessToken)
				return
			}
			require.Error(t, err)
			assert.Empty(t, tok.AccessToken)
			assert.NotContains(t, err.Error(), secretToken)
			assert.NotContains(t, err.Error(), "resource=", "errors never carry the query string")
			if tc.wantIs != nil {
				assert.ErrorIs(t, err, tc.wantIs)
			} else {
				assert.NotErrorIs(t, err, ErrUnavailable)
			}
			if tc.wantStatus != 0 {
				var re *ResponseError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, tc.wantStatus, re.StatusCode)
				assert.Equal(t, tc.wantHits, re.Attempts)
				assert.Equal(t, "imds", re.Source)
			}
			if tc.wantMsg != "" {
				assert.Contains(t, err.Error(), tc.wantMsg)
			}
		})
	}
}

func repeat(s step, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestIMDSPolicyRetries410ForAtLeast70Seconds(t *testing.T) {
	p := retry.IMDS
	require.True(t, p.Retries(410))
	var least, most time.Duration
	for i := range p.MaxRetries {
		least += p.MinDelay(i)
		most += p.MaxDelay(i)
	}
	assert.GreaterOrEqual(t, least, 70*time.Second)
	assert.LessOrEqual(t, most, 2*time.Minute, "the whole schedule fits in the request's own deadline")
	assert.Less(t, most, defaultFetchTimeout)
}

func TestIMDSConnectionRefusedIsUnavailable(t *testing.T) {
	addr := closedLoopbackAddr()
	w := &waits{}
	cred, err := NewIMDS(WithEndpoint("http://"+addr), WithCache(NewCache()), withWaits(w))
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), res)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), addr)
	assert.Contains(t, err.Error(), "7 attempt(s)", "an explicit IMDS credential retries")
}

func TestNewFailsFastWhenNothingListens(t *testing.T) {
	addr := closedLoopbackAddr()
	t.Setenv(envIMDSHost, "http://"+addr)
	cred, err := New(WithCache(NewCache()))
	require.NoError(t, err)
	imds, ok := cred.(*IMDSCredential)
	require.True(t, ok)
	require.True(t, imds.probe)

	start := time.Now()
	_, err = cred.GetToken(context.Background(), res)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "1 attempt(s)", "no retries when probing")
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestProbeEndsAfterFirstAnswer(t *testing.T) {
	ep := newFakeEndpoint(t, step{status: 503}, step{status: 503})
	t.Setenv(envIMDSHost, ep.URL)
	w := &waits{}
	cred, err := New(WithCache(NewCache()), withWaits(w))
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), res)
	require.NoError(t, err, "once something answers, the normal retry policy applies")
	assert.EqualValues(t, 3, ep.hits.Load())
	assert.True(t, cred.(*IMDSCredential).answered.Load())
}

func TestProbeDialTimeout(t *testing.T) {
	assert.Equal(t, time.Second, probeDialTimeout)
	probing := context.WithValue(context.Background(), stateKey{}, &requestState{probe: true})
	assert.Equal(t, probeDialTimeout, dialTimeoutFor(probing))
	assert.Equal(t, dialTimeout, dialTimeoutFor(context.Background()))
}

func TestIMDSSecretsStayOutOfLogsAndErrors(t *testing.T) {
	ep := newFakeEndpoint(t, step{status: 500}, step{status: 429})
	logs := &logBuffer{}
	cred, err := NewIMDS(WithEndpoint(ep.URL), WithCache(NewCache()), withWaits(&waits{}), WithLogger(logs.logger()),
		WithClientID("client-id-in-query"))
	require.NoError(t, err)
	tok, err := cred.GetToken(context.Background(), res)
	require.NoError(t, err)

	out := logs.String()
	assert.Contains(t, out, "status=500", "retries are logged")
	assert.Contains(t, out, "token acquired")
	assert.NotContains(t, out, secretToken)
	assert.NotContains(t, out, "client-id-in-query", "no query strings with identity IDs in logs")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		assert.NotContains(t, fmt.Sprintf(verb, tok), secretToken, verb)
		assert.NotContains(t, fmt.Sprintf(verb, &tok), secretToken, verb)
	}
	logs2 := &logBuffer{}
	logs2.logger().Info("token", "tok", tok)
	assert.NotContains(t, logs2.String(), secretToken)
	assert.Contains(t, logs2.String(), "tok.resource=https://vault.azure.net")
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		arg  string
	}{
		{"two identities", []Option{WithClientID("a"), WithObjectID("b")}, "WithClientID and WithObjectID"},
		{"empty client ID", []Option{WithClientID(" ")}, "WithClientID"},
		{"empty object ID", []Option{WithObjectID("")}, "WithObjectID"},
		{"empty resource ID", []Option{WithResourceID("")}, "WithResourceID"},
		{"system and user", []Option{WithSystemAssigned(), WithClientID("a")}, "WithSystemAssigned"},
		{"nil HTTP client", []Option{WithHTTPClient(nil)}, "WithHTTPClient"},
		{"nil cache", []Option{WithCache(nil)}, "WithCache"},
		{"nil option", []Option{nil}, "option"},
		{"empty Arc dir", []Option{WithArcTokenDir("")}, "WithArcTokenDir"},
		{"empty identity header", []Option{WithIdentityHeader("")}, "WithIdentityHeader"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewIMDS(tc.opts...)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.arg, ae.Name)
			assert.True(t, strings.HasPrefix(err.Error(), "mitoken: invalid "+tc.arg+": "), err.Error())
			_, err = New(tc.opts...)
			assert.ErrorAs(t, err, &ae)
		})
	}
}

func TestWithHTTPClientIsUsedWithoutRedirects(t *testing.T) {
	ep := newFakeEndpoint(t, step{status: 302, header: map[string]string{"Location": "/other"}})
	var used atomic.Bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	cred, err := NewIMDS(WithEndpoint(ep.URL), WithCache(NewCache()), WithHTTPClient(hc))
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), res)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 302, re.StatusCode)
	assert.True(t, used.Load())
	assert.Nil(t, hc.CheckRedirect, "the caller's client is not modified")
	assert.EqualValues(t, 1, ep.hits.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestResponseErrorText(t *testing.T) {
	e := &ResponseError{Source: "imds", StatusCode: 400, ErrorCode: "invalid_request", Description: "Identity not found",
		Attempts: 1, Message: "this host has no system-assigned managed identity", err: ErrUnavailable}
	assert.Equal(t, "mitoken: imds: this host has no system-assigned managed identity (HTTP 400 invalid_request: Identity not found) after 1 attempt", e.Error())
	assert.True(t, errors.Is(fmt.Errorf("wrapped: %w", e), ErrUnavailable))
	e2 := &ResponseError{Source: "imds", StatusCode: 503, Attempts: 7}
	assert.Equal(t, "mitoken: imds: HTTP 503 after 7 attempts", e2.Error())
}
