package mitoken

import (
	"context"
	"net/url"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// App Service, Azure Functions and Container Apps (protocol 2019-08-01).
const (
	appServiceSource     = "appservice"
	appServiceAPIVersion = "2019-08-01"
	appServiceHeader     = "X-IDENTITY-HEADER"
)

// AppServiceCredential gets tokens from the managed-identity endpoint of
// App Service, Azure Functions and Container Apps. It is safe for concurrent
// use.
type AppServiceCredential struct {
	base
	endpoint *url.URL
	id       identity
	secret   string
	send     *sender
}

// NewAppService returns an App Service credential. The endpoint is
// WithEndpoint, else IDENTITY_ENDPOINT; the secret is WithIdentityHeader,
// else IDENTITY_HEADER. When either is missing it returns an error naming
// the variable, for which errors.Is(err, ErrUnavailable) holds. The identity
// is the one chosen by option, else AZURE_CLIENT_ID, else the
// system-assigned identity. No request is made until GetToken.
func NewAppService(opts ...Option) (*AppServiceCredential, error) { return newAppService(opts) }

func newAppService(opts []Option) (*AppServiceCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	u, _, err := localEndpoint(cfg, appServiceSource, envIdentityEP)
	if err != nil {
		return nil, err
	}
	secret, err := secretFrom(cfg, appServiceSource, envIdentityHeader)
	if err != nil {
		return nil, err
	}
	c := &AppServiceCredential{endpoint: u, id: cfg.id, secret: secret}
	c.send = newSender(appServiceSource, retry.AppService, cfg)
	c.base = newBase(appServiceSource, u.String(), cfg, c.fetch)
	return c, nil
}

// Source returns "appservice".
func (c *AppServiceCredential) Source() string { return appServiceSource }

// fetch sends GET {endpoint}?api-version=2019-08-01&resource=R with the
// secret in X-IDENTITY-HEADER. A user-assigned identity goes in client_id,
// principal_id (App Service's name for the object ID) or mi_res_id.
func (c *AppServiceCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	q := url.Values{"api-version": {appServiceAPIVersion}, "resource": {resource}}
	c.id.addTo(q, "client_id", "principal_id", "mi_res_id")
	req, err := newGet(ctx, c.endpoint, q, appServiceHeader, c.secret)
	if err != nil {
		return wire.Token{}, err
	}
	return c.send.fetchToken(ctx, req, c.secret)
}
