package azadapter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/azadapter"
	"github.com/mitoken/mitoken/mitokentest"
)

const vault = "https://vault.azure.net"

// imdsCredential returns a credential of the emulator's IMDS endpoint.
func imdsCredential(t *testing.T, s *mitokentest.Server) *mitoken.IMDSCredential {
	t.Helper()
	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	require.NoError(t, err)
	return cred
}

func TestGetTokenCarriesTheTokenAndItsTimes(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithTokenLifetime(2*time.Hour), mitokentest.WithRefreshIn(30*time.Minute))
	cred := imdsCredential(t, s)

	got, err := azadapter.New(cred).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vault + "/.default"}})
	require.NoError(t, err)

	// The same cache answers mitoken directly: the very token the adapter returned.
	want, err := cred.GetToken(t.Context(), vault)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Requests(mitokentest.IMDS), "the second call is a cache hit")
	require.NotEmpty(t, want.AccessToken)
	assert.Equal(t, want.AccessToken, got.Token)
	assert.True(t, want.ExpiresOn.Equal(got.ExpiresOn), "ExpiresOn %v, want %v", got.ExpiresOn, want.ExpiresOn)
	assert.True(t, want.RefreshOn.Equal(got.RefreshOn), "RefreshOn %v, want %v", got.RefreshOn, want.RefreshOn)

	// And the times are the token's: it lives two hours, and is renewed
	// before it expires (refresh_in 30 minutes, less mitoken's jitter).
	claims, err := mitokentest.DecodeClaims(got.Token)
	require.NoError(t, err)
	assert.Equal(t, claims.ExpiresAt, got.ExpiresOn.Unix())
	assert.True(t, got.RefreshOn.Before(got.ExpiresOn), "RefreshOn %v is not before ExpiresOn %v", got.RefreshOn, got.ExpiresOn)
	assert.LessOrEqual(t, got.RefreshOn.Unix(), claims.IssuedAt+int64((30*time.Minute).Seconds()))
	assert.Greater(t, got.RefreshOn.Unix(), claims.IssuedAt)
}

func TestGetTokenTurnsTheScopeIntoTheResource(t *testing.T) {
	tests := []struct {
		name, scope, resource string
	}{
		{"a /.default scope loses its suffix", vault + "/.default", vault},
		{"a bare resource is asked as it is", vault, vault},
		{"ARM's scope keeps the slash before /.default", "https://management.azure.com//.default", "https://management.azure.com/"},
		{"an App ID URI that is not a URL", "api://7d2f3a51-0b6e-4c1f-9a43-2f6d8e0c1b24/.default", "api://7d2f3a51-0b6e-4c1f-9a43-2f6d8e0c1b24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t)
			tok, err := azadapter.New(imdsCredential(t, s)).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{tt.scope}})
			require.NoError(t, err)

			log := s.Log()
			require.Len(t, log, 1)
			assert.Equal(t, http.MethodGet, log[0].Method)
			assert.Equal(t, "/metadata/identity/oauth2/token", log[0].Path)
			assert.Equal(t, []string{tt.resource}, log[0].Query["resource"])
			assert.Equal(t, "true", log[0].Header.Get("Metadata"))
			claims, err := mitokentest.DecodeClaims(tok.Token)
			require.NoError(t, err)
			assert.Equal(t, tt.resource, claims.Audience)
		})
	}
}

