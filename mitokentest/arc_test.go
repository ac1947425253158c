package mitokentest_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

// challenge makes the first Arc request and returns the key file it names.
func challenge(t *testing.T, s *mitokentest.Server) string {
	t.Helper()
	resp, _ := get(t, s.URL(mitokentest.Arc), q("api-version", "2020-06-01", "resource", vault), metadata())
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	h := resp.Header.Get("WWW-Authenticate")
	require.True(t, strings.HasPrefix(h, "Basic realm="), h)
	return strings.TrimPrefix(h, "Basic realm=")
}

// challengeKey makes the first Arc request and returns the key it asks for.
func challengeKey(t *testing.T, s *mitokentest.Server) string {
	t.Helper()
	key, err := os.ReadFile(challenge(t, s))
	require.NoError(t, err)
	return string(key)
}

// answer makes the second Arc request with key.
func answer(t *testing.T, s *mitokentest.Server, scheme, key string) (*http.Response, string) {
	t.Helper()
	h := metadata()
	h.Set("Authorization", scheme+" "+key)
	return get(t, s.URL(mitokentest.Arc), q("api-version", "2020-06-01", "resource", vault), h)
}

func TestArcChallengeFlow(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	sys, _ := s.SystemIdentity()
	assert.Equal(t, map[string]string{"IDENTITY_ENDPOINT": s.URL(mitokentest.Arc), "IMDS_ENDPOINT": "http://" + hostOf(s.URL(mitokentest.Arc))},
		s.Env(mitokentest.Arc))
	assert.NotEqual(t, hostOf(s.URL(mitokentest.IMDS)), hostOf(s.URL(mitokentest.Arc)), "IMDS and Arc share a path, so not a port")

	path := challenge(t, s)
	assert.Equal(t, s.ArcTokenDir(), filepath.Dir(path))
	assert.Equal(t, ".key", filepath.Ext(path))
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.LessOrEqual(t, fi.Size(), int64(4096))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	key := string(raw)
	assert.Len(t, key, 64)

	resp, body := answer(t, s, "Basic", key)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var fields map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &fields), "every value is a string, as IMDS")
	for _, f := range []string{"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"} {
		assert.NotEmpty(t, fields[f], f)
	}
	assert.Equal(t, sys.ClientID, fields["client_id"])
	c, err := mitokentest.DecodeClaims(fields["access_token"])
	require.NoError(t, err)
	assert.Equal(t, vault, c.Audience)
	assert.Equal(t, sys.ObjectID, c.ObjectID)

	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "an answered key file is removed")
	resp, body = answer(t, s, "Basic", key)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a key answers once")
	assert.Empty(t, resp.Header.Get("WWW-Authenticate"))
	noSecrets(t, body, key)

	assert.Equal(t, 3, s.Requests(mitokentest.Arc))
	assert.Equal(t, 0, s.Requests(mitokentest.IMDS))
	for _, r := range s.Log() {
		if v := r.Header.Get("Authorization"); v != "" {
			assert.Equal(t, mitokentest.Redacted, v)
		}
	}
}

func TestArcChallengeKeys(t *testing.T) {
	t.Run("the scheme is case-insensitive", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		key := challengeKey(t, s)
		resp, _ := answer(t, s, "basic", key)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("each challenge has its own key", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		p1, p2 := challenge(t, s), challenge(t, s)
		assert.NotEqual(t, p1, p2)
		k1, err := os.ReadFile(p1)
		require.NoError(t, err)
		k2, err := os.ReadFile(p2)
		require.NoError(t, err)
		assert.NotEqual(t, k1, k2)
		resp, _ := answer(t, s, "Basic", string(k2))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _ = answer(t, s, "Basic", string(k1))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("a wrong key or scheme is refused", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		key := challengeKey(t, s)
		resp, body := answer(t, s, "Bearer", key)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		noSecrets(t, body, key)
		resp, _ = answer(t, s, "Basic", strings.Repeat("0", 64))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("an expired key is refused and its file removed", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		s := mitokentest.NewTestServer(t, mitokentest.WithClock(clock))
		path := challenge(t, s)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		key := string(raw)
		mu.Lock()
		now = now.Add(2 * time.Minute)
		mu.Unlock()
		resp, _ := answer(t, s, "Basic", key)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		_, err = os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("no system identity is not found after the challenge", func(t *testing.T) {
		s := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
		key := challengeKey(t, s)
		resp, body := answer(t, s, "Basic", key)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "Identity not found")
	})
}

func TestArcRequestChecks(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	tests := []struct {
		name   string
		query  map[string]string
		header http.Header
		status int
		desc   string
	}{
		{name: "the older api-version is accepted", query: map[string]string{"api-version": "2019-11-01"}, status: 401},
		{name: "no Metadata header is refused", header: http.Header{}, status: 400, desc: "Required metadata header not specified"},
		{name: "the IMDS api-version is refused", query: map[string]string{"api-version": "2018-02-01"}, status: 400},
		{name: "no resource is refused", query: map[string]string{"resource": ""}, status: 400},
		{name: "a client ID is refused", query: map[string]string{"client_id": "x"}, status: 400,
			desc: "User-assigned identities are not supported on Azure Arc-enabled servers (client_id was given)"},
		{name: "a resource ID is refused", query: map[string]string{"msi_res_id": "x"}, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query := override(q("api-version", "2020-06-01", "resource", vault), tc.query)
			header := orDefault(tc.header, metadata())
			resp, body := get(t, s.URL(mitokentest.Arc), query, header)
			require.Equal(t, tc.status, resp.StatusCode, body)
			if tc.status == 400 {
				assert.Empty(t, resp.Header.Get("WWW-Authenticate"), "no key file for a bad request")
				var e struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				require.NoError(t, json.Unmarshal([]byte(body), &e))
				assert.Equal(t, "invalid_request", e.Error)
				if tc.desc != "" {
					assert.Equal(t, tc.desc, e.Description)
				}
			}
		})
	}
}
