// Package retry holds the retry policies of the managed-identity sources:
// which answers are retried, how long to wait between tries, and how
// Retry-After is read. It is pure: no I/O, no sleeping.
package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy says which responses a source retries and how long it waits.
type Policy struct {
	// Statuses are the HTTP status codes that are retried.
	Statuses []int
	// MaxRetries is how many retries follow the first attempt.
	MaxRetries int
	// Base is the first delay; each later delay doubles, up to Cap.
	Base, Cap time.Duration
	// Jitter stretches each computed delay by a random factor in [1, 1+Jitter),
	// so a fleet does not retry in step. Delays never shrink below the schedule.
	Jitter float64
	// MaxRetryAfter is the longest Retry-After the policy will wait for; when
	// an endpoint asks for longer, the policy gives up instead.
	MaxRetryAfter time.Duration
}

// IMDS is the Instance Metadata Service policy: the status set the Azure SDK
// for Go retries, and an exponential schedule (2 s doubling to 25 s, six
// retries) whose delays add up to at least 80 s, so a 410 during an IMDS
// upgrade is retried for longer than the 70 s Microsoft asks for.
var IMDS = Policy{
	Statuses:      []int{404, 410, 429, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511},
	MaxRetries:    6,
	Base:          2 * time.Second,
	Cap:           25 * time.Second,
	Jitter:        0.2,
	MaxRetryAfter: 60 * time.Second,
}

// AppService is the App Service / Functions policy: the Azure SDK's general
// retry set with a shorter exponential schedule.
var AppService = Policy{
	Statuses:      []int{408, 429, 500, 502, 503, 504},
	MaxRetries:    4,
	Base:          800 * time.Millisecond,
	Cap:           10 * time.Second,
	Jitter:        0.2,
	MaxRetryAfter: 60 * time.Second,
}

// Arc is the Azure Arc agent policy. The agent (himds) implements the IMDS
// protocol on loopback, so it gets the IMDS status set; but it is a local
// process, not a platform service under upgrade, so the schedule is short
// (1 s doubling to 8 s, four retries, about 15 s in all): a restarting agent
// is back within seconds, and a broken one should fail the caller soon. The
// challenge's 401 is not in the set: it is the expected first answer.
var Arc = Policy{
	Statuses:      IMDS.Statuses,
	MaxRetries:    4,
	Base:          time.Second,
	Cap:           8 * time.Second,
	Jitter:        0.2,
	MaxRetryAfter: 30 * time.Second,
}

// Entra is the policy for Microsoft Entra ID's token endpoint, used by
// workload identity: the Azure SDK's general retry set (408, 429 and the
// transient 5xx), honouring Retry-After, on a short schedule (1 s doubling
// to 8 s, three retries): Entra answers within seconds when it answers.
var Entra = Policy{
	Statuses:      []int{408, 429, 500, 502, 503, 504},
	MaxRetries:    3,
	Base:          time.Second,
	Cap:           8 * time.Second,
	Jitter:        0.2,
	MaxRetryAfter: 60 * time.Second,
}

// Retries reports whether status is in the policy's retry set.
func (p Policy) Retries(status int) bool {
	for _, s := range p.Statuses {
		if s == status {
			return true
		}
	}
	return false
}

// Delay returns the wait before retry number attempt (0 for the first retry).
// A positive retryAfter from the endpoint wins over the schedule.
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return p.jittered(p.scheduled(attempt), rand.Float64())
}

// MinDelay is Delay without jitter: the least the policy waits before retry
// number attempt when the endpoint sends no Retry-After.
func (p Policy) MinDelay(attempt int) time.Duration { return p.scheduled(attempt) }

// MaxDelay is the most the policy waits before retry number attempt when the
// endpoint sends no Retry-After.
func (p Policy) MaxDelay(attempt int) time.Duration { return p.jittered(p.scheduled(attempt), 1) }

func (p Policy) scheduled(attempt int) time.Duration {
	d := p.Base
	for i := 0; i < attempt && d < p.Cap; i++ {
		d *= 2
	}
	if d > p.Cap {
		d = p.Cap
	}
	return d
}

func (p Policy) jittered(d time.Duration, r float64) time.Duration {
	return d + time.Duration(float64(d)*p.Jitter*r)
}

// RetryAfter reads a Retry-After header given as seconds or as an HTTP date.
// It returns 0 when the header is absent, malformed or in the past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
