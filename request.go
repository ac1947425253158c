package mitoken

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/mitoken/mitoken/internal/clock"
	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// The HTTP path every source shares: one retrying client per credential over
// a connection pool per source kind, no redirects, no proxy for link-local
// endpoints, waits that honour the context, and typed errors that name the
// endpoint's host but never its query string or headers.

const (
	// attemptTimeout bounds one HTTP attempt (connect, headers and body).
	attemptTimeout = 30 * time.Second
	// dialTimeout bounds connecting to an endpoint; probeDialTimeout does
	// when New chose IMDS by default and nothing is known to listen.
	dialTimeout      = 5 * time.Second
	probeDialTimeout = time.Second
)

// newTransport returns a transport for local token endpoints: never through
// a proxy (IMDS is link-local and rejects forwarded requests; the others are
// on loopback), with the connect timeout taken from the request's context.
func newTransport() *http.Transport {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeoutFor(ctx))
			defer cancel()
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: attemptTimeout,
	}
}

// dialTimeoutFor is probeDialTimeout for a probing request, else dialTimeout.
func dialTimeoutFor(ctx context.Context) time.Duration {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok && st.probe {
		return probeDialTimeout
	}
	return dialTimeout
}

// sharedTransport pools connections for every credential that did not bring
// its own HTTP client.
var sharedTransport = newTransport()

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// sender makes one source's token requests with that source's retry policy.
type sender struct {
	source string
	policy retry.Policy
	client *retryablehttp.Client
	clock  clock.Clock
	logger *slog.Logger
	wait   func(time.Duration) time.Duration // test hook: shorten waits
}

// requestState travels in the request context so the retry hooks, which the
// retrying client shares between requests, can count and judge each one.
type requestState struct {
	probe    bool
	host     string
	attempts int
	started  time.Time
	latency  time.Duration // of the attempt in progress, set by attemptTransport
}

type stateKey struct{}

func newSender(source string, policy retry.Policy, cfg *config) *sender {
	timeout := attemptTimeout
	if cfg.attemptTimeout > 0 {
		timeout = cfg.attemptTimeout
	}
	hc := &http.Client{Transport: sharedTransport, Timeout: timeout}
	if cfg.httpClient != nil {
		copied := *cfg.httpClient
		hc = &copied
	}
	hc.Transport = &attemptTransport{base: hc.Transport}
	hc.CheckRedirect = noRedirect
	s := &sender{source: source, policy: policy, clock: cfg.cache.clock, logger: cfg.logger, wait: cfg.retryWait}
	s.client = &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil, // its own logger prints URLs; we log through s.logger
		RetryMax:     policy.MaxRetries,
		CheckRetry:   s.checkRetry,
		Backoff:      s.backoff,
		ErrorHandler: keepLastResponse,
	}
	return s
}

// keepLastResponse hands the last response (or error) back to the source,
// which turns it into a typed error; retryablehttp's default would drop it.
func keepLastResponse(resp *http.Response, err error, _ int) (*http.Response, error) {
	return resp, err
}

// attemptTransport reads each answer's body (up to the size limit) before
// the attempt ends, so that the per-attempt timeout covers the body and a
// connection lost mid-body is a failed attempt, retried like any other, and
// it times the attempt for the log.
type attemptTransport struct{ base http.RoundTripper }

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	st, _ := req.Context().Value(stateKey{}).(*requestState)
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, wire.MaxBodyBytes+1))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			resp = nil
		}
	}
	if st != nil {
		st.latency = time.Since(start)
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t *attemptTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// checkRetry judges each attempt. It logs one debug record per attempt
// (source, host, status, attempt number, latency) and a warning for each
// retry; never the URL's query string, a header or a body.
func (s *sender) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	if st == nil {
		st = &requestState{} // never nil in practice: do always sets it
	}
	st.attempts++
	attrs := []any{slog.String("source", s.source), slog.String("host", st.host), slog.Int("attempt", st.attempts)}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	debug := append(attrs, slog.Int("status", status), slog.Duration("latency", st.latency))
	st.latency = 0
	if err != nil {
		debug = append(debug, slog.String("error", describeTransportError(err)))
	}
	s.logger.Debug("mitoken: token request attempt", debug...)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return false, ctxErr
	}
	attrs = append(attrs, slog.Duration("elapsed", s.clock.Now().Sub(st.started)))
	retrying := st.attempts <= s.policy.MaxRetries // else retryablehttp stops here
	if err != nil {
		var final noRetry
		if errors.As(err, &final) {
			return false, err // retrying cannot cure it (a pinned certificate that does not match)
		}
		if isDialError(err) && st.probe {
			return false, err // nothing listens: no retries when only probing
		}
		if !retrying {
			return true, nil
		}
		s.logger.Warn("mitoken: token request failed; retrying", append(attrs, slog.String("error", describeTransportError(err)))...)
		return true, nil
	}
	if !s.policy.Retries(resp.StatusCode) {
		return false, nil
	}
	if ra := retry.RetryAfter(resp.Header, s.clock.Now()); ra > s.policy.MaxRetryAfter {
		s.logger.Warn("mitoken: endpoint asked to retry later than mitoken waits; giving up",
			append(attrs, slog.Int("status", resp.StatusCode), slog.Duration("retry_after", ra))...)
		return false, nil
	}
	if !retrying {
		return true, nil
	}
	s.logger.Warn("mitoken: token endpoint answered a retryable status; retrying", append(attrs, slog.Int("status", resp.StatusCode))...)
	return true, nil
}

