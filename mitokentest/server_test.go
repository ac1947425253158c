package mitokentest_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

func TestNewServerRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  mitokentest.Option
		want string
	}{
		{"a non-loopback address", mitokentest.WithAddr(mitokentest.IMDS, "0.0.0.0:0"), "not a loopback address"},
		{"an address without a port", mitokentest.WithAddr(mitokentest.IMDS, "127.0.0.1"), "not host:port"},
		{"an address for an unknown source", mitokentest.WithAddr("msi", "127.0.0.1:0"), "unknown source"},
		{"an empty tenant", mitokentest.WithTenant(" "), "tenant ID is empty"},
		{"an empty secret", mitokentest.WithSecret(""), "secret is empty"},
		{"a lifetime under a second", mitokentest.WithTokenLifetime(time.Millisecond), "shorter than one second"},
		{"a refresh_in under a second", mitokentest.WithRefreshIn(0), "shorter than one second"},
		{"a refresh_in past the lifetime", mitokentest.WithRefreshIn(25 * time.Hour), "not shorter than the token lifetime"},
		{"a nil clock", mitokentest.WithClock(nil), "clock is nil"},
		{"a nil option", nil, "nil Option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := mitokentest.NewServer(tc.opt)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("a system identity both set and removed", func(t *testing.T) {
		_, err := mitokentest.NewServer(mitokentest.WithSystemIdentity(mitokentest.Identity{}), mitokentest.WithoutSystemIdentity())
		assert.ErrorContains(t, err, "contradict")
	})
}

func TestWithAddr(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	t.Run("a busy address is an error", func(t *testing.T) {
		_, err := mitokentest.NewServer(mitokentest.WithAddr(mitokentest.Arc, addr))
		assert.ErrorContains(t, err, "listening for arc on "+addr)
	})
	l.Close()
	s := mitokentest.NewTestServer(t, mitokentest.WithAddr(mitokentest.Arc, addr))
	assert.Equal(t, "http://"+addr+"/metadata/identity/oauth2/token", s.URL(mitokentest.Arc))
	resp, _ := get(t, s.URL(mitokentest.Arc), q("api-version", "2020-06-01", "resource", vault), metadata())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestIdentities(t *testing.T) {
	sys := mitokentest.Identity{ClientID: "c", ObjectID: "o", ResourceID: "ignored"}
	s := mitokentest.NewTestServer(t, mitokentest.WithSystemIdentity(sys), mitokentest.WithTenant("t"),
		mitokentest.WithUserAssigned(mitokentest.Identity{ClientID: "u"}, mitokentest.Identity{}))
	got, ok := s.SystemIdentity()
	require.True(t, ok)
	assert.Equal(t, mitokentest.Identity{ClientID: "c", ObjectID: "o"}, got, "a system identity has no resource ID")
	assert.Equal(t, "t", s.Tenant())
	users := s.UserAssigned()
	require.Len(t, users, 2)
	assert.Equal(t, "u", users[0].ClientID)
	for _, u := range users {
		assert.Len(t, u.ObjectID, 36)
		assert.Contains(t, u.ResourceID, "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/")
	}
	assert.NotEqual(t, users[0].ResourceID, users[1].ResourceID)
	users[0].ClientID = "changed"
	assert.Equal(t, "u", s.UserAssigned()[0].ClientID, "UserAssigned returns a copy")

	none := mitokentest.NewTestServer(t, mitokentest.WithoutSystemIdentity())
	_, ok = none.SystemIdentity()
	assert.False(t, ok)
}

func TestLogRecordsRequestsWithSecretsMasked(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := mitokentest.NewTestServer(t, mitokentest.WithClock(func() time.Time { return now }))
	h := http.Header{"X-Identity-Header": {s.Secret()}, "Authorization": {"Bearer eyJsecret"}, "Secret": {"old"}, "X-Other": {"kept"}}
	get(t, s.URL(mitokentest.AppService), q("api-version", "2019-08-01", "resource", vault, "client_id", "abc"), h)
	get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())

	log := s.Log()
	require.Len(t, log, 2)
	r := log[0]
	assert.Equal(t, mitokentest.AppService, r.Source)
	assert.Equal(t, http.MethodGet, r.Method)
	assert.Equal(t, "/MSI/token/", r.Path)
	assert.Equal(t, q("api-version", "2019-08-01", "resource", vault, "client_id", "abc"), r.Query)
	assert.Equal(t, now, r.Time)
	for _, name := range []string{"X-Identity-Header", "Authorization", "Secret"} {
		assert.Equal(t, []string{mitokentest.Redacted}, r.Header.Values(name), name)
	}
	assert.Equal(t, "kept", r.Header.Get("X-Other"))
	assert.Equal(t, mitokentest.IMDS, log[1].Source)

	r.Header.Set("X-Other", "changed")
	r.Query.Set("resource", "changed")
	assert.Equal(t, "kept", s.Log()[0].Header.Get("X-Other"), "Log returns copies")
	assert.Equal(t, vault, s.Log()[0].Query.Get("resource"))

	var all strings.Builder
	for _, r := range s.Log() {
		for _, vs := range r.Header {
			all.WriteString(strings.Join(vs, " "))
		}
	}
	noSecrets(t, all.String(), s.Secret(), "eyJsecret")
}

func TestNewTestServerClosesAtCleanup(t *testing.T) {
	var s *mitokentest.Server
	t.Run("inner", func(t *testing.T) {
		s = mitokentest.NewTestServer(t)
	})
	_, err := os.Stat(s.ArcTokenDir())
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, _, err = try(context.Background(), http.MethodGet, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
	assert.Error(t, err, "nothing listens any more")
}

func TestCloseLeavesNoGoroutinesOrFiles(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := mitokentest.NewServer()
	require.NoError(t, err)

	// A token through the real credential, an App Service token, an Arc
	// challenge left unanswered, and a request left hanging.
	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	require.NoError(t, err)
	_, err = cred.GetToken(context.Background(), vault)
	require.NoError(t, err)
	resp, _ := get(t, s.URL(mitokentest.AppService), q("api-version", "2019-08-01", "resource", vault), http.Header{"X-Identity-Header": {s.Secret()}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	keyFile := challenge(t, s)
	require.FileExists(t, keyFile)
	s.Script(mitokentest.AppService, mitokentest.Response{Fault: mitokentest.Hang})
	hung := make(chan error, 1)
	go func() {
		_, _, err := try(context.Background(), http.MethodGet, s.URL(mitokentest.AppService), nil, nil)
		hung <- err
	}()
	require.Eventually(t, func() bool { return s.Requests(mitokentest.AppService) == 2 }, 5*time.Second, time.Millisecond)

	s.Close()
	assert.Error(t, <-hung)
	s.Close() // again: nothing happens

	_, err = os.Stat(s.ArcTokenDir())
	assert.ErrorIs(t, err, os.ErrNotExist, "the token directory is removed with its key files")
	assert.LessOrEqual(t, waitGoroutines(before), before, "goroutines of the server remain")
}
