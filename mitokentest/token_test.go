package mitokentest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

// token gets a token for resource from s's IMDS endpoint.
func token(t *testing.T, s *mitokentest.Server, resource string) string {
	t.Helper()
	resp, body := get(t, s.URL(mitokentest.IMDS), q("api-version", "2018-02-01", "resource", resource), metadata())
	require.Equal(t, 200, resp.StatusCode, body)
	var b struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &b))
	return b.AccessToken
}

func TestTokensAreJWTShaped(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	tok := token(t, s, "https://management.azure.com/")
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	for _, p := range parts {
		_, err := base64.RawURLEncoding.DecodeString(p)
		require.NoError(t, err, "each part is base64url without padding")
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	assert.JSONEq(t, `{"alg":"RS256","typ":"JWT"}`, string(header))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	assert.Len(t, sig, 256)

	c, err := mitokentest.DecodeClaims(tok)
	require.NoError(t, err)
	assert.Equal(t, "https://management.azure.com/", c.Audience, "aud is the resource as requested")

	other := token(t, s, "https://management.azure.com/")
	assert.NotEqual(t, tok, other, "every token differs")
	c2, err := mitokentest.DecodeClaims(other)
	require.NoError(t, err)
	assert.NotEqual(t, c.ID, c2.ID)
}

func TestDecodeClaimsErrorsDoNotShowTheToken(t *testing.T) {
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"x"}`))
	tests := []struct {
		name, token, want string
	}{
		{"two parts", "eyJhbGciOi.secretpart", "has 2 dot-separated parts"},
		{"padding", "h." + claims + "==.s", "not base64url"},
		{"claims that are not JSON", "h." + base64.RawURLEncoding.EncodeToString([]byte("secretpart")) + ".s", "not a JSON object"},
		{"a claim of the wrong type", "h." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"secretpart"}`)) + ".s", "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mitokentest.DecodeClaims(tc.token)
			require.ErrorContains(t, err, tc.want)
			noSecrets(t, err.Error(), "secretpart", tc.token)
		})
	}
	c, err := mitokentest.DecodeClaims("h." + claims + ".s")
	require.NoError(t, err)
	assert.Equal(t, "x", c.Audience)
}
