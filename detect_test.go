package mitoken

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func init() {
	// Keep the Arc agent presence check hermetic: a machine that happens to
	// have the agent installed must not change what the tests detect.
	arcHimdsPath = ""
}

func TestNewDetectsTheSource(t *testing.T) {
	const ep = "http://127.0.0.1:41570/MSI/token/"
	cases := []struct {
		name   string
		env    map[string]string
		himds  string // "present", "missing" or "" (no path known)
		want   string
		wantID identity
	}{
		{name: "nothing set: IMDS", want: "imds"},
		{name: "IDENTITY_ENDPOINT and IDENTITY_HEADER: App Service",
			env: map[string]string{envIdentityEP: ep, envIdentityHeader: "s"}, want: "appservice"},
		{name: "App Service wins over the Arc variables",
			env: map[string]string{envIdentityEP: ep, envIdentityHeader: "s", envIMDSEndpoint: "http://127.0.0.1:41570"}, want: "appservice"},
		{name: "App Service wins over an installed Arc agent",
			env: map[string]string{envIdentityEP: ep, envIdentityHeader: "s"}, himds: "present", want: "appservice"},
		{name: "IDENTITY_ENDPOINT and IMDS_ENDPOINT: Arc",
			env: map[string]string{envIdentityEP: "http://localhost:40342/metadata/identity/oauth2/token", envIMDSEndpoint: "http://localhost:40342"}, want: "arc"},
		{name: "the Arc agent installed, nothing in the environment: Arc", himds: "present", want: "arc"},
		{name: "the Arc agent's path known but absent: IMDS", himds: "missing", want: "imds"},
		{name: "IDENTITY_ENDPOINT alone: IMDS", env: map[string]string{envIdentityEP: ep}, want: "imds"},
		{name: "IDENTITY_HEADER alone: IMDS", env: map[string]string{envIdentityHeader: "s"}, want: "imds"},
		{name: "IMDS_ENDPOINT alone: IMDS", env: map[string]string{envIMDSEndpoint: "http://localhost:40342"}, want: "imds"},
		{name: "a blank IDENTITY_ENDPOINT counts as unset",
			env: map[string]string{envIdentityEP: "  ", envIdentityHeader: "s", envIMDSEndpoint: "http://localhost:40342"}, want: "imds"},
		{name: "AZURE_CLIENT_ID is App Service's default client ID",
			env:  map[string]string{envIdentityEP: ep, envIdentityHeader: "s", envClientID: "cid"},
			want: "appservice", wantID: identity{kind: byClientID, value: "cid"}},
		{name: "AZURE_CLIENT_ID is IMDS's default client ID",
			env: map[string]string{envClientID: "cid"}, want: "imds", wantID: identity{kind: byClientID, value: "cid"}},
		{name: "AZURE_FEDERATED_TOKEN_FILE with client and tenant: workload identity",
			env: wiEnv(nil), want: "workloadidentity", wantID: identity{kind: byClientID, value: "wi-cid"}},
		{name: "workload identity wins over every other source",
			env: wiEnv(map[string]string{envIdentityEP: "https://127.0.0.1:2377/t", envIdentityHeader: "s", envThumbprint: sfThumb,
				envMSIEndpoint: "http://localhost:50342/oauth2/token", envMSISecret: "s", envIMDSEndpoint: "http://localhost:40342"}),
			himds: "present", want: "workloadidentity", wantID: identity{kind: byClientID, value: "wi-cid"}},
		{name: "IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT: Service Fabric",
			env: map[string]string{envIdentityEP: "https://127.0.0.1:2377/metadata/identity/oauth2/token", envIdentityHeader: "s", envThumbprint: sfThumb}, want: "servicefabric"},
		{name: "Service Fabric ignores AZURE_CLIENT_ID",
			env:  map[string]string{envIdentityEP: "https://127.0.0.1:2377/metadata/identity/oauth2/token", envIdentityHeader: "s", envThumbprint: sfThumb, envClientID: "cid"},
			want: "servicefabric"},
		{name: "IDENTITY_SERVER_THUMBPRINT without IDENTITY_HEADER: not Service Fabric",
			env: map[string]string{envIdentityEP: ep, envThumbprint: sfThumb}, want: "imds"},
		{name: "Service Fabric and App Service win over MSI_ENDPOINT",
			env: map[string]string{envIdentityEP: ep, envIdentityHeader: "s", envMSIEndpoint: "http://localhost:50342/oauth2/token", envMSISecret: "s"}, want: "appservice"},
		{name: "MSI_ENDPOINT and MSI_SECRET: Azure ML",
			env:  map[string]string{envMSIEndpoint: "http://127.0.0.1:46808/MSI/auth", envMSISecret: "s", envDefaultMLID: "ml-cid"},
			want: "azureml", wantID: identity{kind: byClientID, value: "ml-cid"}},
		{name: "MSI_ENDPOINT alone: Cloud Shell",
			env: map[string]string{envMSIEndpoint: "http://localhost:50342/oauth2/token", envClientID: "ignored"}, want: "cloudshell"},
		{name: "Cloud Shell wins over Arc",
			env:  map[string]string{envMSIEndpoint: "http://localhost:50342/oauth2/token", envIdentityEP: "http://localhost:40342/metadata/identity/oauth2/token", envIMDSEndpoint: "http://localhost:40342"},
			want: "cloudshell"},
		{name: "MSI_SECRET alone: IMDS", env: map[string]string{envMSISecret: "s"}, want: "imds"},
		{name: "AZURE_TENANT_ID and AZURE_CLIENT_ID without the token file: IMDS",
			env: map[string]string{envTenantID: "tid", envClientID: "cid"}, want: "imds", wantID: identity{kind: byClientID, value: "cid"}},
		{name: "AZURE_CLIENT_ID is ignored on Arc",
			env:  map[string]string{envIdentityEP: "http://localhost:40342/metadata/identity/oauth2/token", envIMDSEndpoint: "http://localhost:40342", envClientID: "cid"},
			want: "arc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcClearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			switch tc.himds {
			case "present":
				p := filepath.Join(t.TempDir(), "himds")
				require.NoError(t, os.WriteFile(p, nil, 0o700))
				srcSetHimds(t, p)
			case "missing":
				srcSetHimds(t, filepath.Join(t.TempDir(), "himds"))
			}
			opts, _ := srcOptions(t, WithArcTokenDir(t.TempDir()))
			cred, err := New(opts...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, SourceOf(cred))
			switch c := cred.(type) {
			case *IMDSCredential:
				assert.True(t, c.probe, "New's IMDS fallback fails fast when nothing answers")
				assert.Equal(t, tc.wantID, c.id)
			case *AppServiceCredential:
				assert.Equal(t, tc.wantID, c.id)
			case *ArcCredential, *CloudShellCredential, *ServiceFabricCredential:
				assert.Equal(t, identity{}, srcScopeID(c))
			case *AzureMLCredential, *WorkloadIdentityCredential:
				assert.Equal(t, tc.wantID, srcScopeID(c))
			default:
				t.Fatalf("New returned %T", cred)
			}
		})
	}
}

