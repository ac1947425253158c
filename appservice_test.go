package mitoken

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	asSecret = "app-service-secret-3f9a"
	asToken  = "eyJ.app-service-token.sig"
	vault    = "https://vault.azure.net"
)

// asServer is an App Service endpoint at /MSI/token/ that answers with the
// token, exported through IDENTITY_ENDPOINT and IDENTITY_HEADER.
func asServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *srcServer {
	t.Helper()
	srcClearEnv(t)
	if answer == nil {
		answer = func(w http.ResponseWriter, _ *http.Request, _ int) { srcWriteToken(w, asToken) }
	}
	s := newSrcServer(t, answer)
	t.Setenv(envIdentityEP, s.URL+"/MSI/token/")
	t.Setenv(envIdentityHeader, asSecret)
	return s
}

func TestAppServiceSendsTheDocumentedRequestForEachIdentity(t *testing.T) {
	cases := []struct {
		name      string
		envClient string
		opts      []Option
		wantID    map[string]string
	}{
		{name: "system-assigned", wantID: map[string]string{}},
		{name: "client ID by option", opts: []Option{WithClientID("cid-1")}, wantID: map[string]string{"client_id": "cid-1"}},
		{name: "object ID by option goes in principal_id", opts: []Option{WithObjectID("oid-1")}, wantID: map[string]string{"principal_id": "oid-1"}},
		{name: "resource ID by option goes in mi_res_id", opts: []Option{WithResourceID("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u")},
			wantID: map[string]string{"mi_res_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}},
		{name: "AZURE_CLIENT_ID is the default client ID", envClient: "env-cid", wantID: map[string]string{"client_id": "env-cid"}},
		{name: "an option wins over AZURE_CLIENT_ID", envClient: "env-cid", opts: []Option{WithObjectID("oid-2")}, wantID: map[string]string{"principal_id": "oid-2"}},
		{name: "WithSystemAssigned ignores AZURE_CLIENT_ID", envClient: "env-cid", opts: []Option{WithSystemAssigned()}, wantID: map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := asServer(t, nil)
			t.Setenv(envClientID, tc.envClient)
			opts, _ := srcOptions(t, tc.opts...)
			c, err := NewAppService(opts...)
			require.NoError(t, err)
			assert.Equal(t, "appservice", c.Source())

			tok, err := c.GetToken(context.Background(), vault+"/.default")
			require.NoError(t, err)
			assert.Equal(t, asToken, tok.AccessToken)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, vault, tok.Resource)

			reqs := s.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/MSI/token/", r.Path)
			want := map[string]string{"api-version": "2019-08-01", "resource": vault}
			for k, v := range tc.wantID {
				want[k] = v
			}
			srcRequireQuery(t, want, r.Query)
			assert.Equal(t, []string{asSecret}, r.Header.Values("X-IDENTITY-HEADER"))
			assert.Empty(t, r.Header.Get("Metadata"))
			assert.Empty(t, r.Header.Get("Authorization"))
		})
	}
}

func TestAppServiceOptionsOverrideTheEnvironment(t *testing.T) {
	s := asServer(t, nil)
	t.Setenv(envIdentityEP, "http://"+closedLoopbackAddr()+"/MSI/token/")
	t.Setenv(envIdentityHeader, "stale-secret")
	opts, _ := srcOptions(t, WithEndpoint(s.URL+"/other/path"), WithIdentityHeader(asSecret))
	c, err := NewAppService(opts...)
	require.NoError(t, err)
	_, err = c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/other/path", reqs[0].Path)
	assert.Equal(t, asSecret, reqs[0].Header.Get("X-IDENTITY-HEADER"))
}

func TestNewAppServiceNamesWhatIsMissing(t *testing.T) {
	t.Run("no IDENTITY_ENDPOINT", func(t *testing.T) {
		srcClearEnv(t)
		t.Setenv(envIdentityHeader, asSecret)
		_, err := NewAppService()
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), "IDENTITY_ENDPOINT")
	})
	t.Run("no IDENTITY_HEADER", func(t *testing.T) {
		srcClearEnv(t)
		t.Setenv(envIdentityEP, "http://127.0.0.1:1/MSI/token/")
		_, err := NewAppService()
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), "IDENTITY_HEADER")
	})
	t.Run("IDENTITY_ENDPOINT that is not a URL", func(t *testing.T) {
		srcClearEnv(t)
		t.Setenv(envIdentityEP, "127.0.0.1:41570/MSI/token")
		t.Setenv(envIdentityHeader, asSecret)
		_, err := NewAppService()
		var ae *ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "IDENTITY_ENDPOINT", ae.Name)
		assert.NotContains(t, err.Error(), asSecret)
	})
}

