package mitoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/mitoken/mitoken/internal/retry"
	"github.com/mitoken/mitoken/internal/wire"
)

// AKS workload identity: the pod's service account token (a file the
// kubelet rotates) is exchanged at Microsoft Entra ID for an access token,
// in a client-credentials request whose client assertion is that token.
const (
	workloadSource         = "workloadidentity"
	defaultAuthorityHost   = "https://login.microsoftonline.com/"
	workloadAssertionType  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxFederatedTokenBytes = 64 << 10
)

// WorkloadIdentityCredential gets tokens for an AKS workload identity (or
// any Kubernetes workload federated with Microsoft Entra ID). It is safe for
// concurrent use.
type WorkloadIdentityCredential struct {
	base
	endpoint  *url.URL // {authority}{tenant}/oauth2/v2.0/token
	clientID  string
	tokenFile string
	send      *sender
}

// NewWorkloadIdentity returns a workload identity credential. It reads:
//
//   - the federated token file: WithFederatedTokenFile, else
//     AZURE_FEDERATED_TOKEN_FILE. When neither is set the error satisfies
//     errors.Is(err, ErrUnavailable). The file is read again for every token
//     request, since the kubelet rotates it.
//   - the application (client) ID: WithClientID, else AZURE_CLIENT_ID.
//   - the tenant: WithTenantID, else AZURE_TENANT_ID.
//   - the authority host: WithEndpoint, else AZURE_AUTHORITY_HOST, else
//     https://login.microsoftonline.com/. It must be https (http only to a
//     loopback address, for emulators). Tokens come from
//     {authority host}{tenant}/oauth2/v2.0/token.
//
// A missing client or tenant ID is an *ArgumentError naming the variable to
// set. WithObjectID, WithResourceID and WithSystemAssigned are refused: a
// workload identity is named by its client ID. No request is made until
// GetToken.
func NewWorkloadIdentity(opts ...Option) (*WorkloadIdentityCredential, error) {
	return newWorkloadIdentity(opts)
}

func newWorkloadIdentity(opts []Option) (*WorkloadIdentityCredential, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	file := cfg.tokenFile
	if file == "" {
		file = strings.TrimSpace(os.Getenv(envTokenFile))
	}
	if file == "" {
		return nil, unavailable(workloadSource, envTokenFile+" is not set (and no WithFederatedTokenFile was given)", nil)
	}
	switch {
	case cfg.forceSys:
		return nil, &ArgumentError{Name: "WithSystemAssigned", Problem: "a workload identity has no system-assigned identity; name the application with WithClientID or AZURE_CLIENT_ID"}
	case cfg.id.kind == byObjectID || cfg.id.kind == byResourceID:
		return nil, &ArgumentError{Name: cfg.idOptions[0], Problem: "a workload identity is named by its client ID; use WithClientID"}
	case cfg.id.kind == systemAssigned:
		return nil, &ArgumentError{Name: envClientID, Problem: envTokenFile +
			" is set, so this is a workload identity, but " + envClientID + " is not set; set it to the client ID of the identity federated with the service account (or pass WithClientID)"}
	}
	tenant := cfg.tenant
	if tenant == "" {
		tenant = strings.TrimSpace(os.Getenv(envTenantID))
	}
	if tenant == "" {
		return nil, &ArgumentError{Name: envTenantID, Problem: envTokenFile +
			" is set, so this is a workload identity, but " + envTenantID + " is not set; set it to the Microsoft Entra tenant ID (or pass WithTenantID)"}
	}
	if strings.IndexFunc(tenant, func(r rune) bool {
		return !(r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return nil, &ArgumentError{Name: "tenant ID", Problem: fmt.Sprintf("%s is not a tenant ID or domain (letters, digits, '-' and '.' only)", quoteClip(tenant))}
	}
	u, err := authorityTokenURL(cfg, tenant)
	if err != nil {
		return nil, err
	}
	c := &WorkloadIdentityCredential{endpoint: u, clientID: cfg.id.value, tokenFile: file}
	c.send = newSender(workloadSource, retry.Entra, cfg)
	c.base = newBase(workloadSource, u.String(), cfg, c.fetch)
	return c, nil
}

// authorityTokenURL builds {authority host}{tenant}/oauth2/v2.0/token.
func authorityTokenURL(cfg *config, tenant string) (*url.URL, error) {
	origin, raw := endpointFrom(cfg, envAuthorityHost)
	if strings.TrimSpace(raw) == "" {
		origin, raw = "the default authority host", defaultAuthorityHost
	}
	u, err := parseEndpoint(origin, raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return nil, &ArgumentError{Name: origin, Problem: "the authority host must be https (plain http is allowed only on loopback, for emulators)"}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + tenant + "/oauth2/v2.0/token"
	u.RawPath = ""
	return u, nil
}

// Source returns "workloadidentity".
func (c *WorkloadIdentityCredential) Source() string { return workloadSource }

// fetch reads the federated token file and sends the client-credentials
// request with it as the client assertion. The assertion lives only in this
// call and never reaches an error or a log line.
func (c *WorkloadIdentityCredential) fetch(ctx context.Context, resource string) (wire.Token, error) {
	assertion, err := c.readAssertion()
	if err != nil {
		return wire.Token{}, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {c.clientID},
		"scope":                 {resource + "/.default"},
		"client_assertion_type": {workloadAssertionType},
		"client_assertion":      {assertion},
	}
	req, err := newPostForm(ctx, c.endpoint, form, "Accept", "application/json")
	if err != nil {
		return wire.Token{}, err
	}
	tok, err := c.send.fetchToken(ctx, req, assertion)
	var re *ResponseError
	if errors.As(err, &re) && (re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client") {
		re.Message = "Microsoft Entra ID refused the federated token; check AZURE_CLIENT_ID, AZURE_TENANT_ID and the identity's federated credential for this service account"
	}
	return tok, err
}

// readAssertion reads the federated token file, which the kubelet replaces
// as the token nears expiry.
func (c *WorkloadIdentityCredential) readAssertion() (string, error) {
	f, err := os.Open(c.tokenFile)
	if err != nil {
		return "", c.fileError(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFederatedTokenBytes+1))
	if err != nil {
		return "", c.fileError(err)
	}
	if len(b) > maxFederatedTokenBytes {
		return "", fmt.Errorf("mitoken: %s: the federated token file %s holds more than %d KiB; it should hold one service account token",
			workloadSource, c.tokenFile, maxFederatedTokenBytes>>10)
	}
	assertion := strings.TrimSpace(string(b))
	if assertion == "" {
		return "", fmt.Errorf("mitoken: %s: the federated token file %s is empty", workloadSource, c.tokenFile)
	}
	return assertion, nil
}

func (c *WorkloadIdentityCredential) fileError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is named below
	}
	return fmt.Errorf("mitoken: %s: reading the federated token file %s (%s): %w", workloadSource, c.tokenFile, envTokenFile, err)
}
