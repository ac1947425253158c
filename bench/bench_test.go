package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/mitokentest"
)

// TestMain points IMDS discovery at a closed loopback port, so that no
// credential built here with defaults can reach the real IMDS address.
func TestMain(m *testing.M) {
	addr, err := ClosedLoopbackAddr()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+addr)
	os.Exit(m.Run())
}

var sources = []mitokentest.Source{mitokentest.IMDS, mitokentest.AppService}

// Benchmarks run in this order: the cached ones first, while azidentity's
// process-wide cache (which it searches linearly) holds few tokens.

func BenchmarkCached(b *testing.B) {
	for _, src := range sources {
		for _, client := range Both {
			b.Run(string(src)+"/"+client, Cached(src, client, false))
		}
	}
}

func BenchmarkCachedParallel(b *testing.B) {
	for _, src := range sources {
		for _, client := range Both {
			b.Run(string(src)+"/"+client, Cached(src, client, true))
		}
	}
}

func BenchmarkAuthGET(b *testing.B) {
	for _, where := range []string{"loopback", "in-memory"} {
		for _, kind := range []string{BareHTTP, MitokenHTTP, BarePipeline, AzurePolicy} {
			b.Run(where+"/"+kind, AuthGET(kind, where == "loopback"))
		}
	}
}

// BenchmarkCold: one op is Callers concurrent cold callers. Run it with a
// small -benchtime such as 3x.
func BenchmarkCold(b *testing.B) {
	for _, src := range sources {
		for _, client := range Both {
			b.Run(string(src)+"/"+client, ColdBench(src, client))
		}
	}
}

// BenchmarkStorm: one op is a refresh storm of Callers callers, after a
// wait of up to two seconds on the wall clock. Run it with -benchtime=1x.
func BenchmarkStorm(b *testing.B) {
	for _, client := range Both {
		b.Run(client, StormBench(client))
	}
}

// slowEnv, when set, lets BenchmarkNoListener run azidentity, whose first
// call with nothing listening retries for well over a minute.
const slowEnv = "MITOKEN_BENCH_SLOW"

func BenchmarkNoListener(b *testing.B) {
	b.Run("mitoken", NoListenerBench("mitoken", 10*time.Second))
	b.Run("azidentity", func(b *testing.B) {
		if os.Getenv(slowEnv) == "" {
			b.Skipf("azidentity retries for about 100 s with nothing listening; set %s=1 to measure it", slowEnv)
		}
		NoListenerBench("azidentity", 3*time.Minute)(b)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestGuard(t *testing.T) {
	g, err := NewGuard("127.0.0.1:1234")
	require.NoError(t, err)
	var sent []string
	g.client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.URL.Host)
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}

	req, err := http.NewRequest(http.MethodGet, "http://169.254.169.254/metadata/identity/oauth2/token?resource=x", nil)
	require.NoError(t, err)
	resp, err := g.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "169.254.169.254", req.URL.Host, "the caller's request is left alone")

	for _, host := range []string{"10.0.0.1", "example.com:443", "[fe80::1]:80"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		require.NoError(t, err)
		_, err = g.Do(req)
		assert.ErrorContains(t, err, "non-loopback")
	}
	assert.Equal(t, []string{"127.0.0.1:1234"}, sent, "only the redirected IMDS request is sent")
	assert.ErrorContains(t, g.Err(), "3 non-loopback host(s)")

	_, err = NewGuard("10.0.0.1:80")
	assert.Error(t, err)
}

// TestRigs checks that both clients of a rig reach the emulator, once each.
func TestRigs(t *testing.T) {
	for _, src := range sources {
		t.Run(string(src), func(t *testing.T) {
			r, err := NewRig(src)
			require.NoError(t, err)
			resource := UniqueResource() // azidentity's cache is process-wide
			for i, client := range Both {
				tok, err := r.Getter(client)(t.Context(), resource)
				require.NoError(t, err, client)
				claims, err := mitokentest.DecodeClaims(tok.AccessToken)
				require.NoError(t, err)
				assert.Equal(t, resource, claims.Audience)
				assert.Equal(t, i+1, r.Server.Requests(src), client)
			}
			require.NoError(t, r.Close())
			assert.Empty(t, os.Getenv("IDENTITY_ENDPOINT"), "the environment is restored")
		})
	}
}

// TestMitokenTargets checks the targets mitoken claims, with fewer callers
// than the benchmarks: one request for a cold crowd, one request and no
// waiting caller in a refresh storm, a fast error with nothing listening.
func TestMitokenTargets(t *testing.T) {
	ctx := t.Context()
	cold, err := NewRig(mitokentest.IMDS)
	require.NoError(t, err)
	defer func() { require.NoError(t, cold.Close()) }()
	c := Cold(ctx, cold, "mitoken", 100)
	assert.Zero(t, c.Errors)
	assert.Equal(t, 1, c.Requests)

	r, err := NewRig(mitokentest.IMDS, StormOptions...)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	s, err := Storm(ctx, r, "mitoken", 100, StormDelay)
	require.NoError(t, err)
	assert.Zero(t, s.Errors)
	assert.Equal(t, 1, s.Requests)
	assert.Zero(t, s.Waited)

	addr, err := ClosedLoopbackAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	first, err := NoListener("mitoken", addr)
	require.NoError(t, err)
	ref, err := first(ctx)
	require.NoError(t, err)
	assert.Less(t, ref.Elapsed, time.Second)
	assert.Contains(t, ref.Err.Error(), addr)
}

// TestAzureStorm runs the azidentity side of Cold and Storm once with few
// callers, so that CI notices when a new azidentity breaks the measures.
func TestAzureStorm(t *testing.T) {
	cold, err := NewRig(mitokentest.IMDS)
	require.NoError(t, err)
	defer func() { require.NoError(t, cold.Close()) }()
	c := Cold(t.Context(), cold, "azidentity", 20)
	assert.Zero(t, c.Errors)
	assert.GreaterOrEqual(t, c.Requests, 1)

	r, err := NewRig(mitokentest.IMDS, StormOptions...)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	s, err := Storm(t.Context(), r, "azidentity", 20, StormDelay)
	require.NoError(t, err)
	assert.Zero(t, s.Errors)
	assert.GreaterOrEqual(t, s.Requests, 1)
}
