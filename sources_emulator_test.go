package mitoken_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// Round trips through the real credentials against the emulator, for the
// sources added after IMDS, App Service and Arc. The TestMain of package
// mitoken (main_test.go) runs these too.

const emVault = "https://vault.azure.net"

// emClearEnv empties every variable that source detection reads.
func emClearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "AZURE_CLIENT_ID", "MSI_ENDPOINT", "MSI_SECRET",
		"IDENTITY_SERVER_THUMBPRINT", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"} {
		t.Setenv(k, "")
	}
}

// newForSource builds the credential of src with its constructor.
func newForSource(src mitokentest.Source, opts ...mitoken.Option) (mitoken.Credential, error) {
	switch src {
	case mitokentest.CloudShell:
		return mitoken.NewCloudShell(opts...)
	case mitokentest.AzureML:
		return mitoken.NewAzureML(opts...)
	case mitokentest.ServiceFabric:
		return mitoken.NewServiceFabric(opts...)
	case mitokentest.WorkloadIdentity:
		return mitoken.NewWorkloadIdentity(opts...)
	}
	panic("no constructor for " + string(src))
}

var laterSources = []mitokentest.Source{mitokentest.CloudShell, mitokentest.AzureML, mitokentest.ServiceFabric, mitokentest.WorkloadIdentity}

func TestLaterSourcesRoundTripThroughTheEmulator(t *testing.T) {
	for _, src := range laterSources {
		t.Run(string(src)+" by Options", func(t *testing.T) {
			emClearEnv(t)
			s := mitokentest.NewTestServer(t)
			logs := &mitoken.TestLog{}
			cred, err := newForSource(src, append(s.Options(src), logs.Option())...)
			require.NoError(t, err)
			assert.Equal(t, string(src), mitoken.SourceOf(cred))
			emCheckToken(t, s, src, cred)
			assert.NotContains(t, logs.String(), s.Secret())
		})
		t.Run(string(src)+" detected by New from Env", func(t *testing.T) {
			emClearEnv(t)
			s := mitokentest.NewTestServer(t)
			for k, v := range s.Env(src) {
				t.Setenv(k, v)
			}
			cred, err := mitoken.New(mitoken.WithCache(mitoken.NewCache()))
			require.NoError(t, err)
			require.Equal(t, string(src), mitoken.SourceOf(cred))
			emCheckToken(t, s, src, cred)
		})
	}
}

// emCheckToken gets a Key Vault token twice (the second from the cache)
// and checks its claims against the server's system identity.
func emCheckToken(t *testing.T, s *mitokentest.Server, src mitokentest.Source, cred mitoken.Credential) {
	t.Helper()
	for range 2 {
		tok, err := cred.GetToken(context.Background(), emVault)
		require.NoError(t, err)
		assert.Equal(t, emVault, tok.Resource)
		claims, err := mitokentest.DecodeClaims(tok.AccessToken)
		require.NoError(t, err)
		assert.Equal(t, emVault, claims.Audience)
		assert.Equal(t, s.Tenant(), claims.TenantID)
		sys, _ := s.SystemIdentity()
		assert.Equal(t, sys.ClientID, claims.AppID)
		assert.True(t, tok.ExpiresOn.Unix() == claims.ExpiresAt, "expires_on is read exactly")
	}
	assert.Equal(t, 1, s.Requests(src), "the second token came from the cache")
}

func TestAzureMLUserAssignedThroughTheEmulator(t *testing.T) {
	emClearEnv(t)
	s := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(mitokentest.Identity{}))
	user := s.UserAssigned()[0]
	cred, err := mitoken.NewAzureML(append(s.Options(mitokentest.AzureML), mitoken.WithClientID(user.ClientID))...)
	require.NoError(t, err)
	tok, err := cred.GetToken(context.Background(), emVault)
	require.NoError(t, err)
	claims, err := mitokentest.DecodeClaims(tok.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, user.ClientID, claims.AppID)
	assert.Equal(t, user.ClientID, s.Log()[0].Query.Get("clientid"))
}

