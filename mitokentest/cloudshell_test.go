package mitokentest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

// postForm sends POST endpoint with form as an url-encoded body (or body
// as it is, when form is nil) and header, through a client of its own.
func postForm(t *testing.T, endpoint string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range header {
		req.Header[k] = vs
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// errorCode returns the "error" field of an OAuth-style error body.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return e.Error
}

func TestCloudShellProtocol(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	u := s.URL(mitokentest.CloudShell)
	require.True(t, strings.HasSuffix(u, "/oauth2/token"), u)
	assert.Equal(t, map[string]string{"MSI_ENDPOINT": u}, s.Env(mitokentest.CloudShell))

	resp, body := postForm(t, u, url.Values{"resource": {vault}}, metadata())
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   string `json:"expires_on"`
		Resource    string `json:"resource"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	claims, err := mitokentest.DecodeClaims(tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, vault, claims.Audience)
	assert.Equal(t, vault, tok.Resource)
	assert.NotEmpty(t, tok.ExpiresOn)

	cases := []struct {
		name   string
		form   url.Values
		header http.Header
		status int
	}{
		{"no Metadata header", url.Values{"resource": {vault}}, nil, http.StatusBadRequest},
		{"no resource", url.Values{}, metadata(), http.StatusBadRequest},
		{"a user-assigned identity", url.Values{"resource": {vault}, "client_id": {"cid"}}, metadata(), http.StatusBadRequest},
		{"a scope instead of a resource", url.Values{"resource": {vault + "/.default"}}, metadata(), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postForm(t, u, tc.form, tc.header)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			assert.NotEmpty(t, errorCode(t, body))
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, _ := get(t, u, q("resource", vault), metadata())
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
	})
	t.Run("the log holds the form", func(t *testing.T) {
		log := s.Log()
		require.NotEmpty(t, log)
		assert.Equal(t, url.Values{"resource": {vault}}, log[0].Form)
		assert.Equal(t, mitokentest.CloudShell, log[0].Source)
	})
}
