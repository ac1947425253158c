package mitoken

import (
	"context"
	"net/url"
	"strings"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// Azure Cloud Shell: a local endpoint (MSI_ENDPOINT, no secret) asked for a
// token with a form POST.
const cloudShellSource = "cloudshell"

// CloudShellCredential gets tokens from the managed-identity endpoint of
// Azure Cloud Shell. Cloud Shell serves one identity, so there is no
// user-assigned choice. It is safe for concurrent use.
type CloudShellCredential struct {
	base
	endpoint *url.URL
	send     *sender
}

// NewCloudShell returns a Cloud Shell credential. The endpoint is
// WithEndpoint, else MSI_ENDPOINT; when neither is set the error satisfies
// errors.Is(err, ErrUnavailable). WithClientID, WithObjectID and
// WithResourceID are refused with an *ArgumentError; AZURE_CLIENT_ID in the
// environment is ignored. No request is made until GetToken.
func NewCloudShell(opts ...Option) (*CloudShellCredential, error) { return newCloudShell(opts) }

func newCloudShell(opts []Option) (*CloudShellCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := systemOnly(cfg, cloudShellSource, "Azure Cloud Shell", "the "); err != nil {
		return nil, err
	}
	origin, raw := endpointFrom(cfg, envMSIEndpoint)
	if strings.TrimSpace(raw) == "" {
		return nil, unavailable(cloudShellSource, envMSIEndpoint+" is not set (and no WithEndpoint was given)", nil)
	}
	u, err := parseEndpoint(origin, raw)
	if err != nil {
		return nil, err
	}
	c := &CloudShellCredential{endpoint: u}
	c.send = newSender(cloudShellSource, retry.AppService, cfg)
	c.base = newBase(cloudShellSource, u.String(), cfg, c.fetch)
	return c, nil
}

// Source returns "cloudshell".
func (c *CloudShellCredential) Source() string { return cloudShellSource }

// fetch sends POST {endpoint} with the form resource=R and Metadata: true.
func (c *CloudShellCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	req, err := newPostForm(ctx, c.endpoint, url.Values{"resource": {resource}}, "Metadata", "true")
	if err != nil {
		return wire.Token{}, err
	}
	resp, attempts, err := c.send.do(ctx, req, false)
	if err != nil {
		return wire.Token{}, err
	}
	tok, _, err := c.send.readToken(resp, attempts)
	return tok, err
}