func TestServiceFabricRefusesAnotherServersCertificate(t *testing.T) {
	emClearEnv(t)
	s := mitokentest.NewTestServer(t)
	other := mitokentest.NewTestServer(t) // its own self-signed certificate
	require.NotEqual(t, s.Thumbprint(), other.Thumbprint())
	logs := &mitoken.TestLog{}
	cred, err := mitoken.NewServiceFabric(append(s.Options(mitokentest.ServiceFabric),
		mitoken.WithServerThumbprint(other.Thumbprint()), logs.Option())...)
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), emVault)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not the pinned "+other.Thumbprint())
	assert.Contains(t, err.Error(), "after 1 attempt")
	assert.Equal(t, 0, s.Requests(mitokentest.ServiceFabric), "the secret never reached the server")
	assert.NotContains(t, err.Error(), s.Secret())
	assert.NotContains(t, logs.String(), s.Secret())
}

func TestServiceFabricWrongSecretThroughTheEmulator(t *testing.T) {
	emClearEnv(t)
	s := mitokentest.NewTestServer(t)
	const wrong = "not-the-service-fabric-secret"
	logs := &mitoken.TestLog{}
	cred, err := mitoken.NewServiceFabric(append(s.Options(mitokentest.ServiceFabric), mitoken.WithIdentityHeader(wrong), logs.Option())...)
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), emVault)
	var re *mitoken.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 401, re.StatusCode)
	assert.Equal(t, "InvalidSecret", re.ErrorCode)
	for _, secret := range []string{wrong, s.Secret()} {
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, logs.String(), secret)
	}
}

func TestWorkloadIdentitySeesTheRotatedTokenFile(t *testing.T) {
	emClearEnv(t)
	s := mitokentest.NewTestServer(t)
	old, err := os.ReadFile(s.FederatedTokenFile())
	require.NoError(t, err)
	stale := filepath.Join(t.TempDir(), "stale-token")
	require.NoError(t, os.WriteFile(stale, old, 0o600))

	logs := &mitoken.TestLog{}
	cred, err := mitoken.NewWorkloadIdentity(append(s.Options(mitokentest.WorkloadIdentity), logs.Option())...)
	require.NoError(t, err)
	tok, err := cred.GetToken(context.Background(), emVault)
	require.NoError(t, err)

	require.NoError(t, s.RotateFederatedToken())
	fresh, err := os.ReadFile(s.FederatedTokenFile())
	require.NoError(t, err)
	require.NotEqual(t, old, fresh)

	require.True(t, cred.Invalidate(emVault, tok))
	tok2, err := cred.GetToken(context.Background(), emVault)
	require.NoError(t, err, "the second request carries the rotated token, which the endpoint accepts")
	assert.NotEqual(t, tok.AccessToken, tok2.AccessToken)
	assert.Equal(t, 2, s.Requests(mitokentest.WorkloadIdentity))

	// A credential still reading the old token is refused, and says why
	// without showing the token.
	staleCred, err := mitoken.NewWorkloadIdentity(append(s.Options(mitokentest.WorkloadIdentity),
		mitoken.WithFederatedTokenFile(stale), mitoken.WithCache(mitoken.NewCache()), logs.Option())...)
	require.NoError(t, err)
	_, err = staleCred.GetToken(context.Background(), emVault)
	var re *mitoken.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_client", re.ErrorCode)
	assert.Contains(t, re.Description, "AADSTS700024")
	for _, secret := range [][]byte{old, fresh, []byte(tok.AccessToken), []byte(tok2.AccessToken)} {
		assert.NotContains(t, err.Error(), string(secret))
		assert.NotContains(t, logs.String(), string(secret))
	}
	for _, r := range s.Log() {
		assert.Equal(t, []string{mitokentest.Redacted}, r.Form["client_assertion"], "the emulator's log masks the assertion")
	}
}

func TestNewWithAHalfConfiguredWorkloadIdentityDoesNotFallBackToIMDS(t *testing.T) {
	emClearEnv(t)
	s := mitokentest.NewTestServer(t)
	for k, v := range s.Env(mitokentest.WorkloadIdentity) {
		if k != "AZURE_TENANT_ID" {
			t.Setenv(k, v)
		}
	}
	_, err := mitoken.New()
	var ae *mitoken.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "AZURE_TENANT_ID", ae.Name)
	assert.False(t, errors.Is(err, mitoken.ErrUnavailable))
	assert.Equal(t, 0, s.Requests(mitokentest.IMDS))
}
