package mitoken

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// IMDS, the Azure Instance Metadata Service: VMs, scale sets and AKS nodes.
const (
	imdsSource      = "imds"
	imdsDefaultHost = "http://169.254.169.254"
	imdsTokenPath   = "/metadata/identity/oauth2/token"
	imdsAPIVersion  = "2018-02-01"
)

// IMDSCredential gets tokens from the Azure Instance Metadata Service, the
// managed-identity endpoint of Azure VMs, scale sets and AKS nodes. It is
// safe for concurrent use.
type IMDSCredential struct {
	base
	endpoint *url.URL
	id       identity
	send     *sender
	probe    bool
	answered atomic.Bool // some answer came back, so stop probing
}

// NewIMDS returns an IMDS credential. The endpoint is WithEndpoint, else
// AZURE_POD_IDENTITY_AUTHORITY_HOST, else http://169.254.169.254. The
// identity is the one chosen by option, else AZURE_CLIENT_ID, else the
// system-assigned identity. No request is made until GetToken.
func NewIMDS(opts ...Option) (*IMDSCredential, error) { return newIMDS(opts) }

func newIMDS(opts []Option) (*IMDSCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	origin, raw := "WithEndpoint", cfg.endpoint
	if raw == "" {
		origin, raw = envIMDSHost, os.Getenv(envIMDSHost)
	}
	if strings.TrimSpace(raw) == "" {
		origin, raw = "the default IMDS address", imdsDefaultHost
	}
	u, err := parseEndpoint(origin, raw)
	if err != nil {
		return nil, err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = imdsTokenPath
	}
	c := &IMDSCredential{endpoint: u, id: cfg.id, probe: cfg.probe}
	c.send = newSender(imdsSource, retry.IMDS, cfg)
	c.base = newBase(imdsSource, u.String(), cfg, c.fetch)
	return c, nil
}

// GetToken returns a token for resource; see Credential.
func (c *IMDSCredential) GetToken(ctx context.Context, resource string) (Token, error) {
	return c.getToken(ctx, resource)
}

// Invalidate drops the cached token for resource if it is still tok, so the
// next GetToken fetches a new one; a newer token is kept. Call it when the
// resource rejected tok (HTTP 401). It reports whether a token was dropped.
func (c *IMDSCredential) Invalidate(resource string, tok Token) bool {
	return c.invalidate(resource, tok.AccessToken)
}

// Source returns "imds".
func (c *IMDSCredential) Source() string { return imdsSource }

func (c *IMDSCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	q := url.Values{"api-version": {imdsAPIVersion}, "resource": {resource}}
	c.id.addTo(q, "client_id", "object_id", "msi_res_id")
	req, err := newGet(ctx, c.endpoint, q, "Metadata", "true")
	if err != nil {
		return wire.Token{}, err
	}

	probing := c.probe && !c.answered.Load()
	resp, attempts, err := c.send.do(ctx, req, probing)
	if err != nil {
		return wire.Token{}, err
	}
	c.answered.Store(true)
	tok, eb, err := c.send.readToken(resp, attempts)
	var re *ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(eb.Description), "identity not found") {
		if c.id.kind == systemAssigned {
			re.Message = "this host has no system-assigned managed identity"
			re.err = ErrUnavailable
		} else {
			re.Message = "the managed identity with " + c.id.describe() + " is not assigned to this VM"
		}
	}
	return tok, err
}
