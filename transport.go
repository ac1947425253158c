package mitoken

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// Transport is an http.RoundTripper that sends each request with a managed
// identity's access token in its Authorization header ("Bearer <token>") and
// hands it to Base. Use it as the Transport of any http.Client; NewClient
// builds such a client.
//
// Tokens are sent over https only: a request to a plain-http URL fails with an
// *ArgumentError naming its scheme and host (see AllowLoopbackHTTP). On a
// redirect followed by http.Client, the token goes only to a hop with the
// scheme, host and port of the first request; other hops are sent without it. When the resource answers 401 and the request body can be sent again
// (it has GetBody, or no body), Transport drops the rejected token from the
// credential's cache and retries once with a new one; a second 401 is returned
// as is. Dropping needs a credential with an Invalidate(resource, Token) bool
// method, as the credentials of this package have; with another Credential
// the single retry gets whatever token GetToken returns.
//
// The caller's request is never modified. Errors returned by RoundTrip never
// contain the token. A Transport is safe for concurrent use; it must not be
// copied after first use.
type Transport struct {
	// Credential gets the tokens. Required.
	Credential Credential
	// Resource is what the tokens are for: an App ID URI such as
	// "https://vault.azure.net", or a scope ending in "/.default". Required.
	Resource string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// AllowLoopbackHTTP lets tokens go over plain http to a loopback host
	// (localhost, 127.0.0.0/8, ::1), for local development against an
	// emulator. Off by default; other plain-http hosts are always refused.
	AllowLoopbackHTTP bool

	// bearer is the Authorization value of the last token used, so a request
	// with a cached token does not build the string again.
	bearer atomic.Pointer[bearerValue]
}

var _ http.RoundTripper = (*Transport)(nil)

type bearerValue struct{ token, header string }

// invalidator is a credential that can drop a token the resource rejected,
// if its cache still holds exactly that token.
type invalidator interface {
	Invalidate(resource string, tok Token) bool
}

// NewClient returns an http.Client whose requests carry tokens for resource
// from cred, through a Transport over http.DefaultTransport. Argument errors
// (a nil cred, an empty resource) are returned by the client's requests.
func NewClient(cred Credential, resource string) *http.Client {
	return &http.Client{Transport: &Transport{Credential: cred, Resource: resource}}
}

// drainLimit bounds how much of a 401 body is read so its connection can be
// reused before the retry.
const drainLimit = 4 << 10

// RoundTrip sends req with a token, as described on Transport. It closes the
// request body, also when it returns an error.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.check(req); err != nil {
		closeBody(req)
		return nil, err
	}
	if !sameHost(req.URL, firstURL(req)) {
		return t.base().RoundTrip(withoutAuthorization(req))
	}
	if err := t.checkScheme(req.URL); err != nil {
		closeBody(req)
		return nil, err
	}
	tok, err := t.token(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(t.authorized(req, req.Body, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	return t.retry(req, resp, tok)
}

// retry handles a 401: when the body can be sent again it drops tok and sends
// req once more with a new token. When it cannot, it returns resp untouched.
func (t *Transport) retry(req *http.Request, resp *http.Response, tok Token) (*http.Response, error) {
	body := req.Body
	switch {
	case body == nil || body == http.NoBody:
	case req.GetBody != nil:
		var err error
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	default:
		return resp, nil // the body is spent and cannot be rebuilt
	}
	if inv, ok := t.Credential.(invalidator); ok {
		inv.Invalidate(t.Resource, tok)
	}
	fresh, err := t.token(req)
	if err != nil {
		if body != req.Body {
			body.Close()
		}
		return resp, nil // the resource's answer says more than a failed refresh
	}
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
	return t.base().RoundTrip(t.authorized(req, body, fresh))
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// CloseIdleConnections closes the idle connections of Base, when it has
// such a method.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) check(req *http.Request) error {
	switch {
	case t.Credential == nil:
		return &ArgumentError{Name: "Transport.Credential", Problem: "it is nil; set it to a credential such as the one mitoken.New returns"}
	case strings.TrimSpace(t.Resource) == "":
		return &ArgumentError{Name: "Transport.Resource", Problem: `it is empty; set it to the App ID URI of the service called, such as "https://vault.azure.net"`}
	case req.URL == nil:
		return &ArgumentError{Name: "request URL", Problem: "it is nil"}
	}
	return nil
}

// checkScheme refuses to send a token anywhere but https (or loopback http
// when allowed). The error names the scheme and host, never the path or
// query, which may hold other secrets.
func (t *Transport) checkScheme(u *url.URL) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && t.AllowLoopbackHTTP && isLoopback(u.Hostname()):
		return nil
	}
	hint := "use an https URL"
	if u.Scheme == "http" && !t.AllowLoopbackHTTP {
		hint += " (or set Transport.AllowLoopbackHTTP for a loopback development server)"
	}
	return &ArgumentError{Name: "request URL",
		Problem: fmt.Sprintf("mitoken sends tokens over https only, not scheme %q to host %q; %s", u.Scheme, u.Host, hint)}
}

