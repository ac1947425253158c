package mitoken

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	sfSecret = "service-fabric-secret-8e21"
	sfToken  = "eyJ.service-fabric-token.sig"
)

// sfServer is a Service Fabric endpoint over https, exported through
// IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT (the
// thumbprint of httptest's certificate).
func sfServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) (*srcServer, string) {
	t.Helper()
	srcClearEnv(t)
	if answer == nil {
		answer = func(w http.ResponseWriter, _ *http.Request, _ int) { srcWriteToken(w, sfToken) }
	}
	s := startSrcServer(t, true, answer)
	sum := sha1.Sum(s.Certificate().Raw)
	thumb := strings.ToUpper(hex.EncodeToString(sum[:]))
	t.Setenv(envIdentityEP, s.URL+"/metadata/identity/oauth2/token")
	t.Setenv(envIdentityHeader, sfSecret)
	t.Setenv(envThumbprint, thumb)
	return s, thumb
}

func sfGetToken(t *testing.T, extra ...Option) (Token, *srcLog, error) {
	t.Helper()
	opts, logs := srcOptions(t, extra...)
	c, err := NewServiceFabric(opts...)
	require.NoError(t, err)
	assert.Equal(t, "servicefabric", c.Source())
	tok, err := c.GetToken(context.Background(), vault)
	return tok, logs, err
}

// otherThumbprint is the thumbprint of some certificate that is not the server's.
const otherThumbprint = "0123456789ABCDEF0123456789ABCDEF01234567"

func TestServiceFabricSendsTheDocumentedRequestOverThePinnedConnection(t *testing.T) {
	cases := []struct {
		name  string
		thumb func(upper string) string
		env   string // AZURE_CLIENT_ID, ignored
	}{
		{"upper-case thumbprint", func(u string) string { return u }, ""},
		{"lower-case thumbprint", strings.ToLower, ""},
		{"thumbprint grouped with colons", func(u string) string {
			var parts []string
			for i := 0; i < len(u); i += 2 {
				parts = append(parts, u[i:i+2])
			}
			return strings.Join(parts, ":")
		}, ""},
		{"thumbprint grouped with spaces", func(u string) string { return u[:20] + " " + u[20:] + " " }, ""},
		{"AZURE_CLIENT_ID is ignored", func(u string) string { return u }, "env-cid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, thumb := sfServer(t, nil)
			t.Setenv(envThumbprint, tc.thumb(thumb))
			t.Setenv(envClientID, tc.env)
			tok, _, err := sfGetToken(t)
			require.NoError(t, err)
			assert.Equal(t, sfToken, tok.AccessToken)

			reqs := s.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/metadata/identity/oauth2/token", r.Path)
			srcRequireQuery(t, map[string]string{"api-version": "2019-07-01-preview", "resource": vault}, r.Query)
			assert.Equal(t, []string{sfSecret}, r.Header.Values("Secret"))
			assert.Empty(t, r.Header.Get("X-IDENTITY-HEADER"))
			assert.Empty(t, r.Header.Get("Metadata"))
		})
	}
}

func TestServiceFabricRefusesACertificateThatIsNotPinned(t *testing.T) {
	trustAll := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	cases := []struct {
		name     string
		envThumb bool // IDENTITY_SERVER_THUMBPRINT holds the wrong pin
		opts     []Option
	}{
		{"the wrong pin from the environment", true, nil},
		{"a WithHTTPClient whose transport trusts anything", true, []Option{WithHTTPClient(trustAll)}},
		{"the wrong pin by WithServerThumbprint, overriding the right one", false, []Option{WithServerThumbprint(otherThumbprint)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := sfServer(t, nil)
			if tc.envThumb {
				t.Setenv(envThumbprint, otherThumbprint)
			}
			_, logs, err := sfGetToken(t, tc.opts...)
			require.Error(t, err)
			var pe *pinError
			require.True(t, errors.As(err, &pe), "want a pin mismatch, got %v", err)
			assert.Contains(t, err.Error(), "not the pinned "+otherThumbprint)
			assert.Contains(t, err.Error(), "after 1 attempt", "a mismatch is not retried")
			assert.Empty(t, s.requests(), "no request, and so no secret, reached the server")
			assert.False(t, errors.Is(err, ErrUnavailable))
			assert.NotContains(t, err.Error(), sfSecret)
			assert.NotContains(t, logs.String(), sfSecret)
		})
	}
}

