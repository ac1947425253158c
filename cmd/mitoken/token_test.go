package main

import (
	"encoding/json"
	"os"
	"regexp"
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
// environment variable can give, so token is tested here against every
// source but Arc; Arc through emulate is in emulate_test.go.
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
		{name: "auto finds Cloud Shell", source: mitokentest.CloudShell, args: []string{"--resource", vault}},
		{name: "an explicit cloudshell", source: mitokentest.CloudShell, args: []string{"--resource", vault, "--source", "cloudshell"}},
		{name: "auto finds Azure ML", source: mitokentest.AzureML, args: []string{"--resource", vault}},
		{name: "an explicit azureml", source: mitokentest.AzureML, args: []string{"--resource", vault, "--source", "azureml"}},
		{name: "Azure ML with --client-id", source: mitokentest.AzureML, args: []string{"--resource", vault, "--client-id", user.ClientID}, want: user},
		{name: "auto finds Service Fabric", source: mitokentest.ServiceFabric, args: []string{"--resource", vault}},
		{name: "an explicit servicefabric", source: mitokentest.ServiceFabric, args: []string{"--resource", vault, "--source", "servicefabric"}},
		{name: "auto finds workload identity", source: mitokentest.WorkloadIdentity, args: []string{"--resource", vault}},
		{name: "an explicit workloadidentity", source: mitokentest.WorkloadIdentity, args: []string{"--resource", vault, "--source", "workloadidentity"}},
		{name: "workload identity with --client-id", source: mitokentest.WorkloadIdentity,
			args: []string{"--resource", vault, "--source", "workloadidentity", "--client-id", user.ClientID}, want: user},
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
			assert.Equal(t, want.ClientID, claims.AppID)
			if tc.source == mitokentest.ServiceFabric || tc.source == mitokentest.WorkloadIdentity {
				assert.Empty(t, out.ClientID, "the endpoint does not name the client")
			} else {
				assert.Equal(t, want.ClientID, out.ClientID)
			}
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

// An identity flag that the source does not take is a usage error, whether
// --source names the source or auto finds it, and no request is sent.
func TestTokenIdentityFlags(t *testing.T) {
	tests := []struct {
		source mitokentest.Source
		flag   string
		want   string
	}{
		{mitokentest.Arc, "--client-id", "Azure Arc serves only the machine's system-assigned identity; remove --client-id"},
		{mitokentest.Arc, "--object-id", "Azure Arc serves only the machine's system-assigned identity; remove --object-id"},
		{mitokentest.CloudShell, "--client-id", "Azure Cloud Shell serves only its own identity (the signed-in user's); remove --client-id"},
		{mitokentest.CloudShell, "--resource-id", "Azure Cloud Shell serves only its own identity (the signed-in user's); remove --resource-id"},
		{mitokentest.ServiceFabric, "--client-id", "Service Fabric serves only the identity that the application's manifest assigns; remove --client-id"},
		{mitokentest.ServiceFabric, "--object-id", "Service Fabric serves only the identity that the application's manifest assigns; remove --object-id"},
		{mitokentest.AzureML, "--object-id", "Azure ML selects a user-assigned identity by client ID only; use --client-id instead of --object-id"},
		{mitokentest.AzureML, "--resource-id", "Azure ML selects a user-assigned identity by client ID only; use --client-id instead of --resource-id"},
		{mitokentest.WorkloadIdentity, "--object-id",
			"a workload identity is named by its client ID only; use --client-id (or AZURE_CLIENT_ID) instead of --object-id"},
		{mitokentest.WorkloadIdentity, "--resource-id",
			"a workload identity is named by its client ID only; use --client-id (or AZURE_CLIENT_ID) instead of --resource-id"},
	}
	for _, tc := range tests {
		for _, auto := range []bool{false, true} {
			name := string(tc.source) + " " + tc.flag
			args := []string{"token", "--resource", vault, tc.flag, "33333333-3333-3333-3333-333333333333"}
			want := tc.want
			if auto {
				name += " found by auto"
				want = "--source auto chose " + string(tc.source) + " from the environment: " + want
			} else {
				args = append(args, "--source", string(tc.source))
			}
			t.Run(name, func(t *testing.T) {
				srv := mitokentest.NewTestServer(t)
				setEnv(t, srv, tc.source)
				code, stdout, stderr := runCmd(t, args...)
				assert.Equal(t, 2, code, stderr)
				assert.Empty(t, stdout)
				assert.Contains(t, stderr, "mitoken token: "+want+"\n")
				assert.Contains(t, stderr, "Usage: mitoken token")
				assert.NotContains(t, stderr, srv.Secret())
				assert.Equal(t, 0, srv.Requests(tc.source))
			})
		}
	}

	// When New cannot build the credential without the flag, the library
	// refuses it, and the hint names the flag for its option.
	t.Run("auto, workload identity without AZURE_CLIENT_ID", func(t *testing.T) {
		srv := mitokentest.NewTestServer(t)
		setEnv(t, srv, mitokentest.WorkloadIdentity)
		t.Setenv("AZURE_CLIENT_ID", "")
		code, stdout, stderr := runCmd(t, "token", "--resource", vault, "--object-id", "33333333-3333-3333-3333-333333333333")
		assert.Equal(t, 2, code, stderr)
		assert.Empty(t, stdout)
		assert.Contains(t, stderr, "tried the auto source: mitoken: invalid WithObjectID: a workload identity is named by its client ID")
		assert.Contains(t, stderr, "Check the flags (the library's WithObjectID is --object-id) and the managed-identity environment variables")
		assert.Equal(t, 0, srv.Requests(mitokentest.WorkloadIdentity))
	})
}

// An endpoint's error is reported with its status, never with the secret
// (or, for workload identity, the federated token) that it echoes.
func TestTokenEndpointErrorsHideSecrets(t *testing.T) {
	for _, src := range []mitokentest.Source{mitokentest.AppService, mitokentest.AzureML, mitokentest.ServiceFabric, mitokentest.WorkloadIdentity} {
		t.Run(string(src), func(t *testing.T) {
			srv := mitokentest.NewTestServer(t)
			setEnv(t, srv, src)
			secret := srv.Secret()
			if src == mitokentest.WorkloadIdentity {
				b, err := os.ReadFile(srv.FederatedTokenFile())
				require.NoError(t, err)
				secret = string(b)
			}
			srv.Script(src, mitokentest.Response{Status: 400,
				Body: `{"error":"invalid_request","error_description":"bad request, secret ` + secret + `","message":"bad request, secret ` + secret + `"}`})
			code, stdout, stderr := runCmd(t, "token", "--resource", vault, "--source", string(src))
			assert.Equal(t, 1, code, stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "tried the "+string(src)+" source")
			assert.Contains(t, stderr, "HTTP 400")
			assert.NotContains(t, stderr, secret)
			assertNoToken(t, stderr)
		})
	}
}

// The order that token's help gives for --source auto is mitoken.New's:
// with the variables of a source and of every source after it set, auto
// takes that source.
func TestTokenHelpGivesTheDetectionOrder(t *testing.T) {
	if _, err := os.Stat("/opt/azcmagent/bin/himds"); err == nil {
		t.Skip("the Arc agent is installed here, so auto would choose Arc before IMDS")
	}
	var order []string
	for _, m := range regexp.MustCompile(`(?m)^ +\d\. (\w+) `).FindAllStringSubmatch(tokenHelp, -1) {
		order = append(order, m[1])
	}
	require.Len(t, order, len(sources), "the help numbers every source")
	for i, name := range order {
		t.Run(name, func(t *testing.T) {
			srv := mitokentest.NewTestServer(t)
			for j := len(order) - 1; j >= i; j-- { // this source's values last, where variables are shared
				setEnv(t, srv, mitokentest.Source(order[j]))
			}
			code, stdout, stderr := runCmd(t, "token", "--resource", vault)
			if name == string(mitokentest.Arc) {
				// Arc also needs the emulator's key directory, which the
				// environment cannot give; the failure names the source.
				assert.NotEqual(t, 0, code)
				assert.Contains(t, stderr, "tried the arc source")
				return
			}
			require.Equal(t, 0, code, stderr)
			var out struct {
				Source string `json:"source"`
			}
			require.NoError(t, json.Unmarshal([]byte(stdout), &out))
			assert.Equal(t, name, out.Source)
		})
	}
}
