package mitoken

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	wiTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	wiClient    = "9a1b2c3d-0000-4000-8000-00000000c1d0"
	wiAssertion = "eyJhbGciOiJSUzI1NiJ9.service-account-token-one.sig"
	wiToken     = "eyJ.entra-token.sig"
)

// wiWriteToken writes Entra's token answer: expires_in as a number, no
// expires_on, no resource.
func wiWriteToken(w http.ResponseWriter, token string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"refresh_in":1800,"access_token":%q}`, token)
}

// wiServer is an Entra token endpoint with the workload identity variables
// pointing at it; the token file holds wiAssertion. It returns the file's path.
func wiServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) (*srcServer, string) {
	t.Helper()
	srcClearEnv(t)
	if answer == nil {
		answer = func(w http.ResponseWriter, _ *http.Request, _ int) { wiWriteToken(w, wiToken) }
	}
	s := newSrcServer(t, answer)
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	require.NoError(t, os.WriteFile(file, []byte(wiAssertion+"\n"), 0o600))
	t.Setenv(envTokenFile, file)
	t.Setenv(envClientID, wiClient)
	t.Setenv(envTenantID, wiTenant)
	t.Setenv(envAuthorityHost, s.URL+"/")
	return s, file
}

func wiCredential(t *testing.T, extra ...Option) (*WorkloadIdentityCredential, *srcLog) {
	t.Helper()
	opts, logs := srcOptions(t, extra...)
	c, err := NewWorkloadIdentity(opts...)
	require.NoError(t, err)
	assert.Equal(t, "workloadidentity", c.Source())
	return c, logs
}

func wiForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {wiClient},
		"scope":                 {vault + "/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}

func TestWorkloadIdentitySendsTheClientCredentialsRequest(t *testing.T) {
	cases := []struct {
		name      string
		authority func(url string) string // AZURE_AUTHORITY_HOST from the server's URL
		opts      func(url string) []Option
		wantPath  string
	}{
		{name: "authority host with a trailing slash", authority: func(u string) string { return u + "/" }, wantPath: "/" + wiTenant + "/oauth2/v2.0/token"},
		{name: "authority host without one", authority: func(u string) string { return u }, wantPath: "/" + wiTenant + "/oauth2/v2.0/token"},
		{name: "authority host with a path", authority: func(u string) string { return u + "/sovereign/" }, wantPath: "/sovereign/" + wiTenant + "/oauth2/v2.0/token"},
		{name: "WithEndpoint overrides AZURE_AUTHORITY_HOST", authority: func(string) string { return "https://login.example.invalid/" },
			opts: func(u string) []Option { return []Option{WithEndpoint(u)} }, wantPath: "/" + wiTenant + "/oauth2/v2.0/token"},
		{name: "WithTenantID overrides AZURE_TENANT_ID", authority: func(u string) string { return u },
			opts: func(string) []Option { return []Option{WithTenantID("contoso.onmicrosoft.com")} }, wantPath: "/contoso.onmicrosoft.com/oauth2/v2.0/token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := wiServer(t, nil)
			t.Setenv(envAuthorityHost, tc.authority(s.URL))
			var opts []Option
			if tc.opts != nil {
				opts = tc.opts(s.URL)
			}
			c, _ := wiCredential(t, opts...)
			before := time.Now()
			tok, err := c.GetToken(context.Background(), vault)
			require.NoError(t, err)
			assert.Equal(t, wiToken, tok.AccessToken)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, vault, tok.Resource)
			assert.WithinDuration(t, before.Add(3599*time.Second), tok.ExpiresOn, 5*time.Second)
			// refresh_in is honoured, less the cache's jitter (at most a twentieth of the lifetime).
			assert.WithinRange(t, tok.RefreshOn, before.Add(1800*time.Second-3*time.Minute-5*time.Second), before.Add(1805*time.Second))

			reqs := s.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, tc.wantPath, r.Path)
			assert.Empty(t, r.Query)
			assert.Equal(t, wiForm(wiAssertion), r.Form, "the file's contents, trimmed, are the assertion")
			assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
			assert.Empty(t, r.Header.Get("Metadata"))
			assert.Empty(t, r.Header.Get("Authorization"))
		})
	}
}

func TestWorkloadIdentityOptionsOverrideTheEnvironment(t *testing.T) {
	s, _ := wiServer(t, nil)
	other := filepath.Join(t.TempDir(), "other-token")
	require.NoError(t, os.WriteFile(other, []byte("other-assertion"), 0o600))
	t.Setenv(envClientID, "stale-client")
	c, _ := wiCredential(t, WithClientID(wiClient), WithFederatedTokenFile(other))
	_, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, wiForm("other-assertion"), reqs[0].Form)
}

func TestWorkloadIdentityRereadsTheRotatedTokenFile(t *testing.T) {
	s, file := wiServer(t, nil)
	c, _ := wiCredential(t)
	tok, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)

	const rotated = "eyJhbGciOiJSUzI1NiJ9.service-account-token-two.sig"
	require.NoError(t, os.WriteFile(file, []byte(rotated), 0o600))
	require.True(t, c.Invalidate(vault, tok))
	_, err = c.GetToken(context.Background(), vault)
	require.NoError(t, err)

	reqs := s.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, wiAssertion, reqs[0].Form.Get("client_assertion"))
	assert.Equal(t, rotated, reqs[1].Form.Get("client_assertion"), "the second request carries the rotated token")
}

func TestWorkloadIdentityRetryResendsTheSameForm(t *testing.T) {
	s, _ := wiServer(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		switch n {
		case 0:
			w.Header().Set("Retry-After", "1")
			srcWriteError(w, http.StatusTooManyRequests, "temporarily_unavailable", "throttled")
		case 1:
			srcWriteError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "busy")
		default:
			wiWriteToken(w, wiToken)
		}
	})
	c, _ := wiCredential(t)
	_, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, wiForm(wiAssertion), r.Form, "attempt %d", i+1)
	}
}

func TestWorkloadIdentityEntraErrors(t *testing.T) {
	s, _ := wiServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion %s.","error_codes":[70021],"timestamp":"2026-01-01 00:00:00Z","trace_id":"t","correlation_id":"c"}`, wiAssertion)
	})
	c, logs := wiCredential(t)
	_, err := c.GetToken(context.Background(), vault)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "workloadidentity", re.Source)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	assert.Equal(t, "invalid_client", re.ErrorCode)
	assert.Contains(t, re.Description, "AADSTS70021")
	assert.Contains(t, err.Error(), "refused the federated token")
	assert.Equal(t, 1, re.Attempts, "a 400 is not retried")
	assert.Len(t, s.requests(), 1)
	assert.NotContains(t, err.Error(), wiAssertion)
	assert.NotContains(t, logs.String(), wiAssertion)
}