func TestServiceFabricWithHTTPClientKeepsThePin(t *testing.T) {
	s, _ := sfServer(t, nil)
	called := false
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		called = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	_, _, err := sfGetToken(t, WithHTTPClient(hc))
	require.NoError(t, err)
	assert.False(t, called, "the client's Transport is not used")
	assert.Len(t, s.requests(), 1)
}

func TestNewServiceFabricChecksItsConfiguration(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		opts     []Option
		wantArg  string // the ArgumentError's Name, or ""
		wantText string
	}{
		{name: "no IDENTITY_SERVER_THUMBPRINT", env: map[string]string{envThumbprint: ""}, wantText: "IDENTITY_SERVER_THUMBPRINT is not set"},
		{name: "no IDENTITY_HEADER", env: map[string]string{envIdentityHeader: ""}, wantText: "IDENTITY_HEADER is not set"},
		{name: "no IDENTITY_ENDPOINT", env: map[string]string{envIdentityEP: ""}, wantText: "IDENTITY_ENDPOINT is not set"},
		{name: "a thumbprint too short", env: map[string]string{envThumbprint: "0123ABCD"}, wantArg: "IDENTITY_SERVER_THUMBPRINT", wantText: "40 hex digits"},
		{name: "a thumbprint with a non-hex digit", env: map[string]string{envThumbprint: strings.Repeat("G", 40)}, wantArg: "IDENTITY_SERVER_THUMBPRINT", wantText: "40 hex digits"},
		{name: "a SHA-256 thumbprint", env: map[string]string{envThumbprint: strings.Repeat("AB", 32)}, wantArg: "IDENTITY_SERVER_THUMBPRINT", wantText: "got 64 characters"},
		{name: "a malformed WithServerThumbprint", opts: []Option{WithServerThumbprint("xyz")}, wantArg: "WithServerThumbprint"},
		{name: "a plain-http endpoint", env: map[string]string{envIdentityEP: "http://127.0.0.1:2377/metadata/identity/oauth2/token"}, wantArg: "IDENTITY_ENDPOINT", wantText: "must be https"},
		{name: "WithClientID", opts: []Option{WithClientID("cid")}, wantArg: "WithClientID", wantText: "Service Fabric supports only the application's system-assigned identity"},
		{name: "WithObjectID", opts: []Option{WithObjectID("oid")}, wantArg: "WithObjectID"},
		{name: "WithResourceID", opts: []Option{WithResourceID("/subscriptions/s/x")}, wantArg: "WithResourceID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sfServer(t, nil)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := NewServiceFabric(tc.opts...)
			require.Error(t, err)
			if tc.wantArg != "" {
				var ae *ArgumentError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tc.wantArg, ae.Name)
			} else {
				assert.ErrorIs(t, err, ErrUnavailable)
			}
			assert.Contains(t, err.Error(), tc.wantText)
			assert.NotContains(t, err.Error(), sfSecret)
		})
	}
}

func TestServiceFabricNeverLeaksTheSecretOrTheToken(t *testing.T) {
	sfServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"SecretHeaderNotFound","message":"got ` + sfSecret + `"}}`))
	})
	_, logs, err := sfGetToken(t)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "SecretHeaderNotFound", re.ErrorCode)
	assert.Equal(t, 1, re.Attempts)
	assert.NotContains(t, err.Error(), sfSecret)
	assert.NotContains(t, logs.String(), sfSecret)
}

func TestServiceFabricCredentialsShareOneConnectionPoolPerPin(t *testing.T) {
	pin, err := parseThumbprint("test", otherThumbprint)
	require.NoError(t, err)
	assert.Same(t, pinnedTransport(pin), pinnedTransport(pin))
	other := pin
	other[0]++
	assert.NotSame(t, pinnedTransport(pin), pinnedTransport(other))
}
