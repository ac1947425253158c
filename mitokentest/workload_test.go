package mitokentest_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

func TestWorkloadIdentityEndpoint(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(mitokentest.Identity{}))
	sys, _ := s.SystemIdentity()
	user := s.UserAssigned()[0]
	u := s.URL(mitokentest.WorkloadIdentity)
	require.True(t, strings.HasSuffix(u, "/"+s.Tenant()+"/oauth2/v2.0/token"), u)
	env := s.Env(mitokentest.WorkloadIdentity)
	assert.Equal(t, map[string]string{
		"AZURE_AUTHORITY_HOST": strings.TrimSuffix(u, s.Tenant()+"/oauth2/v2.0/token"), "AZURE_TENANT_ID": s.Tenant(),
		"AZURE_CLIENT_ID": sys.ClientID, "AZURE_FEDERATED_TOKEN_FILE": s.FederatedTokenFile(),
	}, env)
	assertion, err := os.ReadFile(s.FederatedTokenFile())
	require.NoError(t, err)
	_, err = mitokentest.DecodeClaims(string(assertion))
	require.NoError(t, err, "the federated token is JWT-shaped")

	form := func(m map[string]string) url.Values {
		f := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {sys.ClientID}, "scope": {vault + "/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {string(assertion)},
		}
		return override(f, m)
	}
	for name, cid := range map[string]string{"the system identity's client ID": sys.ClientID, "a user-assigned identity's": user.ClientID} {
		t.Run(name, func(t *testing.T) {
			resp, body := postForm(t, u, form(map[string]string{"client_id": cid}), nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Contains(t, body, `"expires_in":86400`, "Entra's numbers are JSON numbers")
			assert.Contains(t, body, `"ext_expires_in":86400`)
		})
	}
	cases := []struct {
		name    string
		path    string // instead of u
		form    map[string]string
		status  int
		code    string
		aadsts  string
		noShows string // must not appear in the answer
	}{
		{name: "another tenant", path: strings.Replace(u, s.Tenant(), "other-tenant", 1), status: 400, code: "invalid_request", aadsts: "AADSTS90002"},
		{name: "no client_assertion", form: map[string]string{"client_assertion": ""}, status: 400, code: "invalid_request", aadsts: "AADSTS900144"},
		{name: "another grant", form: map[string]string{"grant_type": "password"}, status: 400, code: "unsupported_grant_type"},
		{name: "a scope without /.default", form: map[string]string{"scope": vault}, status: 400, code: "invalid_scope"},
		{name: "an unknown client", form: map[string]string{"client_id": "nobody"}, status: 400, code: "unauthorized_client", aadsts: "AADSTS700016"},
		{name: "a wrong assertion", form: map[string]string{"client_assertion": "forged.assertion.value"}, status: 401, code: "invalid_client", aadsts: "AADSTS70021", noShows: "forged.assertion.value"},
		{name: "a wrong assertion type", form: map[string]string{"client_assertion_type": "jwt"}, status: 400, code: "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := u
			if tc.path != "" {
				target = tc.path
			}
			resp, body := postForm(t, target, form(tc.form), nil)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			assert.Equal(t, tc.code, errorCode(t, body))
			assert.Contains(t, body, tc.aadsts)
			noSecrets(t, body, string(assertion))
			if tc.noShows != "" {
				noSecrets(t, body, tc.noShows)
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, _ := get(t, u, nil, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
	t.Run("rotation retires the old token", func(t *testing.T) {
		require.NoError(t, s.RotateFederatedToken())
		fresh, err := os.ReadFile(s.FederatedTokenFile())
		require.NoError(t, err)
		require.NotEqual(t, string(assertion), string(fresh))
		resp, body := postForm(t, u, form(nil), nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, body, "AADSTS700024")
		resp, body = postForm(t, u, form(map[string]string{"client_assertion": string(fresh)}), nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	})
	t.Run("the log masks the assertion", func(t *testing.T) {
		for _, r := range s.Log() {
			if r.Source != mitokentest.WorkloadIdentity || r.Form.Get("client_assertion") == "" {
				continue
			}
			assert.Equal(t, mitokentest.Redacted, r.Form.Get("client_assertion"))
			assert.NotEmpty(t, r.Form.Get("grant_type"), "the other fields are kept")
		}
	})
	t.Run("Close removes the token file", func(t *testing.T) {
		other, err := mitokentest.NewServer()
		require.NoError(t, err)
		file := other.FederatedTokenFile()
		require.FileExists(t, file)
		other.Close()
		assert.NoFileExists(t, file)
	})
}
