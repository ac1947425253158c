package bench

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// imdsAddr is the fixed IMDS address that azidentity sends to. The Guard
// rewrites it before sending: nothing here ever connects to it.
const imdsAddr = "169.254.169.254"

// Guard is the policy.Transporter given to azidentity. It sends requests for
// the fixed IMDS address to imdsHost (an emulator listener, or a closed
// loopback port) and every other request as it is, but only to loopback: a
// request for any other host is refused unsent and counted as a violation.
type Guard struct {
	imdsHost string // host:port on loopback
	client   *http.Client

	violations atomic.Int64
	mu         sync.Mutex
	refused    []string
}

var _ policy.Transporter = (*Guard)(nil)

// NewGuard returns a Guard that redirects IMDS to imdsHost, which must be a
// loopback host:port. Its connection pool is set up like azcore's default
// one (at most 10 idle connections per host), without a proxy.
func NewGuard(imdsHost string) (*Guard, error) {
	if !isLoopbackHost(imdsHost) {
		return nil, fmt.Errorf("bench: NewGuard: %q is not a loopback host:port", imdsHost)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 10,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Guard{imdsHost: imdsHost, client: &http.Client{Transport: tr}}, nil
}

// Do sends req, as described on Guard.
func (g *Guard) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Hostname() == imdsAddr {
		r := req.Clone(req.Context())
		r.URL.Host = g.imdsHost
		r.Host = ""
		req = r
	}
	if !isLoopbackHost(req.URL.Host) {
		g.violations.Add(1)
		g.mu.Lock()
		g.refused = append(g.refused, req.URL.Host)
		g.mu.Unlock()
		return nil, fmt.Errorf("bench: refused to send a request to non-loopback host %q", req.URL.Host)
	}
	return g.client.Do(req)
}

// Err reports the requests refused so far, or nil when there were none.
func (g *Guard) Err() error {
	if g.violations.Load() == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Errorf("bench: azidentity tried to reach %d non-loopback host(s): %s; the comparison is void",
		g.violations.Load(), strings.Join(g.refused, ", "))
}

// Close drops the Guard's idle connections.
func (g *Guard) Close() { g.client.CloseIdleConnections() }

// isLoopbackHost reports whether hostport (host or host:port) names a
// loopback address: an IP in 127.0.0.0/8 or ::1, or localhost.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
