package mitokentest

import (
	"net/http"
	"net/url"
	"time"
)

// Request is a request an endpoint received, as recorded in the log.
type Request struct {
	// Source is the endpoint that received it.
	Source Source
	// Method and Path are the request's method and URL path.
	Method string
	Path   string
	// Query holds the query parameters.
	Query url.Values
	// Header holds the request headers. The values of headers that carry
	// secrets (Authorization, X-IDENTITY-HEADER, Secret, Cookie,
	// Proxy-Authorization) are replaced by "<redacted>".
	Header http.Header
	// Time is when it arrived, by the server's clock.
	Time time.Time
}

// Redacted replaces the value of a secret header in the log.
const Redacted = "<redacted>"

var secretHeaders = []string{"Authorization", "X-Identity-Header", "Secret", "Cookie", "Proxy-Authorization"}

func newRequest(src Source, r *http.Request, now time.Time) Request {
	h := r.Header.Clone()
	for _, name := range secretHeaders {
		if vs := h.Values(name); len(vs) > 0 {
			masked := make([]string, len(vs))
			for i := range masked {
				masked[i] = Redacted
			}
			h[http.CanonicalHeaderKey(name)] = masked
		}
	}
	return Request{Source: src, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: h, Time: now}
}

func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	q := make(url.Values, len(r.Query))
	for k, v := range r.Query {
		q[k] = append([]string(nil), v...)
	}
	r.Query = q
	return r
}

// Log returns the requests received so far by every endpoint, in the order
// they arrived. The result is a copy the caller may keep and change.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, r := range s.log {
		out[i] = r.clone()
	}
	return out
}
