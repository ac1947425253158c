package wire

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Unix(1_700_000_000, 0)

func TestDecodeToken(t *testing.T) {
	hour := now.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		body    string
		want    Token
		wantErr string
	}{
		{name: "IMDS body, numbers as strings",
			body: `{"access_token":"AT","client_id":"c","expires_in":"3600","expires_on":"1700003600","ext_expires_in":"3600","not_before":"1700000000","resource":"r","token_type":"Bearer"}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour, Resource: "r", ClientID: "c"}},
		{name: "numbers as numbers",
			body: `{"access_token":"AT","expires_on":1700003600,"expires_in":3600}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "lower-case bearer is normalised",
			body: `{"access_token":"AT","expires_on":"1700003600","token_type":"bearer"}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "expires_in alone",
			body: `{"access_token":"AT","expires_in":"3600"}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "malformed expires_on falls back to expires_in",
			body: `{"access_token":"AT","expires_on":"soon","expires_in":3600}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "expires_on in milliseconds falls back to expires_in",
			body: `{"access_token":"AT","expires_on":"1700003600000","expires_in":3600}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "refresh_in is kept",
			body: `{"access_token":"AT","expires_in":3600,"refresh_in":"1800"}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour, RefreshIn: 30 * time.Minute}},
		{name: "refresh_in beyond expiry is ignored",
			body: `{"access_token":"AT","expires_in":3600,"refresh_in":7200}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "App Service 2017 date", body: `{"access_token":"AT","expires_on":"11/14/2023 23:13:20 +00:00"}`,
			want: Token{AccessToken: "AT", TokenType: "Bearer", ExpiresOn: hour}},
		{name: "malformed JSON", body: `{"access_token":"AT"`, wantErr: "malformed JSON"},
		{name: "not an object", body: `[]`, wantErr: "malformed JSON"},
		{name: "access_token of the wrong type", body: `{"access_token":42,"expires_in":3600}`, wantErr: `"access_token" has the wrong type`},
		{name: "expires_in of the wrong type", body: `{"access_token":"AT","expires_in":{}}`, wantErr: "string or a number"},
		{name: "missing access_token", body: `{"expires_in":3600}`, wantErr: "access_token is missing"},
		{name: "empty access_token", body: `{"access_token":"","expires_in":3600}`, wantErr: "access_token is empty"},
		{name: "error field in a 200", body: `{"access_token":"AT","expires_in":3600,"error":"nope"}`, wantErr: "error field"},
		{name: "no expiry", body: `{"access_token":"AT"}`, wantErr: "neither expires_on nor expires_in"},
		{name: "expired", body: `{"access_token":"AT","expires_on":"1699999999","expires_in":3600}`, wantErr: "already expired"},
		{name: "expires_in zero", body: `{"access_token":"AT","expires_in":"0"}`, wantErr: "already expired"},
		{name: "expires_in not a number", body: `{"access_token":"AT","expires_in":"an hour"}`, wantErr: "not a whole number"},
		{name: "absurdly far expiry", body: `{"access_token":"AT","expires_on":"9999999999"}`, wantErr: "implausible expiry"},
		{name: "absurd expires_in", body: `{"access_token":"AT","expires_in":"99999999999999999"}`, wantErr: "implausible expiry"},
		{name: "other token type", body: `{"access_token":"AT","expires_in":3600,"token_type":"pop"}`, wantErr: "only Bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeToken([]byte(tc.body), now)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), `"AT"`, "the token never appears in an error")
				var de *DecodeError
				assert.ErrorAs(t, err, &de)
				return
			}
			require.NoError(t, err)
			assert.True(t, tc.want.ExpiresOn.Equal(got.ExpiresOn), "expiry %v, want %v", got.ExpiresOn, tc.want.ExpiresOn)
			got.ExpiresOn = tc.want.ExpiresOn
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeErrorBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		want ErrorBody
	}{
		{`{"error":"invalid_request","error_description":"Identity not found"}`, ErrorBody{"invalid_request", "Identity not found"}},
		{`{"error":{"code":"Forbidden","message":"no access"}}`, ErrorBody{"Forbidden", "no access"}},
		{`{"message":"plain"}`, ErrorBody{"", "plain"}},
		{`<html>oops</html>`, ErrorBody{}},
		{`{"error":"a\nb","error_description":"` + strings.Repeat("x", 500) + `"}`, ErrorBody{"a b", strings.Repeat("x", 200) + "…"}},
	} {
		assert.Equal(t, tc.want, DecodeErrorBody([]byte(tc.body)), tc.body)
	}
}

func TestReadBodyLimit(t *testing.T) {
	b, err := ReadBody(bytes.NewReader(make([]byte, MaxBodyBytes)))
	require.NoError(t, err)
	assert.Len(t, b, MaxBodyBytes)
	_, err = ReadBody(bytes.NewReader(make([]byte, MaxBodyBytes+1)))
	assert.ErrorIs(t, err, ErrBodyTooLarge)
}
