package mitokentest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

func imdsQuery() map[string][]string { return q("api-version", "2018-02-01", "resource", vault) }

func TestScriptedResponsesComeFirstAndInOrder(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	retryAfter := http.Header{"Retry-After": {"7"}}
	s.Script(mitokentest.IMDS,
		mitokentest.Response{Status: 503, Header: retryAfter, Body: `{"error":"busy"}`},
		mitokentest.Response{Status: 429, Header: http.Header{"Content-Type": {"text/plain"}}, Body: "slow down"},
		mitokentest.Response{Header: http.Header{"X-Trace": {"passed"}}},
		mitokentest.Response{Status: 200},
	)
	retryAfter.Set("Retry-After", "changed") // Script keeps its own copy
	assert.Equal(t, 4, s.Pending(mitokentest.IMDS))
	assert.Equal(t, 0, s.Pending(mitokentest.AppService))

	resp, body := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, `{"error":"busy"}`, body)

	resp, body = get(t, s.URL(mitokentest.IMDS), nil, nil) // scripted answers ignore what is asked
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	assert.Equal(t, "slow down", body)

	resp, body = get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
	assert.Equal(t, 200, resp.StatusCode, "an empty Response lets the endpoint answer")
	assert.Equal(t, "passed", resp.Header.Get("X-Trace"))
	assert.Contains(t, body, `"access_token":"ey`)

	resp, body = get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body, "a Status alone is answered as it is")

	resp, _ = get(t, s.URL(mitokentest.IMDS), imdsQuery(), nil)
	assert.Equal(t, 400, resp.StatusCode, "the queue is empty: normal checks again")
	assert.Equal(t, 0, s.Pending(mitokentest.IMDS))
	assert.Equal(t, 5, s.Requests(mitokentest.IMDS))
}

func TestScriptPanicsOnAnUnknownSource(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	assert.PanicsWithValue(t, `mitokentest: unknown source "gce"; use mitokentest.IMDS, AppService, Arc, CloudShell, AzureML, ServiceFabric or WorkloadIdentity`, func() {
		s.Script(mitokentest.Source("gce"), mitokentest.Response{Status: 500})
	})
}

func TestScriptedFaults(t *testing.T) {
	t.Run("Delay answers late", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Delay: 100 * time.Millisecond})
		start := time.Now()
		resp, _ := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
		assert.Equal(t, 200, resp.StatusCode)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	})
	for name, r := range map[string]mitokentest.Response{
		"Delay ends when the client gives up":              {Delay: time.Hour},
		"Hang holds the request until the client gives up": {Fault: mitokentest.Hang},
	} {
		t.Run(name, func(t *testing.T) {
			s := mitokentest.NewTestServer(t)
			s.Script(mitokentest.IMDS, r)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, _, err := try(ctx, http.MethodGet, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			resp, _ := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
			assert.Equal(t, 200, resp.StatusCode, "the next request is answered")
		})
	}
	t.Run("Close releases a hanging request", func(t *testing.T) {
		s, err := mitokentest.NewServer()
		require.NoError(t, err)
		s.Script(mitokentest.IMDS, mitokentest.Response{Fault: mitokentest.Hang})
		done := make(chan error, 1)
		go func() {
			_, _, err := try(context.Background(), http.MethodGet, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
			done <- err
		}()
		require.Eventually(t, func() bool { return s.Requests(mitokentest.IMDS) == 1 }, 5*time.Second, time.Millisecond)
		s.Close()
		assert.Error(t, <-done, "the connection is closed without an answer")
	})
	t.Run("Malformed sends broken JSON", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Fault: mitokentest.Malformed})
		resp, body := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.True(t, strings.HasPrefix(body, `{"access_token":`))
		assert.False(t, json.Valid([]byte(body)))
	})
	t.Run("Oversized sends a valid body over 1 MiB", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Fault: mitokentest.Oversized, Status: 201})
		resp, body := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
		assert.Equal(t, 201, resp.StatusCode)
		assert.Greater(t, len(body), mitokentest.OversizedBytes)
		var fields map[string]string
		require.NoError(t, json.Unmarshal([]byte(body), &fields))
		assert.Equal(t, vault, fields["resource"])
		assert.NotEmpty(t, fields["access_token"])
	})
	t.Run("Reset cuts the body", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Fault: mitokentest.Reset})
		_, _, err := try(context.Background(), http.MethodGet, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
		assert.Error(t, err)
	})
	t.Run("scripts are per source", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.AppService, mitokentest.Response{Status: 500})
		resp, _ := get(t, s.URL(mitokentest.IMDS), imdsQuery(), metadata())
		assert.Equal(t, 200, resp.StatusCode)
		resp, _ = get(t, s.URL(mitokentest.AppService), nil, nil)
		assert.Equal(t, 500, resp.StatusCode)
	})
}

// The faults as the real IMDS credential meets them.
func TestScriptedFaultsThroughTheCredential(t *testing.T) {
	newCred := func(t *testing.T, s *mitokentest.Server) *mitoken.IMDSCredential {
		cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
		require.NoError(t, err)
		return cred
	}
	t.Run("503 with Retry-After is retried", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Status: 503, Header: http.Header{"Retry-After": {"1"}}})
		start := time.Now()
		tok, err := newCred(t, s).GetToken(context.Background(), vault)
		require.NoError(t, err)
		assert.NotEmpty(t, tok.AccessToken)
		assert.Equal(t, 2, s.Requests(mitokentest.IMDS))
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After was honoured")
	})
	t.Run("an error body reaches the error", func(t *testing.T) {
		s := mitokentest.NewTestServer(t)
		s.Script(mitokentest.IMDS, mitokentest.Response{Status: 400, Body: `{"error":"invalid_resource","error_description":"AADSTS500011: no such resource"}`})
		_, err := newCred(t, s).GetToken(context.Background(), vault)
		var re *mitoken.ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 400, re.StatusCode)
		assert.Equal(t, "invalid_resource", re.ErrorCode)
		assert.Equal(t, "AADSTS500011: no such resource", re.Description)
		assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
	})
	for _, fault := range []mitokentest.Fault{mitokentest.Malformed, mitokentest.Oversized} {
		t.Run("a malformed or oversized 200 is an error, not a token", func(t *testing.T) {
			s := mitokentest.NewTestServer(t)
			s.Script(mitokentest.IMDS, mitokentest.Response{Fault: fault})
			tok, err := newCred(t, s).GetToken(context.Background(), vault)
			var re *mitoken.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 200, re.StatusCode)
			assert.Empty(t, tok.AccessToken)
			assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
		})
	}
}

var allSources = []mitokentest.Source{mitokentest.IMDS, mitokentest.AppService, mitokentest.Arc}

func TestServerIsSafeForConcurrentUse(t *testing.T) {
	s := mitokentest.NewTestServer(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			src := allSources[i%3]
			s.Script(src, mitokentest.Response{Status: 500 + i%4})
			_, _, _ = try(context.Background(), http.MethodGet, s.URL(src), imdsQuery(), metadata())
			_ = s.Log()
			_ = s.Requests(src)
			_ = s.Pending(src)
		})
	}
	wg.Wait()
	assert.Len(t, s.Log(), 20)
	total := 0
	for _, src := range allSources {
		total += s.Requests(src)
		assert.Equal(t, 0, s.Pending(src))
	}
	assert.Equal(t, 20, total)
}
