package mitoken

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// Service Fabric: the cluster's token service answers over https with a
// self-signed certificate, which is trusted only because its SHA-1
// thumbprint equals IDENTITY_SERVER_THUMBPRINT.
const (
	serviceFabricSource     = "servicefabric"
	serviceFabricAPIVersion = "2019-07-01-preview"
	serviceFabricHeader     = "Secret"
)

// ServiceFabricCredential gets tokens for the managed identity of a Service
// Fabric application. It is safe for concurrent use.
type ServiceFabricCredential struct {
	base
	endpoint *url.URL
	secret   string
	send     *sender
}

// NewServiceFabric returns a Service Fabric credential. The endpoint is
// WithEndpoint, else IDENTITY_ENDPOINT, and must be https; the secret is
// WithIdentityHeader, else IDENTITY_HEADER; the server certificate's SHA-1
// thumbprint is WithServerThumbprint, else IDENTITY_SERVER_THUMBPRINT. When
// one of them is missing the error names it and satisfies errors.Is(err,
// ErrUnavailable); a thumbprint that is not 40 hex digits is an
// *ArgumentError.
//
// The connection trusts exactly one certificate: the one with that
// thumbprint. No certificate authority, system root or host name makes any
// other acceptable, and a mismatch fails the request at once, without
// retries and before the secret is sent. For that reason the Transport of a
// WithHTTPClient client is not used here (its Timeout is): mitoken's own
// pinning transport always makes the connection.
//
// Service Fabric gives an application the identity its manifest assigns:
// WithClientID, WithObjectID and WithResourceID are refused with an
// *ArgumentError, and AZURE_CLIENT_ID in the environment is ignored. No
// request is made until GetToken.
func NewServiceFabric(opts ...Option) (*ServiceFabricCredential, error) {
	return newServiceFabric(opts)
}

func newServiceFabric(opts []Option) (*ServiceFabricCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := systemOnly(cfg, serviceFabricSource, "Service Fabric", "the application's "); err != nil {
		return nil, err
	}
	u, origin, err := localEndpoint(cfg, serviceFabricSource, envIdentityEP)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, &ArgumentError{Name: origin, Problem: "the Service Fabric token endpoint must be https, so that its pinned certificate protects the secret"}
	}
	secret, err := secretFrom(cfg, serviceFabricSource, envIdentityHeader)
	if err != nil {
		return nil, err
	}
	thumbOrigin, thumbRaw := "WithServerThumbprint", cfg.thumbprint
	if thumbRaw == "" {
		thumbOrigin, thumbRaw = envThumbprint, os.Getenv(envThumbprint)
	}
	if strings.TrimSpace(thumbRaw) == "" {
		return nil, unavailable(serviceFabricSource, envThumbprint+" is not set (and no WithServerThumbprint was given)", nil)
	}
	pin, err := parseThumbprint(thumbOrigin, thumbRaw)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: pinnedTransport(pin), Timeout: attemptTimeout}
	if cfg.attemptTimeout > 0 {
		hc.Timeout = cfg.attemptTimeout
	}
	if cfg.httpClient != nil {
		hc.Timeout = cfg.httpClient.Timeout
		cfg.logger.Debug("mitoken: Service Fabric pins the server certificate; the Transport of WithHTTPClient is not used",
			slog.String("source", serviceFabricSource))
	}
	cfg.httpClient = hc
	c := &ServiceFabricCredential{endpoint: u, secret: secret}
	c.send = newSender(serviceFabricSource, retry.AppService, cfg)
	// The pin is part of the cache key: a credential pinned to another
	// certificate must not be handed tokens this one's server issued.
	c.base = newBase(serviceFabricSource, u.String()+" sha1:"+hex.EncodeToString(pin[:]), cfg, c.fetch)
	return c, nil
}

// Source returns "servicefabric".
func (c *ServiceFabricCredential) Source() string { return serviceFabricSource }

// fetch sends GET {endpoint}?api-version=2019-07-01-preview&resource=R with
// the secret in the Secret header, over the pinned connection.
func (c *ServiceFabricCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	q := url.Values{"api-version": {serviceFabricAPIVersion}, "resource": {resource}}
	req, err := newGet(ctx, c.endpoint, q, serviceFabricHeader, c.secret)
	if err != nil {
		return wire.Token{}, err
	}
	return c.send.fetchToken(ctx, req, c.secret)
}

// parseThumbprint reads a SHA-1 thumbprint written as 40 hex digits, in
// either case, possibly grouped with colons or spaces.
func parseThumbprint(origin, raw string) ([sha1.Size]byte, error) {
	var pin [sha1.Size]byte
	clean := strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' {
			return -1
		}
		return r
	}, strings.TrimSpace(raw))
	if len(clean) != 2*sha1.Size {
		return pin, &ArgumentError{Name: origin, Problem: fmt.Sprintf(
			"a SHA-1 certificate thumbprint is 40 hex digits; got %d characters", len(clean))}
	}
	if _, err := hex.Decode(pin[:], []byte(clean)); err != nil {
		return pin, &ArgumentError{Name: origin, Problem: "a SHA-1 certificate thumbprint is 40 hex digits; it holds a character that is not one"}
	}
	return pin, nil
}

// pinnedTransports are the connection pools of Service Fabric credentials,
// one per pinned thumbprint, shared by every credential with that pin.
var pinnedTransports sync.Map // [sha1.Size]byte -> *http.Transport

// pinnedTransport returns a transport whose TLS connections succeed only
// with a server whose leaf certificate has the SHA-1 thumbprint pin.
// Certificate chains, expiry and host names are not checked: the pin alone
// decides, as Service Fabric's self-signed certificate requires. Session
// resumption is off, so every connection is checked.
func pinnedTransport(pin [sha1.Size]byte) *http.Transport {
	if t, ok := pinnedTransports.Load(pin); ok {
		return t.(*http.Transport)
	}
	t := newTransport()
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &pinError{problem: "the server presented no certificate"}
			}
			got := sha1.Sum(cs.PeerCertificates[0].Raw)
			if got != pin {
				return &pinError{problem: fmt.Sprintf("the server's certificate has SHA-1 thumbprint %X, not the pinned %X",
					got[:], pin[:])}
			}
			return nil
		},
	}
	actual, _ := pinnedTransports.LoadOrStore(pin, t)
	return actual.(*http.Transport)
}

// pinError reports a Service Fabric server whose certificate is not the
// pinned one. Retrying cannot cure it.
type pinError struct{ problem string }

func (e *pinError) Error() string {
	return e.problem + "; refusing the connection (check IDENTITY_SERVER_THUMBPRINT)"
}

func (*pinError) noRetry() {}

var _ noRetry = (*pinError)(nil)
