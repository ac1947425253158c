package mitokentest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

func TestIMDSRoundTripThroughTheCredential(t *testing.T) {
	user := mitokentest.Identity{ClientID: "11111111-1111-1111-1111-111111111111", ObjectID: "22222222-2222-2222-2222-222222222222",
		ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"}
	s := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(user))
	sys, ok := s.SystemIdentity()
	require.True(t, ok)

	tests := []struct {
		name  string
		opt   []mitoken.Option
		want  mitokentest.Identity
		param string
	}{
		{name: "the system identity by default", want: sys},
		{name: "a user-assigned identity by client ID", opt: []mitoken.Option{mitoken.WithClientID(user.ClientID)}, want: user, param: "client_id"},
		{name: "a user-assigned identity by object ID", opt: []mitoken.Option{mitoken.WithObjectID(user.ObjectID)}, want: user, param: "object_id"},
		{name: "a user-assigned identity by resource ID", opt: []mitoken.Option{mitoken.WithResourceID(user.ResourceID)}, want: user, param: "msi_res_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Requests(mitokentest.IMDS)
			cred, err := mitoken.NewIMDS(append(s.Options(mitokentest.IMDS), tc.opt...)...)
			require.NoError(t, err)
			tok, err := cred.GetToken(context.Background(), vault+"/.default")
			require.NoError(t, err)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, vault, tok.Resource)
			assert.Equal(t, tc.want.ClientID, tok.ClientID)
			assert.WithinDuration(t, time.Now().Add(mitokentest.DefaultLifetime), tok.ExpiresOn, 5*time.Second)

			c, err := mitokentest.DecodeClaims(tok.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, vault, c.Audience)
			assert.Equal(t, tc.want.ClientID, c.AppID)
			assert.Equal(t, tc.want.ObjectID, c.ObjectID)
			assert.Equal(t, tc.want.ResourceID, c.ResourceID)
			assert.Equal(t, "https://sts.windows.net/"+s.Tenant()+"/", c.Issuer)

			require.Equal(t, before+1, s.Requests(mitokentest.IMDS))
			log := s.Log()
			r := log[len(log)-1]
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/metadata/identity/oauth2/token", r.Path)
			assert.Equal(t, "true", r.Header.Get("Metadata"))
			assert.Equal(t, "2018-02-01", r.Query.Get("api-version"))
			assert.Equal(t, vault, r.Query.Get("resource"))
			if tc.param != "" {
				assert.Len(t, r.Query, 3)
				assert.NotEmpty(t, r.Query.Get(tc.param))
			} else {
				assert.Len(t, r.Query, 2)
			}

			again, err := cred.GetToken(context.Background(), vault)
			require.NoError(t, err)
			assert.Equal(t, tok.AccessToken, again.AccessToken, "the second call is a cache hit")
			assert.Equal(t, before+1, s.Requests(mitokentest.IMDS))
		})
	}
}

func TestIMDSThroughTheEnvironment(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	for k, v := range s.Env(mitokentest.IMDS) {
		t.Setenv(k, v)
	}
	cred, err := mitoken.NewIMDS(mitoken.WithCache(mitoken.NewCache()))
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), vault)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
}

func TestIMDSUnknownIdentitiesReachTheCredential(t *testing.T) {
	t.Run("no system identity is unavailable", func(t *testing.T) {
		s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
		cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), vault)
		require.ErrorIs(t, err, mitoken.ErrUnavailable)
		var re *mitoken.ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusBadRequest, re.StatusCode)
		assert.Equal(t, "Identity not found", re.Description)
	})
	t.Run("an unassigned user identity is an error, not unavailable", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		cred, err := mitoken.NewIMDS(append(s.Options(mitokentest.IMDS), mitoken.WithClientID("33333333-3333-3333-3333-333333333333"))...)
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), vault)
		require.Error(t, err)
		assert.NotErrorIs(t, err, mitoken.ErrUnavailable)
		assert.Contains(t, err.Error(), "not assigned")
	})
}

func TestIMDSConcurrentCallersShareOneRequest(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	s.Script(mitokentest.IMDS, mitokentest.Response{Delay: 50 * time.Millisecond}) // let callers pile up
	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	require.NoError(t, err)
	const callers = 1000
	tokens := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			tok, err := cred.GetToken(context.Background(), vault)
			tokens[i], errs[i] = tok.AccessToken, err
		})
	}
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, tokens[0], tokens[i])
	}
	assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
}

func TestIMDSRefreshIn(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithTokenLifetime(2*time.Hour), mitokentest.WithRefreshIn(10*time.Minute))
	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	require.NoError(t, err)
	tok, err := cred.GetToken(context.Background(), vault)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(2*time.Hour), tok.ExpiresOn, 5*time.Second)
	// refresh_in decides RefreshOn (less the cache's jitter, at most 5 min), not half-life.
	assert.WithinRange(t, tok.RefreshOn, time.Now().Add(4*time.Minute), time.Now().Add(10*time.Minute+5*time.Second))
}

