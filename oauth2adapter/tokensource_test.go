package oauth2adapter_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
	"github.com/mitoken/mitoken/oauth2adapter"
)

const arm = "https://management.azure.com"

// imdsCredential returns a credential of the emulator's IMDS endpoint.
func imdsCredential(t *testing.T, s *mitokentest.Server) *mitoken.IMDSCredential {
	t.Helper()
	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	require.NoError(t, err)
	return cred
}

func TestTokenCarriesTheTokenAndItsExpiry(t *testing.T) {
	tests := []struct {
		name, resource, asked string
	}{
		{"a resource is asked as it is", arm, arm},
		{"a scope loses its /.default", "https://vault.azure.net/.default", "https://vault.azure.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t, mitokentest.WithTokenLifetime(2*time.Hour))
			cred := imdsCredential(t, s)

			got, err := oauth2adapter.TokenSource(t.Context(), cred, tt.resource).Token()
			require.NoError(t, err)

			want, err := cred.GetToken(t.Context(), tt.asked) // a cache hit: the same token
			require.NoError(t, err)
			require.NotEmpty(t, want.AccessToken)
			assert.Equal(t, want.AccessToken, got.AccessToken)
			assert.Equal(t, "Bearer", got.TokenType)
			assert.True(t, want.ExpiresOn.Equal(got.Expiry), "Expiry %v, want %v", got.Expiry, want.ExpiresOn)
			assert.Empty(t, got.RefreshToken)
			assert.True(t, got.Valid())

			claims, err := mitokentest.DecodeClaims(got.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, tt.asked, claims.Audience)
			assert.Equal(t, claims.ExpiresAt, got.Expiry.Unix())
			log := s.Log()
			require.Len(t, log, 1)
			assert.Equal(t, http.MethodGet, log[0].Method)
			assert.Equal(t, "/metadata/identity/oauth2/token", log[0].Path)
			assert.Equal(t, []string{tt.asked}, log[0].Query["resource"])
		})
	}
}

// sequence is a mitoken.Credential that hands out its tokens in turn, to
// show that the source asks the credential on every call.
type sequence struct {
	mu     sync.Mutex
	tokens []mitoken.Token
	asked  []string
}

func (c *sequence) GetToken(_ context.Context, resource string) (mitoken.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, resource)
	tok := c.tokens[0]
	c.tokens = c.tokens[1:]
	return tok, nil
}

func TestTokenAsksTheCredentialEveryTime(t *testing.T) {
	exp := time.Now().Add(time.Hour).Round(0)
	cred := &sequence{tokens: []mitoken.Token{
		{AccessToken: "first", TokenType: "Bearer", ExpiresOn: exp},
		{AccessToken: "renewed", TokenType: "Bearer", ExpiresOn: exp.Add(time.Hour)},
	}}
	ts := oauth2adapter.TokenSource(t.Context(), cred, arm)

	first, err := ts.Token()
	require.NoError(t, err)
	second, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "first", first.AccessToken)
	assert.Equal(t, exp, first.Expiry)
	assert.Equal(t, "renewed", second.AccessToken, "a token renewed by mitoken's cache is used at once, though the old one is still valid")
	assert.Equal(t, exp.Add(time.Hour), second.Expiry)
	assert.Equal(t, []string{arm, arm}, cred.asked)
}

func TestTokenUsesTheSourcesContext(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := oauth2adapter.TokenSource(ctx, imdsCredential(t, s), arm).Token()
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, s.Requests(mitokentest.IMDS))
}

func TestTokenErrors(t *testing.T) {
	t.Run("a host without the identity is ErrUnavailable", func(t *testing.T) {
		s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
		tok, err := oauth2adapter.TokenSource(t.Context(), imdsCredential(t, s), arm).Token()
		require.ErrorIs(t, err, mitoken.ErrUnavailable)
		var re *mitoken.ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusBadRequest, re.StatusCode)
		assert.Nil(t, tok)
	})

	t.Run("nothing listening is ErrUnavailable", func(t *testing.T) {
		for _, name := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT"} {
			t.Setenv(name, "") // so that New picks IMDS, which fails fast when nothing answers
		}
		cred, err := mitoken.New(mitoken.WithEndpoint("http://"+closedLoopbackAddr()), mitoken.WithCache(mitoken.NewCache()))
		require.NoError(t, err)
		_, err = oauth2adapter.TokenSource(t.Context(), cred, arm).Token()
		require.ErrorIs(t, err, mitoken.ErrUnavailable)
	})

	t.Run("an empty resource is an argument error", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		_, err := oauth2adapter.TokenSource(t.Context(), imdsCredential(t, s), "").Token()
		var ae *mitoken.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "resource", ae.Name)
		assert.Zero(t, s.Requests(mitokentest.IMDS))
	})

	t.Run("a nil credential is an argument error, not a panic", func(t *testing.T) {
		_, err := oauth2adapter.TokenSource(t.Context(), nil, arm).Token()
		var ae *mitoken.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "cred", ae.Name)
	})
}

func TestErrorsHoldNoToken(t *testing.T) {
	const secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.leaked.signature"
	s := mitokentest.NewTestServer(t)
	cred := imdsCredential(t, s)
	good, err := oauth2adapter.TokenSource(t.Context(), cred, "https://storage.azure.com").Token()
	require.NoError(t, err)
	s.Script(mitokentest.IMDS, mitokentest.Response{Status: http.StatusOK,
		Body: `{"access_token":"` + secret + `","expires_in":"soon","token_type":"Bearer"}`})

	api := fakeAPI()
	t.Cleanup(api.Close)
	client := &http.Client{Transport: &oauth2.Transport{Source: oauth2adapter.TokenSource(t.Context(), cred, arm), Base: api.Client().Transport}}
	_, err = client.Get(api.URL)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, err.Error(), "leaked")
	assert.NotContains(t, err.Error(), good.AccessToken)
}

func TestClients(t *testing.T) {
	tests := []struct {
		name   string
		client func(ctx context.Context, ts oauth2.TokenSource, base http.RoundTripper) *http.Client
	}{
		{"oauth2.Transport", func(_ context.Context, ts oauth2.TokenSource, base http.RoundTripper) *http.Client {
			return &http.Client{Transport: &oauth2.Transport{Source: ts, Base: base}}
		}},
		{"oauth2.NewClient", func(ctx context.Context, ts oauth2.TokenSource, base http.RoundTripper) *http.Client {
			return oauth2.NewClient(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: base}), ts)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t)
			api := fakeAPI()
			t.Cleanup(api.Close)
			client := tt.client(t.Context(), oauth2adapter.TokenSource(t.Context(), imdsCredential(t, s), arm), api.Client().Transport)

			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					resp, err := client.Get(api.URL + "/subscriptions")
					if !assert.NoError(t, err) {
						return
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					assert.NoError(t, err)
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					assert.Equal(t, "GET /subscriptions with a token for "+arm, string(body))
				})
			}
			wg.Wait()
			assert.Equal(t, 1, s.Requests(mitokentest.IMDS), "concurrent requests share one token request")
		})
	}
}
