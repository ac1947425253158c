package mitoken

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const vaultResource = "https://vault.azure.net"

// tokenServer is a fake IMDS that issues "token-1", "token-2", ... one new
// token per request.
type tokenServer struct {
	*httptest.Server
	issued atomic.Int32
}

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != imdsTokenPath || r.Header.Get("Metadata") != "true" || r.URL.Query().Get("resource") != vaultResource {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		n := ts.issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"token-%d","expires_in":"3600","resource":%q,"token_type":"Bearer"}`, n, vaultResource)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// newTestCredential returns an IMDS credential with a private cache, served
// by a fresh tokenServer.
func newTestCredential(t *testing.T) (*IMDSCredential, *tokenServer) {
	t.Helper()
	ts := newTokenServer(t)
	cache := NewCache()
	cred, err := NewIMDS(WithEndpoint(ts.URL), WithCache(cache), WithSystemAssigned())
	require.NoError(t, err)
	t.Cleanup(cache.running.Wait)
	return cred, ts
}

// seen is what a resource server saw of one request.
type seen struct {
	method, path, query, auth, custom, body string
}

// resourceServer is a TLS server that records requests and answers with
// handle (200 "ok" when nil).
type resourceServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newResourceServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *resourceServer {
	t.Helper()
	rs := &resourceServer{}
	rs.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.reqs = append(rs.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("X-Custom"), string(body)})
		n := len(rs.reqs)
		rs.mu.Unlock()
		if handle != nil {
			handle(w, r, n)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rs.Close)
	return rs
}

// client returns a client whose Transport gets tokens from cred and trusts rs.
func (rs *resourceServer) client(cred Credential) *http.Client {
	return &http.Client{Transport: &Transport{Credential: cred, Resource: vaultResource, Base: rs.Client().Transport}}
}

func (rs *resourceServer) seen() []seen {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]seen(nil), rs.reqs...)
}

// rejectFirst answers the first request 401 and the others with then (200
// "ok" when nil).
func rejectFirst(then http.HandlerFunc) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case n == 1:
			http.Error(w, "token rejected", http.StatusUnauthorized)
		case then != nil:
			then(w, r)
		default:
			io.WriteString(w, "ok")
		}
	}
}

func alwaysReject(w http.ResponseWriter, r *http.Request, n int) {
	http.Error(w, "denied", http.StatusUnauthorized)
}

// mustNotSend is a Base that fails the test if anything reaches it.
func mustNotSend(t *testing.T) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("request to %s was sent", r.URL.Host)
		return nil, errors.New("must not send")
	})
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestTransportAttachesTokenOverHTTPS(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, nil)
	client := rs.client(cred)

	req, err := http.NewRequest(http.MethodPut, rs.URL+"/secrets/s1?api-version=7.4", strings.NewReader(`{"value":"v"}`))
	require.NoError(t, err)
	req.Header.Set("X-Custom", "kept")
	resp, err := client.Do(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", readAll(t, resp))

	resp, err = client.Get(rs.URL + "/again")
	require.NoError(t, err)
	readAll(t, resp)

	assert.Equal(t, []seen{
		{method: "PUT", path: "/secrets/s1", query: "api-version=7.4", auth: "Bearer token-1", custom: "kept", body: `{"value":"v"}`},
		{method: "GET", path: "/again", auth: "Bearer token-1"},
	}, rs.seen())
	assert.Equal(t, int32(1), ts.issued.Load(), "the second request uses the cached token")
}

func TestTransportRefusesPlainHTTP(t *testing.T) {
	cred, ts := newTestCredential(t)
	tests := []struct {
		name, url     string
		allowLoopback bool
	}{
		{"plain http to a loopback host without the opt-out", "http://127.0.0.1:8080/secrets?sig=hidden", false},
		{"plain http to a remote host without the opt-out", "http://vault.example.com/secrets?sig=hidden", false},
		{"plain http to a remote host with the loopback opt-out", "http://vault.example.com/secrets?sig=hidden", true},
		{"plain http to a name that only starts like localhost", "http://localhost.example.com/secrets?sig=hidden", true},
		{"another scheme", "ftp://vault.example.com/secrets?sig=hidden", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			require.NoError(t, err)
			body := &trackedBody{Reader: strings.NewReader("payload")}
			req, err := http.NewRequest(http.MethodPost, tt.url, body)
			require.NoError(t, err)
			tr := &Transport{Credential: cred, Resource: vaultResource, Base: mustNotSend(t), AllowLoopbackHTTP: tt.allowLoopback}

			resp, err := tr.RoundTrip(req)
			assert.Nil(t, resp)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, err.Error(), fmt.Sprintf("scheme %q", u.Scheme))
			assert.Contains(t, err.Error(), fmt.Sprintf("host %q", u.Host))
			assert.NotContains(t, err.Error(), "sig=hidden", "the query may hold secrets")
			assert.True(t, body.closed.Load(), "the request body is closed")
		})
	}
	assert.Zero(t, ts.issued.Load(), "no token is fetched for a refused request")
}

func TestTransportAllowsLoopbackHTTPWhenAskedTo(t *testing.T) {
	cred, _ := newTestCredential(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			var auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { auth = r.Header.Get("Authorization") }))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			client := &http.Client{Transport: &Transport{Credential: cred, Resource: vaultResource, AllowLoopbackHTTP: true, Base: srv.Client().Transport}}

			resp, err := client.Get("http://" + host + ":" + u.Port() + "/")
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, "Bearer token-1", auth)
		})
	}
}

// twoHostBase trusts the httptest certificate for both 127.0.0.1 and
// localhost: the certificate names 127.0.0.1 and example.com, not localhost.
func twoHostBase(rs *resourceServer) http.RoundTripper {
	tr := rs.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, ServerName: "example.com"}
	return tr
}

func TestTransportRedirects(t *testing.T) {
	cred, _ := newTestCredential(t)
	var aHome atomic.Value // A's URL, for B to send "/back" home to
	hostB := newResourceServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Path == "/back" {
			http.Redirect(w, r, aHome.Load().(string)+"/home", http.StatusFound)
		}
	})
	bURL, err := url.Parse(hostB.URL)
	require.NoError(t, err)
	bLocalhost := "https://localhost:" + bURL.Port()
	hostA := newResourceServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch r.URL.Path {
		case "/to-other-host":
			http.Redirect(w, r, bLocalhost+"/landing", http.StatusTemporaryRedirect)
		case "/to-same-host":
			http.Redirect(w, r, "/landing", http.StatusFound)
		case "/via-other-host-and-back":
			http.Redirect(w, r, bLocalhost+"/back", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	})
	aHome.Store(hostA.URL)
	aURL, err := url.Parse(hostA.URL)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", aURL.Hostname())

	client := &http.Client{Transport: &Transport{Credential: cred, Resource: vaultResource, Base: twoHostBase(hostA)}}
	get := func(path string) {
		t.Helper()
		resp, err := client.Get(hostA.URL + path)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}

	t.Run("to another host, which never sees the token", func(t *testing.T) {
		get("/to-other-host")
		assert.Equal(t, []seen{{method: "GET", path: "/landing"}}, hostB.seen())
	})
	t.Run("to the same host, which keeps it", func(t *testing.T) {
		get("/to-same-host")
		a := hostA.seen()
		require.Len(t, a, 3)
		assert.Equal(t, seen{method: "GET", path: "/to-same-host", auth: "Bearer token-1"}, a[1])
		assert.Equal(t, seen{method: "GET", path: "/landing", auth: "Bearer token-1"}, a[2])
	})
	t.Run("back to the first host after another", func(t *testing.T) {
		get("/via-other-host-and-back")
		b := hostB.seen()
		require.Len(t, b, 2)
		assert.Equal(t, seen{method: "GET", path: "/back"}, b[1], "the other host gets no token")
		a := hostA.seen()
		require.Len(t, a, 5)
		assert.Equal(t, seen{method: "GET", path: "/home", auth: "Bearer token-1"}, a[4], "the first host gets it again")
	})
}

func TestTransportStripsAuthorizationOnHopsToOtherHosts(t *testing.T) {
	cred, _ := newTestCredential(t)
	var sent *http.Request
	tr := &Transport{Credential: cred, Resource: vaultResource, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}
	first := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/start", nil)
	hop := httptest.NewRequest(http.MethodGet, "https://other.example.com/landing", nil)
	hop.Header.Set("Authorization", "Bearer stale")
	hop.Header.Set("X-Custom", "kept")
	hop.Response = &http.Response{Request: first}

	resp, err := tr.RoundTrip(hop)
	require.NoError(t, err)
	resp.Body.Close()
	require.NotNil(t, sent)
	assert.Empty(t, sent.Header.Values("Authorization"))
	assert.Equal(t, "kept", sent.Header.Get("X-Custom"))
	assert.Equal(t, "Bearer stale", hop.Header.Get("Authorization"), "the caller's request is untouched")
}

func TestTransportRetriesOnce401WithReplayableBody(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, rejectFirst(nil))
	client := rs.client(cred)

	resp, err := client.Post(rs.URL+"/write", "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, []seen{
		{method: "POST", path: "/write", auth: "Bearer token-1", body: "payload"},
		{method: "POST", path: "/write", auth: "Bearer token-2", body: "payload"},
	}, rs.seen())
	assert.Equal(t, int32(2), ts.issued.Load(), "the rejected token was dropped and a new one fetched")
}

func TestTransportReturnsSecond401(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Error(w, fmt.Sprintf("denied %d", n), http.StatusUnauthorized)
	})
	client := rs.client(cred)

	resp, err := client.Get(rs.URL + "/read")
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "denied 2\n", readAll(t, resp), "the caller reads the second 401 as the resource sent it")
	assert.Len(t, rs.seen(), 2)
	assert.Equal(t, int32(2), ts.issued.Load())
}

func TestTransportDoesNotRetry401WithSpentBody(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, alwaysReject)
	client := rs.client(cred)
	req, err := http.NewRequest(http.MethodPost, rs.URL+"/write", io.NopCloser(strings.NewReader("payload")))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)

	resp, err := client.Do(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "denied\n", readAll(t, resp))
	assert.Equal(t, []seen{{method: "POST", path: "/write", auth: "Bearer token-1", body: "payload"}}, rs.seen())
	assert.Equal(t, int32(1), ts.issued.Load(), "the token is kept: nothing proves a retry would help")
}

func TestTransportDrainsAndCloses401Body(t *testing.T) {
	cred, _ := newTestCredential(t)
	first := &trackedBody{Reader: strings.NewReader("denied")}
	calls := 0
	tr := &Transport{Credential: cred, Resource: vaultResource, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			return &http.Response{StatusCode: http.StatusUnauthorized, Body: first, Request: r}, nil
		}
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}

	resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://vault.example.com/", nil))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, first.closed.Load(), "the 401 body is closed before the retry")
	n, _ := first.Read(make([]byte, 1))
	assert.Zero(t, n, "the 401 body was drained")
}

// TestTransportInvalidatesOnlyTheRejectedToken: when another caller has
// already replaced the rejected token, the newer one is kept and used.
func TestTransportInvalidatesOnlyTheRejectedToken(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			// Meanwhile another goroutine saw token-1 rejected and fetched token-2.
			require.True(t, cred.Invalidate(vaultResource, Token{AccessToken: "token-1"}))
			tok, err := cred.GetToken(r.Context(), vaultResource)
			require.NoError(t, err)
			require.Equal(t, "token-2", tok.AccessToken)
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	client := rs.client(cred)

	resp, err := client.Get(rs.URL + "/read")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	a := rs.seen()
	require.Len(t, a, 2)
	assert.Equal(t, "Bearer token-2", a[1].auth)
	assert.Equal(t, int32(2), ts.issued.Load(), "token-2 was not dropped: no third token was fetched")
}

// fixedCredential has no Invalidate method.
type fixedCredential struct {
	tok   string
	err   error
	calls atomic.Int32
}

func (c *fixedCredential) GetToken(context.Context, string) (Token, error) {
	c.calls.Add(1)
	return Token{AccessToken: c.tok, TokenType: "Bearer"}, c.err
}

func TestTransportRetriesOnceWithCredentialWithoutInvalidate(t *testing.T) {
	cred := &fixedCredential{tok: "static"}
	rs := newResourceServer(t, alwaysReject)
	client := rs.client(cred)

	resp, err := client.Get(rs.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Len(t, rs.seen(), 2)
	assert.Equal(t, int32(2), cred.calls.Load())
}

func TestTransportLeavesTheCallersRequestAlone(t *testing.T) {
	cred, _ := newTestCredential(t)
	rs := newResourceServer(t, rejectFirst(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/landing", http.StatusTemporaryRedirect)
		}
	}))
	client := rs.client(cred)
	body := strings.NewReader("payload")
	req, err := http.NewRequest(http.MethodPost, rs.URL+"/start", body)
	require.NoError(t, err)
	req.Header.Set("X-Custom", "kept")
	header := req.Header.Clone()
	u := *req.URL
	reqBody, getBody := req.Body, req.GetBody

	resp, err := client.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, rs.seen(), 3, "a 401 retry and a redirect were made")

	assert.Equal(t, header, req.Header, "no Authorization was added to the caller's header")
	assert.Equal(t, u, *req.URL)
	assert.True(t, reqBody == req.Body, "the caller's body is the same")
	assert.NotNil(t, getBody)
	assert.Nil(t, req.Response)
}

func TestTransportArgumentErrors(t *testing.T) {
	cred, _ := newTestCredential(t)
	tests := []struct {
		name    string
		tr      *Transport
		problem string
	}{
		{"a missing credential", &Transport{Resource: vaultResource}, "Transport.Credential"},
		{"an empty resource", &Transport{Credential: cred}, "Transport.Resource"},
		{"a blank resource", &Transport{Credential: cred, Resource: "  "}, "Transport.Resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tr.Base = mustNotSend(t)
			body := &trackedBody{Reader: strings.NewReader("payload")}
			resp, err := tt.tr.RoundTrip(httptest.NewRequest(http.MethodPost, "https://vault.example.com/", body))
			assert.Nil(t, resp)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.problem, ae.Name)
			assert.True(t, body.closed.Load())
		})
	}
}

func TestTransportTokenErrors(t *testing.T) {
	tests := []struct {
		name string
		cred *fixedCredential
		want string
	}{
		{"the credential fails", &fixedCredential{err: ErrUnavailable}, "managed identity is not available"},
		{"the credential returns an empty token", &fixedCredential{}, "empty access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &trackedBody{Reader: strings.NewReader("payload")}
			tr := &Transport{Credential: tt.cred, Resource: vaultResource, Base: mustNotSend(t)}
			resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodPost, "https://vault.example.com/x", body))
			assert.Nil(t, resp)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "vault.example.com")
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, body.closed.Load())
			if tt.cred.err != nil {
				assert.ErrorIs(t, err, tt.cred.err)
			}
		})
	}
}

func TestTransportErrorsNeverShowTheToken(t *testing.T) {
	const secret = "secret-token-value"
	cred := &fixedCredential{tok: secret}
	tr := &Transport{Credential: cred, Resource: vaultResource, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("connection reset")
	})}
	client := &http.Client{Transport: tr}

	_, err := client.Get("https://vault.example.com/secrets/x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	_, err = client.Get("http://vault.example.com/secrets/x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
}

type idleCloser struct {
	http.RoundTripper
	closed atomic.Int32
}

func (c *idleCloser) CloseIdleConnections() { c.closed.Add(1) }

func TestTransportForwardsCloseIdleConnections(t *testing.T) {
	base := &idleCloser{}
	client := &http.Client{Transport: &Transport{Credential: &fixedCredential{tok: "t"}, Resource: vaultResource, Base: base}}
	client.CloseIdleConnections()
	assert.Equal(t, int32(1), base.closed.Load())
	(&Transport{}).CloseIdleConnections() // http.DefaultTransport: must not panic
}

func TestNewClient(t *testing.T) {
	cred := &fixedCredential{tok: "t"}
	client := NewClient(cred, vaultResource)
	tr, ok := client.Transport.(*Transport)
	require.True(t, ok)
	assert.Same(t, cred, tr.Credential)
	assert.Equal(t, vaultResource, tr.Resource)
	assert.Nil(t, tr.Base, "http.DefaultTransport is used")
	assert.False(t, tr.AllowLoopbackHTTP)
}

func TestTransportConcurrentRequests(t *testing.T) {
	cred, ts := newTestCredential(t)
	rs := newResourceServer(t, nil)
	client := rs.client(cred)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				resp, err := client.Get(rs.URL + "/c")
				if assert.NoError(t, err) {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	for _, s := range rs.seen() {
		assert.Equal(t, "Bearer token-1", s.auth)
	}
	assert.Equal(t, int32(1), ts.issued.Load())
}

func TestTransportExtraAllocs(t *testing.T) {
	cred, _ := newTestCredential(t)
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	tr := &Transport{Credential: cred, Resource: vaultResource, Base: base}
	req := httptest.NewRequest(http.MethodGet, "https://vault.example.com/secrets/x?api-version=7.4", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "test")
	_, err := tr.RoundTrip(req) // warm the cache
	require.NoError(t, err)

	allocs := testing.AllocsPerRun(100, func() { _, _ = tr.RoundTrip(req) })
	assert.LessOrEqual(t, allocs, 3.0, "extra allocations per request with a cached token")
}

func TestCloneHeader(t *testing.T) {
	many := http.Header{}
	for i := range 12 {
		many.Add(fmt.Sprintf("X-H%d", i), "v")
	}
	tests := []struct {
		name string
		in   http.Header
		auth string
		want http.Header
	}{
		{"a nil header", nil, "Bearer t", http.Header{"Authorization": {"Bearer t"}}},
		{"the caller's Authorization in any case is replaced", http.Header{"authorization": {"x"}, "Authorization": {"y"}, "Accept": {"a", "b"}}, "Bearer t",
			http.Header{"Authorization": {"Bearer t"}, "Accept": {"a", "b"}}},
		{"nil values are kept nil", http.Header{"X-Nil": nil}, "", http.Header{"X-Nil": nil}},
		{"more values than fit inline", many, "Bearer t", func() http.Header { h := many.Clone(); h.Set("Authorization", "Bearer t"); return h }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [8]string
			before := tt.in.Clone()
			got := cloneHeader(tt.in, tt.auth, buf[:0])
			assert.Equal(t, tt.want, got)
			assert.Equal(t, before, tt.in, "the input is untouched")
			for k, vv := range got {
				got[k] = append(vv, "appended") // must not overwrite a neighbour
			}
			for k, vv := range tt.want {
				if vv != nil {
					assert.Equal(t, append(append([]string(nil), vv...), "appended"), got[k], k)
				}
			}
		})
	}
}
