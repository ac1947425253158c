package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// newRig is NewRig for a benchmark: it fails b on error and, when b ends,
// closes the rig and fails b if azidentity tried to leave loopback.
func newRig(b *testing.B, src mitokentest.Source, opts ...mitokentest.Option) *Rig {
	b.Helper()
	r, err := NewRig(src, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.Close(); err != nil {
			b.Error(err)
		}
	})
	return r
}

// Cached returns a benchmark of a cache hit of client's GetToken for src,
// sequential or under RunParallel. The argument each call takes is built
// once, outside the loop, as a caller that cares would do.
func Cached(src mitokentest.Source, client string, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		r := newRig(b, src)
		ctx := context.Background()
		var call func() error
		if client == "mitoken" {
			cred := r.Mitoken
			call = func() error { _, err := cred.GetToken(ctx, Resource); return err }
		} else {
			cred, opts := r.Azure, policy.TokenRequestOptions{Scopes: []string{Resource + "/.default"}}
			call = func() error { _, err := cred.GetToken(ctx, opts); return err }
		}
		if err := call(); err != nil {
			b.Fatal(err)
		}
		before := r.Server.Requests(src)
		b.ReportAllocs()
		b.ResetTimer()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		if n := r.Server.Requests(src) - before; n != 0 {
			b.Fatalf("%s sent %d token requests during a cached benchmark", client, n)
		}
	}
}

// GET clients compared in AuthGET.
const (
	BareHTTP     = "http.Client"          // http.Client, no token
	MitokenHTTP  = "mitoken.Transport"    // http.Client over mitoken.Transport
	BarePipeline = "azcore pipeline"      // azcore pipeline, no token
	AzurePolicy  = "azcore bearer policy" // azcore pipeline with the bearer-token policy
)

// okRoundTripper answers every request at once, in memory, with an empty
// 200: it isolates what a client adds around the network.
type okRoundTripper struct{}

func (okRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, ContentLength: 0, Request: req}, nil
}

// AuthGET returns a benchmark of one GET by kind (one of the constants
// above), with warm token caches. Over loopback it goes to an httptest
// server that checks the Authorization header when a token is due; else to
// an in-memory round tripper, which leaves only the clients' own work.
func AuthGET(kind string, loopback bool) func(*testing.B) {
	return func(b *testing.B) {
		r := newRig(b, mitokentest.IMDS)
		var missing atomic.Int64
		wantAuth := kind == MitokenHTTP || kind == AzurePolicy
		target := "https://in-memory.invalid/resource"
		var base http.RoundTripper = okRoundTripper{}
		if loopback {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if wantAuth && !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
					missing.Add(1)
				}
				_, _ = io.WriteString(w, "ok")
			}))
			b.Cleanup(srv.Close)
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil
			b.Cleanup(tr.CloseIdleConnections)
			base, target = tr, srv.URL+"/resource"
		}
		get := getter(b, r, kind, base, target)
		if err := get(); err != nil { // warm the token caches and the connection
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n := missing.Load(); n > 0 {
			b.Fatalf("%s sent %d requests without a bearer token", kind, n)
		}
	}
}

// getter returns one GET of target by kind over base.
func getter(b *testing.B, r *Rig, kind string, base http.RoundTripper, target string) func() error {
	ctx := context.Background()
	switch kind {
	case BareHTTP, MitokenHTTP:
		hc := &http.Client{Transport: base}
		if kind == MitokenHTTP {
			hc.Transport = &mitoken.Transport{Credential: r.Mitoken, Resource: Resource, Base: base, AllowLoopbackHTTP: true}
		}
		return func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return err
			}
			return drain(hc.Do(req))
		}
	case BarePipeline, AzurePolicy:
		var po runtime.PipelineOptions
		if kind == AzurePolicy {
			po.PerRetry = []policy.Policy{runtime.NewBearerTokenPolicy(r.Azure, []string{Resource + "/.default"},
				&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: true})}
		}
		p := runtime.NewPipeline("bench", "v0.0.0", po, &policy.ClientOptions{Transport: &http.Client{Transport: base}})
		return func() error {
			req, err := runtime.NewRequest(ctx, http.MethodGet, target)
			if err != nil {
				return err
			}
			return drain(p.Do(req))
		}
	}
	b.Fatalf("bench: unknown GET client %q", kind)
	return nil
}

// drain reads and closes the body of a response, as a client that reuses
// connections does.
func drain(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// ColdBench returns a benchmark whose every op is Cold with Callers
// callers; it reports upstream requests per op.
func ColdBench(src mitokentest.Source, client string) func(*testing.B) {
	return func(b *testing.B) {
		r := newRig(b, src)
		reqs := 0
		for b.Loop() {
			c := Cold(context.Background(), r, client, Callers)
			if c.Errors > 0 {
				b.Fatalf("%d of %d callers failed; the first: %v", c.Errors, Callers, c.FirstErr)
			}
			reqs += c.Requests
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "upstream-req/op")
	}
}

// StormDelay is how long the emulator takes to answer the refresh request
// in a storm, so that waiting callers can be told from the others.
const StormDelay = 200 * time.Millisecond

// StormOptions are the emulator options of a refresh storm: day-long
// tokens, which both clients keep handing out, with refresh_in of two
// seconds, which both honour.
var StormOptions = []mitokentest.Option{mitokentest.WithRefreshIn(2 * time.Second)}

// StormBench returns a benchmark whose every op is a refresh Storm with
// Callers callers; it reports upstream requests and waiting callers per op.
// Each op waits on the wall clock for the refresh point (up to 2 s).
func StormBench(client string) func(*testing.B) {
	return func(b *testing.B) {
		r := newRig(b, mitokentest.IMDS, StormOptions...)
		reqs, waited := 0, 0
		for i := 0; i < b.N; i++ {
			s, err := Storm(context.Background(), r, client, Callers, StormDelay)
			if err != nil {
				b.Fatal(err)
			}
			if s.Errors > 0 {
				b.Fatalf("%d of %d callers failed; the first: %v", s.Errors, Callers, s.FirstErr)
			}
			reqs += s.Requests
			waited += s.Waited
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "upstream-req/op")
		b.ReportMetric(float64(waited)/float64(b.N), "waited/op")
	}
}

// NoListenerBench returns a benchmark whose every op is NoListener at a
// closed loopback port, bounded by limit.
func NoListenerBench(client string, limit time.Duration) func(*testing.B) {
	return func(b *testing.B) {
		addr, err := ClosedLoopbackAddr()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			first, err := NoListener(client, addr)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			_, err = first(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
