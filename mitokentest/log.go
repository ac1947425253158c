package mitokentest

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
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
	// Form holds the url-encoded body of a POST (Cloud Shell, workload
	// identity), else nil. The client_assertion value is replaced by
	// "<redacted>".
	Form url.Values
	// Time is when it arrived, by the server's clock.
	Time time.Time
}

// Redacted replaces the value of a secret header in the log.
const Redacted = "<redacted>"

var secretHeaders = []string{"Authorization", "X-Identity-Header", "Secret", "Cookie", "Proxy-Authorization"}

// secretFields are form fields whose values the log masks.
var secretFields = []string{"client_assertion", "client_secret"}

// loggedForm reads the url-encoded body of a POST for the log, masking
// secret fields, and puts the body back for the handler. Anything else
// gives nil.
func loggedForm(r *http.Request) url.Values {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	if err != nil || len(b) > maxFormBytes {
		return nil
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil
	}
	for _, name := range secretFields {
		if vs := form[name]; len(vs) > 0 {
			form[name] = slices.Repeat([]string{Redacted}, len(vs))
		}
	}
	return form
}

func newRequest(src Source, r *http.Request, form url.Values, now time.Time) Request {
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
	return Request{Source: src, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: h, Form: form, Time: now}
}

func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	q := make(url.Values, len(r.Query))
	for k, v := range r.Query {
		q[k] = append([]string(nil), v...)
	}
	r.Query = q
	if r.Form != nil {
		f := make(url.Values, len(r.Form))
		for k, v := range r.Form {
			f[k] = append([]string(nil), v...)
		}
		r.Form = f
	}
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
