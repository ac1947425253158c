package mitokentest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain points the IMDS host override at a closed loopback port, so a
// test that forgets its endpoint fails on loopback instead of reaching out
// to 169.254.169.254. It is the only TestMain of this directory.
func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+addr)
	code := m.Run()
	if code == 0 {
		// Idle keep-alive connections are not leaks: close them so that their
		// read and write loops end before the check.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

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
