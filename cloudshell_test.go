package mitoken

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const csToken = "eyJ.cloud-shell-token.sig"

// csServer is a Cloud Shell endpoint at /oauth2/token, exported through
// MSI_ENDPOINT.
func csServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *srcServer {
	t.Helper()
	srcClearEnv(t)
	if answer == nil {
		answer = func(w http.ResponseWriter, _ *http.Request, _ int) { srcWriteToken(w, csToken) }
	}
	s := newSrcServer(t, answer)
	t.Setenv(envMSIEndpoint, s.URL+"/oauth2/token")
	return s
}

func csGetToken(t *testing.T, extra ...Option) (Token, *srcLog, error) {
	t.Helper()
	opts, logs := srcOptions(t, extra...)
	c, err := NewCloudShell(opts...)
	require.NoError(t, err)
	tok, err := c.GetToken(context.Background(), vault+"/.default")
	return tok, logs, err
}

func TestCloudShellPostsTheResourceAsAForm(t *testing.T) {
	for _, envClient := range []string{"", "env-cid"} {
		t.Run("AZURE_CLIENT_ID="+envClient, func(t *testing.T) {
			s := csServer(t, nil)
			t.Setenv(envClientID, envClient) // ignored: Cloud Shell has one identity
			tok, _, err := csGetToken(t)
			require.NoError(t, err)
			assert.Equal(t, csToken, tok.AccessToken)
			assert.Equal(t, vault, tok.Resource)

			reqs := s.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/oauth2/token", r.Path)
			assert.Empty(t, r.Query)
			assert.Equal(t, url.Values{"resource": {vault}}, r.Form)
			assert.Equal(t, "true", r.Header.Get("Metadata"))
			assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
			assert.Empty(t, r.Header.Get("Authorization"))
		})
	}
}

func TestCloudShellRefusesUserAssignedIdentities(t *testing.T) {
	for name, opt := range map[string]Option{
		"WithClientID": WithClientID("cid"), "WithObjectID": WithObjectID("oid"), "WithResourceID": WithResourceID("/subscriptions/s/x"),
	} {
		t.Run(name, func(t *testing.T) {
			csServer(t, nil)
			_, err := NewCloudShell(opt)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, name, ae.Name)
			assert.Contains(t, err.Error(), "Cloud Shell supports only the system-assigned identity")
		})
	}
}

func TestNewCloudShellNamesTheMissingEndpoint(t *testing.T) {
	srcClearEnv(t)
	_, err := NewCloudShell()
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "MSI_ENDPOINT")

	t.Setenv(envMSIEndpoint, "localhost:50342/oauth2/token")
	_, err = NewCloudShell()
	var ae *ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "MSI_ENDPOINT", ae.Name)
}

func TestCloudShellRetryResendsTheSameForm(t *testing.T) {
	s := csServer(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n < 2 {
			srcWriteError(w, http.StatusServiceUnavailable, "busy", "try again")
			return
		}
		srcWriteToken(w, csToken)
	})
	_, _, err := csGetToken(t)
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, url.Values{"resource": {vault}}, r.Form, "attempt %d", i+1)
		assert.Equal(t, http.MethodPost, r.Method)
	}
}

func TestCloudShellErrorsAndLogsHoldNoToken(t *testing.T) {
	csServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		_, _ = w.Write([]byte(`{"access_token":"` + csToken + `","expires_in":"3600","error":"` + csToken + `"}`))
	})
	_, logs, err := csGetToken(t)
	require.Error(t, err)
	assert.Equal(t, "cloudshell", err.(*ResponseError).Source)
	assert.NotContains(t, err.Error(), csToken)
	assert.NotContains(t, logs.String(), csToken)
}
