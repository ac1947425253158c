package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

const vault = "https://vault.azure.net"

// setEnv points the environment at the emulator's endpoint for source.
func setEnv(t *testing.T, srv *mitokentest.Server, source mitokentest.Source) {
	t.Helper()
	for name, value := range srv.Env(source) {
		t.Setenv(name, value)
	}
}

// The Arc credential also needs the emulator's key directory, which no
// environment variable can give, so token is tested here against IMDS and
// App Service; Arc through emulate is in emulate_test.go.
func TestTokenFromTheEnvironment(t *testing.T) {
	user := mitokentest.Identity{ClientID: "11111111-1111-1111-1111-111111111111", ObjectID: "22222222-2222-2222-2222-222222222222",
		ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}
	tests := []struct {
		name   string
		source mitokentest.Source
		args   []string
		want   mitokentest.Identity // zero: the system identity
	}{
		{name: "auto finds IMDS", source: mitokentest.IMDS, args: []string{"--resource", vault}},
		{name: "an explicit imds", source: mitokentest.IMDS, args: []string{"--resource", vault, "--source", "imds"}},
		{name: "auto finds App Service", source: mitokentest.AppService, args: []string{"--resource", vault}},
		{name: "an explicit appservice", source: mitokentest.AppService, args: []string{"--resource", vault, "--source", "appservice"}},
		{name: "a scope is trimmed to its resource", source: mitokentest.IMDS, args: []string{"--resource", vault + "/.default"}},
		{name: "IMDS with --client-id", source: mitokentest.IMDS, args: []string{"--resource", vault, "--client-id", user.ClientID}, want: user},
		{name: "IMDS with --object-id", source: mitokentest.IMDS, args: []string{"--resource", vault, "--object-id", user.ObjectID}, want: user},
		{name: "App Service with --resource-id", source: mitokentest.AppService, args: []string{"--resource", vault, "--resource-id", user.ResourceID}, want: user},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(user))
			setEnv(t, srv, tc.source)
			want := tc.want
			if want.ClientID == "" {
				want, _ = srv.SystemIdentity()
			}

			code, stdout, stderr := runCmd(t, append([]string{"token"}, tc.args...)...)
			require.Equal(t, 0, code, stderr)
			assert.Empty(t, stderr)
			var out struct {
				AccessToken string `json:"accessToken"`
				ExpiresOn   string `json:"expiresOn"`
				ExpiresOnTS int64  `json:"expires_on"`
				TokenType   string `json:"tokenType"`
				Resource    string `json:"resource"`
				ClientID    string `json:"clientId"`
				Source      string `json:"source"`
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&out), stdout)
			claims, err := mitokentest.DecodeClaims(out.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, vault, claims.Audience)
			assert.Equal(t, want.ObjectID, claims.ObjectID)
			assert.Equal(t, want.ClientID, out.ClientID)
			assert.Equal(t, string(tc.source), out.Source)
			assert.Equal(t, "Bearer", out.TokenType)
			assert.Equal(t, vault, out.Resource)
			assert.Equal(t, claims.ExpiresAt, out.ExpiresOnTS)
			expires, err := time.Parse(time.RFC3339, out.ExpiresOn)
			require.NoError(t, err)
			assert.Equal(t, claims.ExpiresAt, expires.Unix())
			assert.Equal(t, 1, srv.Requests(tc.source))
		})
	}
}

func TestTokenOutputs(t *testing.T) {
	srv := mitokentest.NewTestServer(t)
	setEnv(t, srv, mitokentest.AppService)

	code, raw, stderr := runCmd(t, "token", "--resource", vault, "--output", "raw")
	require.Equal(t, 0, code, stderr)
	tok, ok := strings.CutSuffix(raw, "\n")
	require.True(t, ok, "raw ends with a newline")
	assert.Regexp(t, `^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, tok)
	_, err := mitokentest.DecodeClaims(tok)
	assert.NoError(t, err)

	code, header, stderr := runCmd(t, "token", "--resource", vault, "--output", "header")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "Authorization: Bearer "+tok+"\n", header, "the same, cached, token")
	assert.Equal(t, 1, srv.Requests(mitokentest.AppService))
}

func TestTokenFailsFastWithoutAnIdentity(t *testing.T) {
	if _, err := os.Stat("/opt/azcmagent/bin/himds"); err == nil {
		t.Skip("the Arc agent is installed here, so auto would choose Arc")
	}
	t.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+closedLoopbackAddr())
	start := time.Now()
	code, stdout, stderr := runCmd(t, "token", "--resource", vault)
	took := time.Since(start)
	assert.Equal(t, 3, code, stderr)
	assert.Less(t, took, 2*time.Second)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "tried the imds source")
	assert.Contains(t, stderr, "No managed identity is reachable here")
	assert.Contains(t, stderr, "run `mitoken emulate`")
}

func TestTokenFailures(t *testing.T) {
	t.Run("App Service without its environment is unavailable", func(t *testing.T) {
		code, stdout, stderr := runCmd(t, "token", "--resource", vault, "--source", "appservice")
		assert.Equal(t, 3, code)
		assert.Empty(t, stdout)
		assert.Contains(t, stderr, "tried the appservice source")
		assert.Contains(t, stderr, "IDENTITY_ENDPOINT is not set")
	})
	t.Run("an endpoint error exits 1 and names the status", func(t *testing.T) {
		srv := mitokentest.NewTestServer(t)
		setEnv(t, srv, mitokentest.AppService)
		srv.Script(mitokentest.AppService, mitokentest.Response{Status: 400,
			Body: `{"statusCode":400,"message":"bad request, secret ` + srv.Secret() + `"}`})
		code, stdout, stderr := runCmd(t, "token", "--resource", vault)
		assert.Equal(t, 1, code)
		assert.Empty(t, stdout)
		assert.Contains(t, stderr, "tried the appservice source")
		assert.Contains(t, stderr, "HTTP 400")
		assert.Contains(t, stderr, "check --resource")
		assert.NotContains(t, stderr, srv.Secret())
	})
	t.Run("an unknown identity is an endpoint error", func(t *testing.T) {
		srv := mitokentest.NewTestServer(t)
		setEnv(t, srv, mitokentest.IMDS)
		code, _, stderr := runCmd(t, "token", "--resource", vault, "--client-id", "33333333-3333-3333-3333-333333333333")
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "is not assigned to this VM")
	})
	t.Run("a slow endpoint ends at --timeout", func(t *testing.T) {
		srv := mitokentest.NewTestServer(t)
		setEnv(t, srv, mitokentest.IMDS)
		srv.Script(mitokentest.IMDS, mitokentest.Response{Delay: time.Second})
		start := time.Now()
		code, stdout, stderr := runCmd(t, "token", "--resource", vault, "--timeout", "100ms")
		assert.Equal(t, 1, code)
		assert.Less(t, time.Since(start), 900*time.Millisecond)
		assert.Empty(t, stdout)
		assert.Contains(t, stderr, "No token within --timeout 100ms")

		// The abandoned request goes on and its token is cached: the next
		// call joins it, so no request outlives the test.
		code, stdout, stderr = runCmd(t, "token", "--resource", vault, "--output", "raw")
		assert.Equal(t, 0, code, stderr)
		assert.NotEmpty(t, stdout)
		assert.Equal(t, 1, srv.Requests(mitokentest.IMDS))
	})
}
