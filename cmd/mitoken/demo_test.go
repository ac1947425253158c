package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemo(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	code, stdout, stderr := runCmd(t, "demo")
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)

	for _, want := range []string{
		"1. A token from each source",
		"\n   imds        token eyJ", "\n   appservice  token eyJ", "\n   arc         token eyJ",
		"aud=https://vault.azure.net",
		"2. 1,000 concurrent GetToken calls, one request",
		"1 distinct token returned in", "the emulator received 1 request\n",
		"3. The Transport calling a protected endpoint",
		"with mitoken.Transport -> 200 OK \"hello, ",
		"without it             -> 401 Unauthorized",
		"4. Retries: the App Service endpoint answers 503, 503, then 200",
		": HTTP 503 Service Unavailable", "attempt 3 at", ": HTTP 200 OK", "and 3 requests",
		"All four worked.",
	} {
		assert.Contains(t, stdout, want)
	}
	assertNoToken(t, stdout)
	for _, line := range strings.Split(stdout, "\n") {
		assert.LessOrEqual(t, len(line), 140, "a readable line: %q", line)
	}

	// Everything the demo started has ended: the emulator, the API, the
	// credentials' connections (their goroutines end as the servers close).
	assert.True(t, goroutinesDropTo(goroutines, 5*time.Second), "goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
}

// goroutinesDropTo polls, within limit, until no more than n goroutines run.
// (assert.Eventually would count its own.)
func goroutinesDropTo(n int, limit time.Duration) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

func TestDemoStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"demo"}, &out, &errOut)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "section 1 (A token from each source) failed")
	assert.Contains(t, errOut.String(), "context canceled")
}
