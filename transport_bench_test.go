package mitoken

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkTransport measures a loopback GET through Transport (with a
// cached token) against the same GET through the bare base transport, over
// plain http (AllowLoopbackHTTP) and over TLS. The bare request carries the
// same Authorization header, set by hand, so both send and parse the same
// bytes and the difference is what Transport costs. scheme=stub replaces the
// network with a base that answers at once, isolating Transport's own cost
// from the noise of a loopback round trip. Compare with benchstat -col /rt.
func BenchmarkTransport(b *testing.B) {
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"access_token":"token-1","expires_in":"86400","resource":"https://vault.azure.net","token_type":"Bearer"}`)
	}))
	defer ts.Close()
	cache := NewCache()
	cred, err := NewIMDS(WithEndpoint(ts.URL), WithCache(cache), WithSystemAssigned())
	if err != nil {
		b.Fatal(err)
	}
	defer cache.running.Wait()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	stub := func(http.Handler) (string, http.RoundTripper, func()) {
		resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}
		return "https://vault.example.com", roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }), func() {}
	}
	serve := func(newServer func(http.Handler) *httptest.Server) func(http.Handler) (string, http.RoundTripper, func()) {
		return func(h http.Handler) (string, http.RoundTripper, func()) {
			s := newServer(h)
			return s.URL, s.Client().Transport, s.Close
		}
	}
	for _, srv := range []struct {
		name  string
		start func(http.Handler) (string, http.RoundTripper, func())
	}{{"stub", stub}, {"http", serve(httptest.NewServer)}, {"https", serve(httptest.NewTLSServer)}} {
		srvURL, base, stop := srv.start(api)
		tr := &Transport{Credential: cred, Resource: vaultResource, Base: base, AllowLoopbackHTTP: true}
		for _, rt := range []struct {
			name string
			rt   http.RoundTripper
		}{{"base", base}, {"mitoken", tr}} {
			b.Run("scheme="+srv.name+"/rt="+rt.name, func(b *testing.B) {
				client := &http.Client{Transport: rt.rt}
				req, err := http.NewRequest(http.MethodGet, srvURL+"/secrets/x?api-version=7.4", nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Accept", "application/json")
				if rt.name == "base" {
					req.Header.Set("Authorization", "Bearer token-1")
				}
				b.ReportAllocs()
				for b.Loop() {
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		stop()
	}
}