func (t *Transport) token(req *http.Request) (Token, error) {
	tok, err := t.Credential.GetToken(req.Context(), t.Resource)
	if err != nil {
		return Token{}, fmt.Errorf("mitoken: no token for the request to %s: %w", req.URL.Host, err)
	}
	if tok.AccessToken == "" {
		return Token{}, fmt.Errorf("mitoken: no token for the request to %s: the credential returned an empty access token", req.URL.Host)
	}
	return tok, nil
}

// authorized returns a shallow copy of req with body and a copy of its
// header carrying tok. The caller's request and header are left alone.
func (t *Transport) authorized(req *http.Request, body io.ReadCloser, tok Token) *http.Request {
	b := t.bearer.Load()
	if b == nil || b.token != tok.AccessToken {
		b = &bearerValue{token: tok.AccessToken, header: "Bearer " + tok.AccessToken}
		t.bearer.Store(b)
	}
	return copyRequest(req, body, b.header)
}

// withoutAuthorization returns req itself, or a copy without an
// Authorization header when req has one, for a hop that must not get the token.
func withoutAuthorization(req *http.Request) *http.Request {
	if !hasAuthorization(req.Header) {
		return req
	}
	return copyRequest(req, req.Body, "")
}

// outgoing holds a request copy and, when they fit, the values of its
// header, so the copy costs one allocation besides the header map.
type outgoing struct {
	req  http.Request
	vals [8]string
}

// copyRequest returns a shallow copy of req with body and a copy of its
// header in which Authorization is auth (or absent when auth is empty).
func copyRequest(req *http.Request, body io.ReadCloser, auth string) *http.Request {
	o := new(outgoing)
	o.req = *req
	o.req.Body = body
	o.req.Header = cloneHeader(req.Header, auth, o.vals[:0])
	return &o.req
}

func hasAuthorization(h http.Header) bool {
	for k := range h {
		if strings.EqualFold(k, "Authorization") {
			return true
		}
	}
	return false
}

// cloneHeader copies h without any Authorization entry and, when auth is not
// empty, with Authorization set to it. The values share one backing array,
// buf's when it is large enough, as in http.Header.Clone; each value slice is
// capped, so an append to one cannot overwrite the next.
func cloneHeader(h http.Header, auth string, buf []string) http.Header {
	n := 1
	for _, vv := range h {
		n += len(vv)
	}
	sv := buf[:0:cap(buf)]
	if n > cap(sv) {
		sv = make([]string, n)
	} else {
		sv = sv[:n]
	}
	h2 := make(http.Header, len(h)+1)
	for k, vv := range h {
		if strings.EqualFold(k, "Authorization") {
			continue
		}
		if vv == nil {
			h2[k] = nil
			continue
		}
		c := copy(sv, vv)
		h2[k] = sv[:c:c]
		sv = sv[c:]
	}
	if auth != "" {
		sv[0] = auth
		h2["Authorization"] = sv[:1:1]
	}
	return h2
}

// firstURL returns the URL of the request that started a chain of redirects
// made by http.Client (each hop's Response.Request is the hop before).
func firstURL(req *http.Request) *url.URL {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return first.URL
}

// sameHost reports whether a and b name the same scheme, host and port, the
// default port of the scheme being the same as no port.
func sameHost(a, b *url.URL) bool {
	if a == b {
		return true
	}
	if b == nil {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
}
