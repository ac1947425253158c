package mitokentest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

func TestAzureMLProtocol(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(mitokentest.Identity{}))
	sys, _ := s.SystemIdentity()
	user := s.UserAssigned()[0]
	u := s.URL(mitokentest.AzureML)
	assert.Equal(t, map[string]string{"MSI_ENDPOINT": u, "MSI_SECRET": s.Secret(), "DEFAULT_IDENTITY_CLIENT_ID": sys.ClientID},
		s.Env(mitokentest.AzureML))
	secret := http.Header{"Secret": {s.Secret()}}

	for name, tc := range map[string]struct{ clientid, want string }{
		"an empty clientid is the default identity": {"", sys.ClientID},
		"the default identity by client ID":         {sys.ClientID, sys.ClientID},
		"a user-assigned identity by client ID":     {user.ClientID, user.ClientID},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, u, q("api-version", "2017-09-01", "resource", vault, "clientid", tc.clientid), secret)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			var tok struct {
				AccessToken string `json:"access_token"`
				ExpiresOn   string `json:"expires_on"`
				ClientID    string `json:"client_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &tok))
			assert.Equal(t, tc.want, tok.ClientID)
			exp, err := time.Parse("01/02/2006 15:04:05 -07:00", tok.ExpiresOn)
			require.NoError(t, err, "expires_on is the 2017 date form")
			claims, err := mitokentest.DecodeClaims(tok.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, claims.ExpiresAt, exp.Unix())
			assert.Equal(t, tc.want, claims.AppID)
		})
	}
	cases := []struct {
		name   string
		query  map[string]string
		header http.Header
		status int
	}{
		{"no secret", nil, http.Header{}, http.StatusUnauthorized},
		{"a wrong secret", nil, http.Header{"Secret": {"wrong-secret-value"}}, http.StatusUnauthorized},
		{"the App Service api-version", map[string]string{"api-version": "2019-08-01"}, secret, http.StatusBadRequest},
		{"an unknown clientid", map[string]string{"clientid": "nobody"}, secret, http.StatusBadRequest},
		{"object_id", map[string]string{"object_id": user.ObjectID}, secret, http.StatusBadRequest},
		{"no resource", map[string]string{"resource": ""}, secret, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			query := override(q("api-version", "2017-09-01", "resource", vault), tc.query)
			resp, body := get(t, u, query, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			noSecrets(t, body, s.Secret(), "wrong-secret-value")
		})
	}
	for _, r := range s.Log() {
		if r.Header.Get("Secret") != "" {
			assert.Equal(t, mitokentest.Redacted, r.Header.Get("Secret"))
		}
	}
}
