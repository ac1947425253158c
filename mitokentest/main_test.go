package mitokentest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/testmain"
)

// TestMain runs the project's test rules (package internal/testmain): no
// test reaches 169.254.169.254, and no goroutine outlives the tests. It is
// the only TestMain of this directory.
func TestMain(m *testing.M) { testmain.Main(m) }

const vault = "https://vault.azure.net"

// get sends GET endpoint?query with header through a client of its own and
// returns the answer with its body read.
func get(t *testing.T, endpoint string, query url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	return send(t, context.Background(), http.MethodGet, endpoint, query, header)
}

func send(t *testing.T, ctx context.Context, method, endpoint string, query url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	resp, body, err := try(ctx, method, endpoint, query, header)
	require.NoError(t, err)
	return resp, body
}

// try is send that returns the error instead of failing the test.
func try(ctx context.Context, method, endpoint string, query url.Values, header http.Header) (*http.Response, string, error) {
	u := endpoint
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// override returns base with the parameters of m set, or removed where the
// value is empty.
func override(base url.Values, m map[string]string) url.Values {
	for k, v := range m {
		if v == "" {
			base.Del(k)
		} else {
			base.Set(k, v)
		}
	}
	return base
}

// orDefault returns h, or def when h is nil.
func orDefault(h, def http.Header) http.Header {
	if h != nil {
		return h
	}
	return def
}

// metadata is the header IMDS and Arc require.
func metadata() http.Header { return http.Header{"Metadata": {"true"}} }

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// waitGoroutines waits, up to a deadline, until no more than n goroutines
// run, and returns how many run.
func waitGoroutines(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			return got
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// noSecrets asserts that none of secrets appears in text.
func noSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		require.NotEmpty(t, s)
		if strings.Contains(text, s) {
			t.Errorf("secret number %d leaked into a text of %d bytes (not shown)", i+1, len(text))
		}
	}
}