func TestGetTokenRefusesAnythingButOneScope(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		says   string
	}{
		{"no scopes", nil, "got 0 scopes"},
		{"an empty list", []string{}, "got 0 scopes"},
		{"two scopes", []string{vault + "/.default", "https://storage.azure.com/.default"}, `got 2 scopes ["https://vault.azure.net/.default" "https://storage.azure.com/.default"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t)
			tok, err := azadapter.New(imdsCredential(t, s)).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: tt.scopes})
			var ae *mitoken.ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "scopes", ae.Name)
			assert.Contains(t, err.Error(), tt.says)
			assert.Contains(t, err.Error(), "exactly one scope")
			assert.Empty(t, tok.Token)
			assert.Zero(t, s.Requests(mitokentest.IMDS), "no request is made for a bad argument")
		})
	}
}

func TestGetTokenPassesMitokenErrorsOn(t *testing.T) {
	t.Run("an empty scope is mitoken's argument error", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		_, err := azadapter.New(imdsCredential(t, s)).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"/.default"}})
		var ae *mitoken.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "resource", ae.Name)
		assert.Zero(t, s.Requests(mitokentest.IMDS))
	})

	t.Run("a host without the identity is ErrUnavailable", func(t *testing.T) {
		s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
		_, err := azadapter.New(imdsCredential(t, s)).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vault + "/.default"}})
		require.ErrorIs(t, err, mitoken.ErrUnavailable)
		var re *mitoken.ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	})

	t.Run("nothing listening is ErrUnavailable", func(t *testing.T) {
		for _, name := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT"} {
			t.Setenv(name, "") // so that New picks IMDS, which fails fast when nothing answers
		}
		cred, err := mitoken.New(mitoken.WithEndpoint("http://"+closedLoopbackAddr()), mitoken.WithCache(mitoken.NewCache()))
		require.NoError(t, err)
		_, err = azadapter.New(cred).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vault + "/.default"}})
		require.ErrorIs(t, err, mitoken.ErrUnavailable)
	})

	t.Run("the caller's context stops the request", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := azadapter.New(imdsCredential(t, s)).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vault + "/.default"}})
		require.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, s.Requests(mitokentest.IMDS))
	})

	t.Run("a nil credential is an argument error, not a panic", func(t *testing.T) {
		_, err := azadapter.New(nil).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vault}})
		var ae *mitoken.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "cred", ae.Name)
	})
}

func TestGetTokenErrorsHoldNoToken(t *testing.T) {
	const secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.leaked.signature"
	s := mitokentest.NewTestServer(t)
	cred := azadapter.New(imdsCredential(t, s))
	good, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.NoError(t, err)
	s.Script(mitokentest.IMDS, mitokentest.Response{Status: http.StatusOK,
		Body: `{"access_token":"` + secret + `","expires_in":"soon","token_type":"Bearer"}`})
	_, err = cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{vault + "/.default"}})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, err.Error(), "leaked")
	assert.NotContains(t, err.Error(), good.Token)
}

// pipeline is what an Azure SDK client builds: a bearer token policy over
// cred for scope, sending through api's client.
func pipeline(cred azcore.TokenCredential, scope string, api *httptest.Server) runtime.Pipeline {
	return runtime.NewPipeline("azadaptertest", "v0.0.0", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{scope}, nil)},
	}, &policy.ClientOptions{Transport: api.Client()})
}

func TestBearerTokenPolicy(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	gotAuth := make(chan string, 2)
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth <- r.Header.Get("Authorization")
	}))
	t.Cleanup(api.Close)
	cred := imdsCredential(t, s)
	pl := pipeline(azadapter.New(cred), vault+"/.default", api)

	for range 2 {
		req, err := runtime.NewRequest(t.Context(), http.MethodGet, api.URL)
		require.NoError(t, err)
		resp, err := pl.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	tok, err := cred.GetToken(t.Context(), vault)
	require.NoError(t, err)
	assert.Equal(t, "Bearer "+tok.AccessToken, <-gotAuth)
	assert.Equal(t, "Bearer "+tok.AccessToken, <-gotAuth)
	assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
}

func TestBearerTokenPolicyKeepsErrUnavailable(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the API got a request without a token")
	}))
	t.Cleanup(api.Close)
	pl := pipeline(azadapter.New(imdsCredential(t, s)), vault+"/.default", api)

	req, err := runtime.NewRequest(t.Context(), http.MethodGet, api.URL)
	require.NoError(t, err)
	_, err = pl.Do(req)
	require.ErrorIs(t, err, mitoken.ErrUnavailable)
	assert.Equal(t, 1, s.Requests(mitokentest.IMDS), "the SDK does not retry the credential's failure")
}

func TestKeyVaultClient(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	v := fakeVault(s, "s3cret")
	t.Cleanup(v.Close)
	client, err := azsecrets.NewClient(v.URL, azadapter.New(imdsCredential(t, s)), &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: v.Client()},
		DisableChallengeResourceVerification: true,
	})
	require.NoError(t, err)

	for _, name := range []string{"one", "two"} {
		resp, err := client.GetSecret(t.Context(), name, "", nil)
		require.NoError(t, err)
		require.NotNil(t, resp.Value)
		assert.Equal(t, "s3cret", *resp.Value)
		assert.Equal(t, name, resp.ID.Name())
	}
	log := s.Log()
	require.Len(t, log, 1, "one token serves both calls")
	assert.Equal(t, []string{vault}, log[0].Query["resource"], "the challenge's resource, without /.default")
}

// A wrong use of the SDK shows in the errors, not in a request.
func TestErrorsBeforeAnyRequest(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the API got a request")
	}))
	t.Cleanup(api.Close)
	pl := runtime.NewPipeline("azadaptertest", "v0.0.0", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(azadapter.New(imdsCredential(t, s)), nil, nil)},
	}, &policy.ClientOptions{Transport: api.Client()})
	req, err := runtime.NewRequest(t.Context(), http.MethodGet, api.URL)
	require.NoError(t, err)
	_, err = pl.Do(req)
	var ae *mitoken.ArgumentError
	require.True(t, errors.As(err, &ae), "got %v", err)
	assert.Equal(t, "scopes", ae.Name)
	assert.Zero(t, s.Requests(mitokentest.IMDS))
}
