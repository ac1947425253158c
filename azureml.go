package mitoken

import (
	"context"
	"net/url"
	"os"
	"strings"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// Azure Machine Learning compute: the 2017-09-01 App Service protocol
// (MSI_ENDPOINT with the secret MSI_SECRET), identities by client ID only.
const (
	azureMLSource     = "azureml"
	azureMLAPIVersion = "2017-09-01"
	azureMLHeader     = "secret"
)

// AzureMLCredential gets tokens from the managed-identity endpoint of Azure
// Machine Learning compute. It is safe for concurrent use.
type AzureMLCredential struct {
	base
	endpoint *url.URL
	clientID string // "" asks for the compute's default identity
	secret   string
	send     *sender
}

// NewAzureML returns an Azure ML credential. The endpoint is WithEndpoint,
// else MSI_ENDPOINT; the secret is WithIdentityHeader, else MSI_SECRET.
// When either is missing the error names the variable and satisfies
// errors.Is(err, ErrUnavailable).
//
// Azure ML names identities by client ID only: WithObjectID and
// WithResourceID are refused with an *ArgumentError. The client ID is
// WithClientID, else DEFAULT_IDENTITY_CLIENT_ID (set by the platform to the
// compute's identity), else AZURE_CLIENT_ID; WithSystemAssigned skips
// AZURE_CLIENT_ID. No request is made until GetToken.
func NewAzureML(opts ...Option) (*AzureMLCredential, error) { return newAzureML(opts) }

func newAzureML(opts []Option) (*AzureMLCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.id.kind == byObjectID || cfg.id.kind == byResourceID {
		return nil, &ArgumentError{Name: cfg.idOptions[0],
			Problem: "Azure ML selects a user-assigned identity by client ID only; use WithClientID"}
	}
	if cfg.idFromEnv || cfg.id.kind == systemAssigned {
		if def := strings.TrimSpace(os.Getenv(envDefaultMLID)); def != "" {
			cfg.id = identity{kind: byClientID, value: def}
		}
	}
	u, _, err := localEndpoint(cfg, azureMLSource, envMSIEndpoint)
	if err != nil {
		return nil, err
	}
	secret, err := secretFrom(cfg, azureMLSource, envMSISecret)
	if err != nil {
		return nil, err
	}
	c := &AzureMLCredential{endpoint: u, clientID: cfg.id.value, secret: secret}
	c.send = newSender(azureMLSource, retry.AppService, cfg)
	c.base = newBase(azureMLSource, u.String(), cfg, c.fetch)
	return c, nil
}

// Source returns "azureml".
func (c *AzureMLCredential) Source() string { return azureMLSource }

// fetch sends GET {endpoint}?api-version=2017-09-01&resource=R&clientid=ID
// with the secret in the secret header. Like the Azure SDKs it always sends
// clientid, empty for the compute's default identity. The answer's
// expires_on may be a date such as "09/14/2017 00:00:00 +00:00".
func (c *AzureMLCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	q := url.Values{"api-version": {azureMLAPIVersion}, "resource": {resource}, "clientid": {c.clientID}}
	req, err := newGet(ctx, c.endpoint, q, azureMLHeader, c.secret)
	if err != nil {
		return wire.Token{}, err
	}
	return c.send.fetchToken(ctx, req, c.secret)
}
