package retry

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDelaySchedule(t *testing.T) {
	p := IMDS
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 25 * time.Second, 25 * time.Second, 25 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, p.MinDelay(i), "retry %d", i)
		assert.Equal(t, w+time.Duration(float64(w)*p.Jitter), p.MaxDelay(i))
		for range 100 {
			d := p.Delay(i, 0)
			assert.GreaterOrEqual(t, d, p.MinDelay(i))
			assert.LessOrEqual(t, d, p.MaxDelay(i))
		}
	}
	assert.Equal(t, 7*time.Second, p.Delay(0, 7*time.Second), "Retry-After wins over the schedule")
}

func TestRetrySets(t *testing.T) {
	for _, s := range []int{404, 410, 429, 500, 503, 511} {
		assert.True(t, IMDS.Retries(s), "IMDS retries %d", s)
	}
	for _, s := range []int{200, 400, 401, 403, 509} {
		assert.False(t, IMDS.Retries(s), "IMDS does not retry %d", s)
	}
	for _, s := range []int{408, 429, 500, 502, 503, 504} {
		assert.True(t, AppService.Retries(s))
	}
	assert.False(t, AppService.Retries(404))
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	assert.Equal(t, 5*time.Second, RetryAfter(h("5"), now))
	assert.Equal(t, 30*time.Second, RetryAfter(h(now.Add(30*time.Second).Format(http.TimeFormat)), now))
	assert.Zero(t, RetryAfter(h(now.Add(-time.Minute).Format(http.TimeFormat)), now))
	assert.Zero(t, RetryAfter(h("0"), now))
	assert.Zero(t, RetryAfter(h("-3"), now))
	assert.Zero(t, RetryAfter(h("soon"), now))
	assert.Zero(t, RetryAfter(http.Header{}, now))
	assert.Equal(t, 24*time.Hour, RetryAfter(h("999999999999"), now), "capped, never overflowing")
}

func TestEntraRetriesThrottlingAndTransientFailures(t *testing.T) {
	for _, s := range []int{408, 429, 500, 502, 503, 504} {
		assert.True(t, Entra.Retries(s), "Entra retries %d", s)
	}
	for _, s := range []int{400, 401, 403, 404, 501} {
		assert.False(t, Entra.Retries(s), "Entra does not retry %d", s)
	}
	assert.Equal(t, time.Second, Entra.MinDelay(0))
	assert.Equal(t, 8*time.Second, Entra.MinDelay(5))
	assert.Equal(t, 30*time.Second, Entra.Delay(0, 30*time.Second), "Retry-After wins")
}
