package mitoken

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCredentialsNeverFormatSecrets builds every source's credential with a
// secret and prints it with every fmt verb: the secret must never show.
func TestCredentialsNeverFormatSecrets(t *testing.T) {
	const secret = "SECRET-4f1c9a0e-never-print"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(secret), 0o600))
	thumb := "0123456789abcdef0123456789abcdef01234567"

	build := map[string]func() (any, error){
		"appservice": func() (any, error) {
			return NewAppService(WithEndpoint("http://127.0.0.1:1/MSI/token/"), WithIdentityHeader(secret))
		},
		"azureml": func() (any, error) {
			return NewAzureML(WithEndpoint("http://127.0.0.1:1/token"), WithIdentityHeader(secret))
		},
		"servicefabric": func() (any, error) {
			return NewServiceFabric(WithEndpoint("https://127.0.0.1:1/token"), WithIdentityHeader(secret), WithServerThumbprint(thumb))
		},
		"workloadidentity": func() (any, error) {
			return NewWorkloadIdentity(WithEndpoint("http://127.0.0.1:1/"), WithTenantID("tenant"), WithClientID("client"), WithFederatedTokenFile(tokenFile))
		},
		"cloudshell": func() (any, error) { return NewCloudShell(WithEndpoint("http://127.0.0.1:1/token")) },
		"imds":       func() (any, error) { return NewIMDS(WithEndpoint("http://127.0.0.1:1")) },
		"arc": func() (any, error) {
			return NewArc(WithEndpoint("http://127.0.0.1:1/token"), WithArcTokenDir(t.TempDir()))
		},
	}
	for name, b := range build {
		t.Run(name, func(t *testing.T) {
			cred, err := b()
			require.NoError(t, err)
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T"} {
				out := fmt.Sprintf(verb, cred)
				assert.NotContains(t, out, secret, verb)
				assert.NotContains(t, out, fmt.Sprintf("%x", secret), verb)
			}
			assert.Contains(t, fmt.Sprintf("%v", cred), name)
		})
	}
}