// sfThumb is a well-formed SHA-1 thumbprint.
const sfThumb = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12"

// wiEnv is the workload identity environment plus extra.
func wiEnv(extra map[string]string) map[string]string {
	env := map[string]string{envTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token", envClientID: "wi-cid", envTenantID: "tid"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// srcScopeID is the identity in a credential's cache key.
func srcScopeID(c Credential) identity {
	var b *base
	switch c := c.(type) {
	case *ArcCredential:
		b = &c.base
	case *CloudShellCredential:
		b = &c.base
	case *ServiceFabricCredential:
		b = &c.base
	case *AzureMLCredential:
		b = &c.base
	case *WorkloadIdentityCredential:
		b = &c.base
	}
	return b.scope.key.id
}

func TestNewRefusesAHalfConfiguredWorkloadIdentity(t *testing.T) {
	for _, missing := range []string{envClientID, envTenantID} {
		t.Run("without "+missing, func(t *testing.T) {
			srcClearEnv(t)
			for k, v := range wiEnv(map[string]string{missing: ""}) {
				t.Setenv(k, v)
			}
			cred, err := New()
			require.Nil(t, cred, "no fall-through to IMDS, which would give the node's identity")
			var ae *ArgumentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, missing, ae.Name)
			assert.Contains(t, err.Error(), "AZURE_FEDERATED_TOKEN_FILE is set")
			assert.NotErrorIs(t, err, ErrUnavailable)
		})
	}
}

func TestNewOnArcRefusesAUserAssignedOption(t *testing.T) {
	srcClearEnv(t)
	t.Setenv(envIdentityEP, "http://localhost:40342/metadata/identity/oauth2/token")
	t.Setenv(envIMDSEndpoint, "http://localhost:40342")
	_, err := New(WithClientID("cid"), WithArcTokenDir(t.TempDir()))
	var ae *ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "WithClientID", ae.Name)
}

func TestNewGetsTokensFromTheDetectedSource(t *testing.T) {
	t.Run("App Service", func(t *testing.T) {
		s := asServer(t, nil)
		opts, _ := srcOptions(t)
		cred, err := New(opts...)
		require.NoError(t, err)
		tok, err := cred.GetToken(context.Background(), vault)
		require.NoError(t, err)
		assert.Equal(t, asToken, tok.AccessToken)
		require.Len(t, s.requests(), 1)
		assert.Equal(t, asSecret, s.requests()[0].Header.Get("X-IDENTITY-HEADER"))
	})
	t.Run("Arc", func(t *testing.T) {
		f := newArcFixture(t)
		opts, _ := srcOptions(t, WithArcTokenDir(f.dir))
		cred, err := New(opts...)
		require.NoError(t, err)
		tok, err := cred.GetToken(context.Background(), vault)
		require.NoError(t, err)
		assert.Equal(t, arcToken, tok.AccessToken)
		assert.Len(t, f.srv.requests(), 2)
	})
	t.Run("IMDS, where nothing answers", func(t *testing.T) {
		srcClearEnv(t) // TestMain points IMDS at a closed loopback port
		opts, _ := srcOptions(t)
		cred, err := New(opts...)
		require.NoError(t, err)
		_, err = cred.GetToken(context.Background(), vault)
		require.ErrorIs(t, err, ErrUnavailable)
	})
}

func TestSourceOf(t *testing.T) {
	assert.Equal(t, "", SourceOf(nil))
	assert.Equal(t, "", SourceOf(otherCredential{}))
}

type otherCredential struct{}

func (otherCredential) GetToken(context.Context, string) (Token, error) { return Token{}, nil }