func TestWorkloadIdentityNeverLogsTheAssertionOrTheToken(t *testing.T) {
	wiServer(t, nil)
	c, logs := wiCredential(t)
	_, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	require.Contains(t, logs.String(), "token acquired")
	assert.NotContains(t, logs.String(), wiAssertion)
	assert.NotContains(t, logs.String(), wiToken)
}

func TestWorkloadIdentityTokenFileProblems(t *testing.T) {
	cases := []struct {
		name     string
		contents *string // nil: the file does not exist
		want     string
	}{
		{"the file is missing", nil, "no such file"},
		{"the file is empty", ptr("  \n"), "is empty"},
		{"the file is huge", ptr(strings.Repeat("x", 65<<10)), "more than 64 KiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, file := wiServer(t, nil)
			c, _ := wiCredential(t)
			if tc.contents == nil {
				require.NoError(t, os.Remove(file))
			} else {
				require.NoError(t, os.WriteFile(file, []byte(*tc.contents), 0o600))
			}
			_, err := c.GetToken(context.Background(), vault)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), file)
			assert.Empty(t, s.requests(), "nothing is sent without an assertion")
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewWorkloadIdentityNamesWhatIsMissing(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		opts     []Option
		wantArg  string // "" for ErrUnavailable
		wantText string
	}{
		{name: "no AZURE_FEDERATED_TOKEN_FILE", env: map[string]string{envTokenFile: ""}, wantText: "AZURE_FEDERATED_TOKEN_FILE is not set"},
		{name: "no AZURE_CLIENT_ID", env: map[string]string{envClientID: ""}, wantArg: "AZURE_CLIENT_ID", wantText: "AZURE_CLIENT_ID is not set"},
		{name: "no AZURE_TENANT_ID", env: map[string]string{envTenantID: ""}, wantArg: "AZURE_TENANT_ID", wantText: "AZURE_TENANT_ID is not set"},
		{name: "a tenant that is not one", env: map[string]string{envTenantID: "../evil?x="}, wantArg: "tenant ID"},
		{name: "an http authority off loopback", env: map[string]string{envAuthorityHost: "http://login.example.com/"}, wantArg: "AZURE_AUTHORITY_HOST", wantText: "must be https"},
		{name: "an authority that is not a URL", env: map[string]string{envAuthorityHost: "login.example.com"}, wantArg: "AZURE_AUTHORITY_HOST"},
		{name: "WithObjectID", opts: []Option{WithObjectID("oid")}, wantArg: "WithObjectID", wantText: "use WithClientID"},
		{name: "WithResourceID", opts: []Option{WithResourceID("/subscriptions/s/x")}, wantArg: "WithResourceID"},
		{name: "WithSystemAssigned", opts: []Option{WithSystemAssigned()}, wantArg: "WithSystemAssigned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wiServer(t, nil)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := NewWorkloadIdentity(tc.opts...)
			require.Error(t, err)
			if tc.wantArg == "" {
				assert.ErrorIs(t, err, ErrUnavailable)
			} else {
				var ae *ArgumentError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tc.wantArg, ae.Name)
				assert.False(t, errorsIsUnavailable(err), "a half-configured workload identity is not 'unavailable'")
			}
			assert.Contains(t, err.Error(), tc.wantText)
		})
	}
}

func errorsIsUnavailable(err error) bool {
	for e := err; e != nil; {
		if e == ErrUnavailable {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

func TestWorkloadIdentityCacheKeyHoldsTenantAndClient(t *testing.T) {
	s, _ := wiServer(t, nil)
	opts, _ := srcOptions(t)
	for _, extra := range [][]Option{nil, {WithTenantID("other-tenant")}, {WithClientID("other-client")}, nil} {
		c, err := NewWorkloadIdentity(append(append([]Option(nil), opts...), extra...)...)
		require.NoError(t, err)
		_, err = c.GetToken(context.Background(), vault)
		require.NoError(t, err)
	}
	assert.Len(t, s.requests(), 3, "another tenant or client is another token; the same pair shares one")
}
