package mitokentest_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

func TestAppServiceProtocol(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	user := mitokentest.Identity{ClientID: "11111111-1111-1111-1111-111111111111", ObjectID: "22222222-2222-2222-2222-222222222222",
		ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"}
	s := mitokentest.NewTestServer(t, mitokentest.WithUserAssigned(user), mitokentest.WithClock(func() time.Time { return now }),
		mitokentest.WithTokenLifetime(time.Hour))
	sys, _ := s.SystemIdentity()
	secret := http.Header{"X-Identity-Header": {s.Secret()}}

	t.Run("Env and Options point at the endpoint", func(t *testing.T) {
		assert.Equal(t, map[string]string{"IDENTITY_ENDPOINT": s.URL(mitokentest.AppService), "IDENTITY_HEADER": s.Secret()}, s.Env(mitokentest.AppService))
		assert.True(t, strings.HasSuffix(s.URL(mitokentest.AppService), "/MSI/token/"))
		assert.Len(t, s.Options(mitokentest.AppService), 3)
		assert.Len(t, s.Secret(), 48)
	})

	tests := []struct {
		name   string
		query  map[string]string
		header http.Header
		path   string
		status int
		msg    string
		want   mitokentest.Identity
	}{
		{name: "a complete request gets a token for the system identity", status: 200, want: sys},
		{name: "client_id selects a user identity", query: map[string]string{"client_id": user.ClientID}, status: 200, want: user},
		{name: "client IDs compare without case", query: map[string]string{"client_id": strings.ToUpper(user.ClientID)}, status: 200, want: user},
		{name: "object_id selects a user identity", query: map[string]string{"object_id": user.ObjectID}, status: 200, want: user},
		{name: "principal_id is object_id", query: map[string]string{"principal_id": user.ObjectID}, status: 200, want: user},
		{name: "mi_res_id selects a user identity", query: map[string]string{"mi_res_id": user.ResourceID}, status: 200, want: user},
		{name: "the path ignores case and a missing slash", path: "/msi/token", status: 200, want: sys},
		{name: "msi_res_id is IMDS's name and selects nothing here", query: map[string]string{"msi_res_id": user.ResourceID}, status: 200, want: sys},
		{name: "an unknown identity cannot be loaded", query: map[string]string{"client_id": "33333333-3333-3333-3333-333333333333"}, status: 400, msg: "Unable to load the proper Managed Identity."},
		{name: "two identity parameters are refused", query: map[string]string{"client_id": user.ClientID, "mi_res_id": user.ResourceID}, status: 400},
		{name: "no secret is refused", header: http.Header{}, status: 400, msg: "The X-IDENTITY-HEADER header is missing; send the value of IDENTITY_HEADER"},
		{name: "a wrong secret is refused", header: http.Header{"X-Identity-Header": {"wrong"}}, status: 400, msg: "The X-IDENTITY-HEADER header does not match IDENTITY_HEADER"},
		{name: "the 2017 secret header is not the 2019 one", header: http.Header{"Secret": {s.Secret()}}, status: 400},
		{name: "another api-version is refused", query: map[string]string{"api-version": "2017-09-01"}, status: 400, msg: `api-version "2017-09-01" is not supported; use 2019-08-01`},
		{name: "no resource is refused", query: map[string]string{"resource": ""}, status: 400, msg: "Required query variable 'resource' is missing"},
		{name: "another path is not found", path: "/metadata/identity/oauth2/token", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query := override(q("api-version", "2019-08-01", "resource", vault), tc.query)
			header := orDefault(tc.header, secret)
			u := s.URL(mitokentest.AppService)
			if tc.path != "" {
				u = "http://" + hostOf(u) + tc.path
			}
			resp, body := get(t, u, query, header)
			require.Equal(t, tc.status, resp.StatusCode, body)
			noSecrets(t, body, s.Secret())
			if tc.status != 200 {
				var e struct {
					StatusCode    int    `json:"statusCode"`
					Message       string `json:"message"`
					CorrelationID string `json:"correlationId"`
				}
				require.NoError(t, json.Unmarshal([]byte(body), &e))
				assert.Equal(t, tc.status, e.StatusCode)
				assert.NotEmpty(t, e.Message)
				assert.Len(t, e.CorrelationID, 36)
				if tc.msg != "" {
					assert.Equal(t, tc.msg, e.Message)
				}
				return
			}
			var fields map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &fields), "every value is a string")
			tok := fields["access_token"]
			delete(fields, "access_token")
			assert.Equal(t, map[string]string{
				"expires_on": strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "resource": vault,
				"token_type": "Bearer", "client_id": tc.want.ClientID,
			}, fields)
			c, err := mitokentest.DecodeClaims(tok)
			require.NoError(t, err)
			assert.Equal(t, tc.want.ObjectID, c.ObjectID)
			assert.Equal(t, vault, c.Audience)
		})
	}

	t.Run("the log masks the secret", func(t *testing.T) {
		for _, r := range s.Log() {
			if v := r.Header.Get("X-Identity-Header"); v != "" {
				assert.Equal(t, mitokentest.Redacted, v)
			}
			if v := r.Header.Get("Secret"); v != "" {
				assert.Equal(t, mitokentest.Redacted, v)
			}
		}
		assert.Equal(t, len(tests), s.Requests(mitokentest.AppService))
	})
}

func TestAppServiceWithoutSystemIdentity(t *testing.T) {
	s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity(), mitokentest.WithUserAssigned(mitokentest.Identity{}),
		mitokentest.WithSecret("s3cret-value"))
	assert.Equal(t, "s3cret-value", s.Secret())
	resp, body := get(t, s.URL(mitokentest.AppService), q("api-version", "2019-08-01", "resource", vault),
		http.Header{"X-Identity-Header": {"s3cret-value"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "Unable to load the proper Managed Identity.")
}
