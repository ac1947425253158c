package mitokentest_test

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

// sfGet sends GET to the Service Fabric endpoint over TLS, trusting any
// certificate, and returns the answer and the thumbprint of the
// certificate the server presented.
func sfGet(t *testing.T, s *mitokentest.Server, query map[string]string, header http.Header) (*http.Response, string, string) {
	t.Helper()
	u := s.URL(mitokentest.ServiceFabric) + "?" + override(q("api-version", "2019-07-01-preview", "resource", vault), query).Encode()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header = header
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sum := sha1.Sum(resp.TLS.PeerCertificates[0].Raw)
	return resp, string(b), strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestServiceFabricProtocol(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	u := s.URL(mitokentest.ServiceFabric)
	require.True(t, strings.HasPrefix(u, "https://127.0.0.1:"), u)
	require.True(t, strings.HasSuffix(u, "/metadata/identity/oauth2/token"), u)
	assert.Len(t, s.Thumbprint(), 40)
	assert.Equal(t, map[string]string{"IDENTITY_ENDPOINT": u, "IDENTITY_HEADER": s.Secret(), "IDENTITY_SERVER_THUMBPRINT": s.Thumbprint()},
		s.Env(mitokentest.ServiceFabric))
	secret := http.Header{"Secret": {s.Secret()}}

	resp, body, thumb := sfGet(t, s, nil, secret)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, s.Thumbprint(), thumb, "the server presents the certificate Thumbprint names")
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   any    `json:"expires_on"`
		TokenType   string `json:"token_type"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	assert.IsType(t, float64(0), tok.ExpiresOn, "expires_on is a JSON number")
	assert.Equal(t, "Bearer", tok.TokenType)

	cases := []struct {
		name   string
		query  map[string]string
		header http.Header
		status int
		code   string
	}{
		{"no secret", nil, http.Header{}, http.StatusUnauthorized, "SecretHeaderNotFound"},
		{"a wrong secret", nil, http.Header{"Secret": {"wrong-secret-value"}}, http.StatusUnauthorized, "InvalidSecret"},
		{"the App Service api-version", map[string]string{"api-version": "2019-08-01"}, secret, http.StatusBadRequest, "invalid_request"},
		{"a user-assigned identity", map[string]string{"client_id": "cid"}, secret, http.StatusBadRequest, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _ := sfGet(t, s, tc.query, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			assert.Equal(t, tc.code, e.Error.Code, "Service Fabric nests its error")
			noSecrets(t, body, s.Secret(), "wrong-secret-value")
		})
	}
	t.Run("plain http is not served", func(t *testing.T) {
		resp, body, err := try(context.Background(), http.MethodGet, strings.Replace(u, "https://", "http://", 1), q("api-version", "2019-07-01-preview", "resource", vault), secret)
		if err == nil { // Go's TLS server answers plain HTTP with a 400 of its own
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.NotContains(t, body, "access_token")
		}
		assert.Equal(t, 1+len(cases), s.Requests(mitokentest.ServiceFabric), "no request reached the handler")
	})
	t.Run("each server has its own certificate", func(t *testing.T) {
		other := mitokentest.NewTestServer(t)
		assert.NotEqual(t, s.Thumbprint(), other.Thumbprint())
	})
}