func TestIMDSResponseBody(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := mitokentest.NewTestServer(t, mitokentest.WithClock(func() time.Time { return now }),
		mitokentest.WithTokenLifetime(time.Hour), mitokentest.WithRefreshIn(20*time.Minute))
	resp, body := get(t, s.URL(mitokentest.IMDS), q("api-version", "2018-02-01", "resource", vault), metadata())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))

	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &fields))
	sys, _ := s.SystemIdentity()
	exp := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	want := map[string]any{
		"client_id": sys.ClientID, "expires_in": "3600", "expires_on": exp, "ext_expires_in": "3600",
		"not_before": strconv.FormatInt(now.Unix(), 10), "refresh_in": "1200", "resource": vault, "token_type": "Bearer",
	}
	tok, _ := fields["access_token"].(string)
	delete(fields, "access_token")
	assert.Equal(t, want, fields, "every number is a string")

	c, err := mitokentest.DecodeClaims(tok)
	require.NoError(t, err)
	assert.Equal(t, mitokentest.Claims{
		Audience: vault, Issuer: "https://sts.windows.net/" + s.Tenant() + "/",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
		AppID: sys.ClientID, ObjectID: sys.ObjectID, Subject: sys.ObjectID, TenantID: s.Tenant(),
		ID: c.ID, Version: "1.0",
	}, c)
	assert.Len(t, c.ID, 32)
}

func TestIMDSRequestChecks(t *testing.T) {
	users := []mitokentest.Identity{{}, {}}
	tests := []struct {
		name    string
		opts    []mitokentest.Option
		method  string
		path    string
		query   map[string]string
		header  http.Header
		status  int
		code    string
		desc    string
		tokenOf func(s *mitokentest.Server) string // client ID expected in a 200
	}{
		{name: "a complete request gets a token", status: 200,
			tokenOf: func(s *mitokentest.Server) string { id, _ := s.SystemIdentity(); return id.ClientID }},
		{name: "a later api-version is accepted", query: map[string]string{"api-version": "2021-02-01"}, status: 200},
		{name: "no Metadata header is refused", header: http.Header{}, status: 400, code: "invalid_request", desc: "Required metadata header not specified"},
		{name: "Metadata other than true is refused", header: http.Header{"Metadata": {"True"}}, status: 400, desc: "Required metadata header not specified"},
		{name: "a forwarded request is refused", header: http.Header{"Metadata": {"true"}, "X-Forwarded-For": {"10.0.0.1"}}, status: 400, code: "invalid_request"},
		{name: "no api-version is refused", query: map[string]string{"api-version": ""}, status: 400, desc: "Required query variable 'api-version' is missing; use 2018-02-01"},
		{name: "an old api-version is refused", query: map[string]string{"api-version": "2017-09-01"}, status: 400, desc: `api-version "2017-09-01" is not supported; use 2018-02-01`},
		{name: "no resource is refused", query: map[string]string{"resource": ""}, status: 400, desc: "Required query variable 'resource' is missing"},
		{name: "a scope instead of a resource is refused", query: map[string]string{"resource": vault + "/.default"}, status: 400, code: "invalid_resource"},
		{name: "two identity parameters are refused", query: map[string]string{"client_id": "a", "object_id": "b"}, status: 400, desc: "Only one of client_id, object_id and msi_res_id may be given"},
		{name: "an unknown client ID is not found", query: map[string]string{"client_id": "44444444-4444-4444-4444-444444444444"}, status: 400, code: "invalid_request", desc: "Identity not found"},
		{name: "no system identity is not found", opts: []mitokentest.Option{mitokentest.WithoutSystemIdentity()}, status: 400, desc: "Identity not found"},
		{name: "the only user identity stands in for a missing system identity",
			opts: []mitokentest.Option{mitokentest.WithoutSystemIdentity(), mitokentest.WithUserAssigned(mitokentest.Identity{})}, status: 200,
			tokenOf: func(s *mitokentest.Server) string { return s.UserAssigned()[0].ClientID }},
		{name: "several user identities must be named", opts: []mitokentest.Option{mitokentest.WithoutSystemIdentity(), mitokentest.WithUserAssigned(users...)},
			status: 400, desc: "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"},
		{name: "POST is not allowed", method: http.MethodPost, status: 405},
		{name: "another path is not found", path: "/metadata/instance", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t, tc.opts...)
			query := override(q("api-version", "2018-02-01", "resource", vault), tc.query)
			header := orDefault(tc.header, metadata())
			method := http.MethodGet
			if tc.method != "" {
				method = tc.method
			}
			u := s.URL(mitokentest.IMDS)
			if tc.path != "" {
				u = "http://" + hostOf(u) + tc.path
			}
			resp, body := send(t, context.Background(), method, u, query, header)
			require.Equal(t, tc.status, resp.StatusCode, body)
			var got struct {
				Error, ErrorDescription, AccessToken, ClientID string
			}
			require.NoError(t, json.Unmarshal([]byte(body), &struct {
				E *string `json:"error"`
				D *string `json:"error_description"`
				A *string `json:"access_token"`
				C *string `json:"client_id"`
			}{&got.Error, &got.ErrorDescription, &got.AccessToken, &got.ClientID}))
			if tc.status != 200 {
				assert.NotEmpty(t, got.Error)
				assert.NotEmpty(t, got.ErrorDescription)
				assert.Empty(t, got.AccessToken)
			} else {
				assert.NotEmpty(t, got.AccessToken)
			}
			if tc.code != "" {
				assert.Equal(t, tc.code, got.Error)
			}
			if tc.desc != "" {
				assert.Equal(t, tc.desc, got.ErrorDescription)
			}
			if tc.tokenOf != nil {
				assert.Equal(t, tc.tokenOf(s), got.ClientID)
			}
			if tc.status == 405 {
				assert.Equal(t, "GET", resp.Header.Get("Allow"))
			}
		})
	}
}

// hostOf returns host:port of an http URL.
func hostOf(u string) string {
	rest := u[len("http://"):]
	for i := range len(rest) {
		if rest[i] == '/' {
			return rest[:i]
		}
	}
	return rest
}