func (s *sender) backoff(_, _ time.Duration, attempt int, resp *http.Response) time.Duration {
	var ra time.Duration
	if resp != nil {
		ra = retry.RetryAfter(resp.Header, s.clock.Now())
	}
	d := s.policy.Delay(attempt, ra)
	if s.wait != nil {
		d = s.wait(d)
	}
	return d
}

// do sends req with retries and returns the last response, whose body the
// caller must close, and the number of attempts made. A transport failure is
// returned as an error naming the host; one where nothing could be reached
// also satisfies errors.Is(err, ErrUnavailable).
func (s *sender) do(ctx context.Context, req *http.Request, probe bool) (*http.Response, int, error) {
	st := &requestState{probe: probe, host: req.URL.Host, started: s.clock.Now()}
	ctx = context.WithValue(ctx, stateKey{}, st)
	rreq, err := retryablehttp.FromRequest(req.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("mitoken: %s: building the token request: %w", s.source, err)
	}
	resp, err := s.client.Do(rreq)
	if err == nil {
		return resp, st.attempts, nil
	}
	if resp != nil {
		resp.Body.Close()
	}
	host := req.URL.Host
	switch {
	case ctx.Err() != nil:
		return nil, st.attempts, fmt.Errorf("mitoken: %s: token request to %s stopped after %d attempt(s): %w", s.source, host, st.attempts, ctx.Err())
	case isDialError(err):
		return nil, st.attempts, unavailable(s.source, fmt.Sprintf("nothing answered at %s after %d attempt(s)", host, st.attempts), unwrapURLError(err))
	}
	return nil, st.attempts, fmt.Errorf("mitoken: %s: token request to %s failed after %d attempt(s): %w", s.source, host, st.attempts, unwrapURLError(err))
}

// isLoopback reports whether host (without a port) is localhost or a
// loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unwrapURLError drops the *url.Error layer, whose text holds the full URL
// and so the query string with identity IDs.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func describeTransportError(err error) string { return unwrapURLError(err).Error() }

// isDialError reports whether err means no connection could be made.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// readToken turns the final response of a token request into a token or a
// *ResponseError. It closes the body.
func (s *sender) readToken(resp *http.Response, attempts int) (wire.Token, wire.ErrorBody, error) {
	defer resp.Body.Close()
	body, err := wire.ReadBody(resp.Body)
	if err != nil {
		return wire.Token{}, wire.ErrorBody{}, &ResponseError{Source: s.source, StatusCode: resp.StatusCode, Attempts: attempts,
			Message: "could not read the response", err: err}
	}
	if resp.StatusCode != http.StatusOK {
		eb := wire.DecodeErrorBody(body)
		return wire.Token{}, eb, s.responseError(resp, attempts, eb)
	}
	tok, err := wire.DecodeToken(body, s.clock.Now())
	if err != nil {
		return wire.Token{}, wire.ErrorBody{}, &ResponseError{Source: s.source, StatusCode: resp.StatusCode, Attempts: attempts, err: err}
	}
	return tok, wire.ErrorBody{}, nil
}

// fetchToken sends a token request and reads the answer into a token or a
// *ResponseError, from which secret (when not empty) is removed.
func (s *sender) fetchToken(ctx context.Context, req *http.Request, secret string) (wire.Token, error) {
	resp, attempts, err := s.do(ctx, req, false)
	if err != nil {
		return wire.Token{}, err
	}
	tok, _, err := s.readToken(resp, attempts)
	return tok, redactSecret(err, secret)
}

// readError turns a response that is not the token into a *ResponseError,
// whatever its status. It closes the body.
func (s *sender) readError(resp *http.Response, attempts int) *ResponseError {
	defer resp.Body.Close()
	body, err := wire.ReadBody(resp.Body)
	if err != nil {
		return &ResponseError{Source: s.source, StatusCode: resp.StatusCode, Attempts: attempts,
			Message: "could not read the response", err: err}
	}
	return s.responseError(resp, attempts, wire.DecodeErrorBody(body))
}

func (s *sender) responseError(resp *http.Response, attempts int, eb wire.ErrorBody) *ResponseError {
	return &ResponseError{Source: s.source, StatusCode: resp.StatusCode, Attempts: attempts,
		ErrorCode: eb.Code, Description: eb.Description, Message: statusMessage(resp)}
}

// newGet builds a GET to endpoint with query q and the given header pairs.
func newGet(ctx context.Context, endpoint *url.URL, q url.Values, header ...string) (*http.Request, error) {
	u := *endpoint
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req, nil
}

// newPostForm builds a POST to endpoint with form as its
// application/x-www-form-urlencoded body and the given header pairs. The
// retrying client buffers the body, so every retry resends the same form.
func newPostForm(ctx context.Context, endpoint *url.URL, form url.Values, header ...string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req, nil
}

// noRetry is implemented by transport errors that retrying cannot cure.
type noRetry interface{ noRetry() }

func statusMessage(resp *http.Response) string {
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "the token endpoint answered with a redirect, which mitoken does not follow"
	case resp.StatusCode == http.StatusTooManyRequests:
		return "the token endpoint is throttling requests"
	case resp.StatusCode >= 500:
		return "the token endpoint failed"
	}
	return ""
}