func TestAppServiceRetriesTheAzureSDKSet(t *testing.T) {
	for _, status := range []int{408, 429, 500, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := asServer(t, func(w http.ResponseWriter, _ *http.Request, n int) {
				if n < 2 {
					srcWriteError(w, status, "busy", "try again")
					return
				}
				srcWriteToken(w, asToken)
			})
			opts, _ := srcOptions(t)
			c, err := NewAppService(opts...)
			require.NoError(t, err)
			tok, err := c.GetToken(context.Background(), vault)
			require.NoError(t, err)
			assert.Equal(t, asToken, tok.AccessToken)
			assert.Len(t, s.requests(), 3)
		})
	}
}

func TestAppServiceDoesNotRetryAClientError(t *testing.T) {
	s := asServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		srcWriteError(w, http.StatusBadRequest, "invalid_request", "Unable to load the proper Managed Identity.")
	})
	opts, _ := srcOptions(t, WithClientID("nope"))
	c, err := NewAppService(opts...)
	require.NoError(t, err)
	_, err = c.GetToken(context.Background(), vault)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "appservice", re.Source)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	assert.Equal(t, 1, re.Attempts)
	assert.Equal(t, "invalid_request", re.ErrorCode)
	assert.Len(t, s.requests(), 1)
}

func TestAppServiceNeverLeaksTheSecretOrTheToken(t *testing.T) {
	t.Run("an endpoint echoing the secret in its errors", func(t *testing.T) {
		asServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			srcWriteError(w, http.StatusInternalServerError, "bad "+asSecret, "header was "+asSecret)
		})
		opts, logs := srcOptions(t)
		c, err := NewAppService(opts...)
		require.NoError(t, err)
		_, err = c.GetToken(context.Background(), vault)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP 500")
		assert.NotContains(t, err.Error(), asSecret)
		assert.NotContains(t, logs.String(), asSecret)
	})
	t.Run("a 200 echoing the secret in an error field", func(t *testing.T) {
		asServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			_, _ = w.Write([]byte(`{"access_token":"` + asToken + `","expires_in":"3600","error":"` + asSecret + `"}`))
		})
		opts, logs := srcOptions(t)
		c, err := NewAppService(opts...)
		require.NoError(t, err)
		_, err = c.GetToken(context.Background(), vault)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "error field")
		for _, s := range []string{asSecret, asToken} {
			assert.NotContains(t, err.Error(), s)
			assert.NotContains(t, logs.String(), s)
		}
	})
	t.Run("a success, logged at debug level", func(t *testing.T) {
		asServer(t, nil)
		opts, logs := srcOptions(t)
		c, err := NewAppService(opts...)
		require.NoError(t, err)
		_, err = c.GetToken(context.Background(), vault)
		require.NoError(t, err)
		require.Contains(t, logs.String(), "token acquired")
		assert.NotContains(t, logs.String(), asSecret)
		assert.NotContains(t, logs.String(), asToken)
	})
}

func TestAppServiceSharesTheCacheAcrossCredentials(t *testing.T) {
	s := asServer(t, nil)
	opts, _ := srcOptions(t)
	for range 3 {
		c, err := NewAppService(opts...)
		require.NoError(t, err)
		tok, err := c.GetToken(context.Background(), vault)
		require.NoError(t, err)
		assert.Equal(t, asToken, tok.AccessToken)
	}
	assert.Len(t, s.requests(), 1, "three credentials for one identity should share one token")
	c, err := NewAppService(opts...)
	require.NoError(t, err)
	tok, err := c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	require.True(t, c.Invalidate(vault, tok))
	_, err = c.GetToken(context.Background(), vault)
	require.NoError(t, err)
	assert.Len(t, s.requests(), 2, "after Invalidate the next GetToken asks again")
	assert.False(t, errors.Is(err, ErrUnavailable))
}
