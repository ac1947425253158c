package mitoken

import (
	"context"
	"net/url"

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
	u, _, err := localEndpoint(cfg, cloudShellSource, envMSIEndpoint)
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
	return c.send.fetchToken(ctx, req, "")
}
