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
			case *ArcCredential:
				assert.Equal(t, identity{}, c.scope.key.id)
			default:
				t.Fatalf("New returned %T", cred)
			}
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
