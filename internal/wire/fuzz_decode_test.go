package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeToken checks that any body either decodes to a usable token or
// gives an error that does not repeat the access token.
func FuzzDecodeToken(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"SECRETSECRET","expires_on":"1700003600","token_type":"Bearer"}`,
		`{"access_token":"SECRETSECRET","expires_in":3600,"refresh_in":"1800"}`,
		`{"access_token":"SECRETSECRET","expires_on":"11/14/2023 23:13:20 +00:00"}`,
		`{"access_token":"SECRETSECRET","expires_on":"soon","expires_in":"x"}`,
		`{"access_token":"SECRETSECRET","expires_in":3600,"token_type":"SECRETSECRET"}`,
		`{"access_token":"SECRETSECRET","expires_in":3600,"error":"SECRETSECRET"}`,
		`{"access_token":"","expires_in":3600}`,
		`{"access_token":7}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tok, err := DecodeToken([]byte(body), now)
		if err == nil {
			if tok.AccessToken == "" || tok.TokenType != "Bearer" {
				t.Fatalf("unusable token accepted: %+v", tok)
			}
			if !tok.ExpiresOn.After(now) || tok.ExpiresOn.Sub(now) > MaxLifetime+time.Second {
				t.Fatalf("implausible expiry accepted: %v", tok.ExpiresOn)
			}
			if tok.RefreshIn < 0 || tok.RefreshIn >= tok.ExpiresOn.Sub(now) {
				t.Fatalf("refresh_in %v outside the lifetime", tok.RefreshIn)
			}
			return
		}
		var raw struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal([]byte(body), &raw) == nil && len(raw.AccessToken) >= 8 &&
			strings.Contains(err.Error(), raw.AccessToken) {
			t.Fatalf("error repeats the access token: %v", err)
		}
	})
}
