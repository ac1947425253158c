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
// bytes and the difference is what Transport costs. Compare with
// benchstat -col /rt.
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

	for _, srv := range []struct {
		name string
		new  func(http.Handler) *httptest.Server
	}{{"http", httptest.NewServer}, {"https", httptest.NewTLSServer}} {
		s := srv.new(api)
		base := s.Client().Transport
		tr := &Transport{Credential: cred, Resource: vaultResource, Base: base, AllowLoopbackHTTP: true}
		for _, rt := range []struct {
			name string
			rt   http.RoundTripper
		}{{"base", base}, {"mitoken", tr}} {
			b.Run("scheme="+srv.name+"/rt="+rt.name, func(b *testing.B) {
				client := &http.Client{Transport: rt.rt}
				req, err := http.NewRequest(http.MethodGet, s.URL+"/secrets/x?api-version=7.4", nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Accept", "application/json")
				if rt.rt == base {
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
		s.Close()
	}
}
