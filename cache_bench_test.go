package mitoken

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The cached-hit benchmarks run beside a baseline of a bare sync.Map load
// plus time.Now(), so the ratio comes from one run on one machine.

func newBenchCredential(b *testing.B) *IMDSCredential {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, tokenBody(time.Now().Add(24*time.Hour)))
	}))
	b.Cleanup(srv.Close)
	cred, err := NewIMDS(WithEndpoint(srv.URL), WithCache(NewCache()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cred.GetToken(context.Background(), res); err != nil {
		b.Fatal(err)
	}
	return cred
}

var sink Token

func BenchmarkGetTokenCached(b *testing.B) {
	cred := newBenchCredential(b)
	ctx := context.Background()
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tok, err := cred.GetToken(ctx, res)
			if err != nil {
				b.Fatal(err)
			}
			sink = tok
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var local Token
			for pb.Next() {
				tok, err := cred.GetToken(ctx, res)
				if err != nil {
					b.Fatal(err)
				}
				local = tok
			}
			_ = local
		})
	})
}

// baselineEntry is what the baseline loads: a token and its expiry.
type baselineEntry struct {
	tok Token
}

var baselineSink bool

func BenchmarkBaselineSyncMapLoadTimeNow(b *testing.B) {
	var m sync.Map
	m.Store(res, &baselineEntry{tok: Token{AccessToken: "x", ExpiresOn: time.Now().Add(time.Hour)}})
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := m.Load(res)
			baselineSink = time.Now().Before(v.(*baselineEntry).tok.ExpiresOn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var ok bool
			for pb.Next() {
				v, _ := m.Load(res)
				ok = time.Now().Before(v.(*baselineEntry).tok.ExpiresOn)
			}
			_ = ok
		})
	})
}

// BenchmarkColdConcurrent has 1,000 callers ask an empty cache for the same
// token at once and reports how many requests reached the endpoint for them.
func BenchmarkColdConcurrent(b *testing.B) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, tokenBody(time.Now().Add(24*time.Hour)))
	}))
	defer srv.Close()
	const callers = 1000
	b.ReportAllocs()
	for b.Loop() {
		cred, err := NewIMDS(WithEndpoint(srv.URL), WithCache(NewCache()))
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := cred.GetToken(context.Background(), res); err != nil {
					b.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	b.ReportMetric(float64(hits.Load())/float64(b.N), "requests/1000-callers")
}
