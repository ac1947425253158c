package mitoken

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	mlSecret = "azure-ml-secret-51c7"
	mlToken  = "eyJ.azure-ml-token.sig"
)

// mlServer is an Azure ML endpoint at /MSI/auth, exported through
// MSI_ENDPOINT and MSI_SECRET.
func mlServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *srcServer {
	t.Helper()
	srcClearEnv(t)
	if answer == nil {
		answer = func(w http.ResponseWriter, _ *http.Request, _ int) { srcWriteToken(w, mlToken) }
	}
	s := newSrcServer(t, answer)
	t.Setenv(envMSIEndpoint, s.URL+"/MSI/auth")
	t.Setenv(envMSISecret, mlSecret)
	return s
}

func mlGetToken(t *testing.T, extra ...Option) (Token, *srcLog, error) {
	t.Helper()
	opts, logs := srcOptions(t, extra...)
	c, err := NewAzureML(opts...)
	require.NoError(t, err)
	assert.Equal(t, "azureml", c.Source())
	tok, err := c.GetToken(context.Background(), vault)
	return tok, logs, err
}

func TestAzureMLSendsTheDocumentedRequestForEachIdentity(t *testing.T) {
	cases := []struct {
		name                string
		defaultID, envAzure string
		opts                []Option
		want                string // clientid
	}{
		{name: "no identity at all sends an empty clientid", want: ""},
		{name: "DEFAULT_IDENTITY_CLIENT_ID is the default", defaultID: "ml-default", want: "ml-default"},
		{name: "WithClientID overrides DEFAULT_IDENTITY_CLIENT_ID", defaultID: "ml-default", opts: []Option{WithClientID("opt-cid")}, want: "opt-cid"},
		{name: "DEFAULT_IDENTITY_CLIENT_ID wins over AZURE_CLIENT_ID", defaultID: "ml-default", envAzure: "env-cid", want: "ml-default"},
		{name: "AZURE_CLIENT_ID when DEFAULT_IDENTITY_CLIENT_ID is unset", envAzure: "env-cid", want: "env-cid"},
		{name: "WithSystemAssigned skips AZURE_CLIENT_ID", envAzure: "env-cid", opts: []Option{WithSystemAssigned()}, want: ""},
		{name: "WithSystemAssigned keeps the compute's default identity", defaultID: "ml-default", envAzure: "env-cid",
			opts: []Option{WithSystemAssigned()}, want: "ml-default"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mlServer(t, nil)
			t.Setenv(envDefaultMLID, tc.defaultID)
			t.Setenv(envClientID, tc.envAzure)
			tok, _, err := mlGetToken(t, tc.opts...)
			require.NoError(t, err)
			assert.Equal(t, mlToken, tok.AccessToken)

			reqs := s.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/MSI/auth", r.Path)
			srcRequireQuery(t, map[string]string{"api-version": "2017-09-01", "resource": vault, "clientid": tc.want}, r.Query)
			assert.Equal(t, []string{mlSecret}, r.Header.Values("Secret"))
			assert.Empty(t, r.Header.Get("X-IDENTITY-HEADER"))
			assert.Empty(t, r.Header.Get("Metadata"))
		})
	}
}

func TestAzureMLOptionsOverrideTheEnvironment(t *testing.T) {
	s := mlServer(t, nil)
	t.Setenv(envMSISecret, "stale")
	_, _, err := mlGetToken(t, WithEndpoint(s.URL+"/other"), WithIdentityHeader(mlSecret))
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/other", reqs[0].Path)
	assert.Equal(t, mlSecret, reqs[0].Header.Get("Secret"))
}

func TestAzureMLNamesIdentitiesByClientIDOnly(t *testing.T) {
	for name, opt := range map[string]Option{"WithObjectID": WithObjectID("oid"), "WithResourceID": WithResourceID("/subscriptions/s/x")} {
		t.Run(name, func(t *testing.T) {
			mlServer(t, nil)
			_, err := NewAzureML(opt)
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, name, ae.Name)
			assert.Contains(t, err.Error(), "WithClientID")
		})
	}
}

func TestNewAzureMLNamesWhatIsMissing(t *testing.T) {
	srcClearEnv(t)
	t.Setenv(envMSISecret, mlSecret)
	_, err := NewAzureML()
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "MSI_ENDPOINT")

	srcClearEnv(t)
	t.Setenv(envMSIEndpoint, "http://127.0.0.1:1/MSI/auth")
	_, err = NewAzureML()
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "MSI_SECRET")
}

func TestAzureMLReadsThe2017DateForm(t *testing.T) {
	exp := time.Now().Add(90 * time.Minute).UTC().Truncate(time.Second)
	// The same instant written with a +02:00 offset, as .NET prints it.
	local := exp.In(time.FixedZone("", 2*60*60)).Format("01/02/2006 15:04:05 -07:00")
	mlServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"expires_on":%q,"resource":%q,"token_type":"Bearer"}`, mlToken, local, vault)
	})
	tok, _, err := mlGetToken(t)
	require.NoError(t, err)
	assert.True(t, exp.Equal(tok.ExpiresOn), "expires_on %q read as %v, want %v", local, tok.ExpiresOn, exp)
}

func TestAzureMLNeverLeaksTheSecretOrTheToken(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request, n int)
	}{
		{"an endpoint echoing the secret in its errors", func(w http.ResponseWriter, _ *http.Request, _ int) {
			srcWriteError(w, http.StatusBadRequest, "bad "+mlSecret, "secret was "+mlSecret)
		}},
		{"a success, logged at debug level", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mlServer(t, tc.answer)
			_, logs, err := mlGetToken(t)
			if tc.answer != nil {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "HTTP 400")
				assert.NotContains(t, err.Error(), mlSecret)
			} else {
				require.NoError(t, err)
			}
			assert.NotContains(t, logs.String(), mlSecret)
			assert.NotContains(t, logs.String(), mlToken)
		})
	}
}
