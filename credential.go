package mitoken

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Credential gets access tokens for a managed identity.
type Credential interface {
	// GetToken returns a token for resource: an App ID URI such as
	// "https://vault.azure.net", or a scope ending in "/.default", which is
	// trimmed. A cached token is returned while it is fresh; otherwise the
	// call waits for the endpoint until ctx ends.
	GetToken(ctx context.Context, resource string) (Token, error)
}

// Token is an access token and what is known of its lifetime. Printing a
// Token with fmt, or logging it with log/slog, never shows AccessToken.
type Token struct {
	AccessToken string
	// TokenType is always "Bearer".
	TokenType string
	// ExpiresOn is when the token stops being valid.
	ExpiresOn time.Time
	// RefreshOn is when the cache starts renewing the token in the background.
	RefreshOn time.Time
	// Resource is the resource the token is for, as the endpoint named it
	// (or as requested, when the endpoint did not say).
	Resource string
	// ClientID is the client ID of the identity the token was issued to,
	// when the endpoint says.
	ClientID string
}

const redacted = "<redacted>"

// String describes the token without its secret.
func (t Token) String() string {
	access := ""
	if t.AccessToken != "" {
		access = redacted
	}
	return fmt.Sprintf("mitoken.Token{AccessToken: %s, TokenType: %s, Resource: %s, ClientID: %s, ExpiresOn: %s, RefreshOn: %s}",
		access, t.TokenType, t.Resource, t.ClientID,
		t.ExpiresOn.UTC().Format(time.RFC3339), t.RefreshOn.UTC().Format(time.RFC3339))
}

// GoString is String, so %#v does not show the secret either.
func (t Token) GoString() string { return t.String() }

// Format writes String for every verb, so no fmt verb shows the secret.
func (t Token) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }

// LogValue lets log/slog record a Token without its secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", t.TokenType),
		slog.String("resource", t.Resource),
		slog.String("client_id", t.ClientID),
		slog.Time("expires_on", t.ExpiresOn),
		slog.Time("refresh_on", t.RefreshOn),
	)
}

// Option configures a credential. Options are checked by the constructor,
// which returns an *ArgumentError for a bad one.
type Option func(*config)

// identityKind says which user-assigned identity is asked for, if any.
type identityKind int

const (
	systemAssigned identityKind = iota
	byClientID
	byObjectID
	byResourceID
)

type identity struct {
	kind  identityKind
	value string
}

// describe names the identity for error messages ("client_id 1234...").
func (id identity) describe() string {
	switch id.kind {
	case byClientID:
		return "client ID " + id.value
	case byObjectID:
		return "object ID " + id.value
	case byResourceID:
		return "resource ID " + id.value
	}
	return "system-assigned identity"
}

// addTo sets the query parameter that names a user-assigned identity, using
// the source's own parameter names; it adds nothing for the system identity.
func (id identity) addTo(q url.Values, clientParam, objectParam, resourceParam string) {
	switch id.kind {
	case byClientID:
		q.Set(clientParam, id.value)
	case byObjectID:
		q.Set(objectParam, id.value)
	case byResourceID:
		q.Set(resourceParam, id.value)
	}
}

type config struct {
	id         identity
	idOptions  []string // names of the identity options given, to refuse two
	idFromEnv  bool     // id is AZURE_CLIENT_ID's, not an option's
	forceSys   bool
	endpoint   string
	httpClient *http.Client
	logger     *slog.Logger
	cache      *Cache
	arcDir     string
	idHeader   string
	thumbprint string // Service Fabric: WithServerThumbprint
	tenant     string // workload identity: WithTenantID
	tokenFile  string // workload identity: WithFederatedTokenFile
	errs       []error

	// Test hooks: shorten retry waits, bound the detached fetch, bound one
	// attempt (instead of attemptTimeout).
	retryWait      func(time.Duration) time.Duration
	fetchTimeout   time.Duration
	attemptTimeout time.Duration
	probe          bool // fail fast when nothing listens (New's auto-selected IMDS)
}

func userAssigned(name string, kind identityKind, value string) Option {
	return func(c *config) {
		c.idOptions = append(c.idOptions, name)
		if strings.TrimSpace(value) == "" {
			c.errs = append(c.errs, &ArgumentError{Name: name, Problem: "the ID is empty; omit the option to use the system-assigned identity"})
			return
		}
		c.id = identity{kind: kind, value: value}
	}
}

// WithClientID selects a user-assigned identity by its client (application) ID.
func WithClientID(id string) Option { return userAssigned("WithClientID", byClientID, id) }

// WithObjectID selects a user-assigned identity by its object (principal) ID.
func WithObjectID(id string) Option { return userAssigned("WithObjectID", byObjectID, id) }

// WithResourceID selects a user-assigned identity by its full ARM resource ID
// (/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME).
func WithResourceID(id string) Option { return userAssigned("WithResourceID", byResourceID, id) }

// WithSystemAssigned asks for the system-assigned identity even when
// AZURE_CLIENT_ID is set in the environment.
func WithSystemAssigned() Option { return func(c *config) { c.forceSys = true } }

// WithEndpoint sets the URL of the source's token endpoint, overriding the
// default and the environment. For IMDS a URL with no path gets the standard
// token path. For workload identity it sets the authority host instead
// (overriding AZURE_AUTHORITY_HOST), to which the tenant and
// /oauth2/v2.0/token are added.
func WithEndpoint(u string) Option { return func(c *config) { c.endpoint = u } }

// WithHTTPClient sets the HTTP client for token requests. Its redirect policy
// is replaced: token requests never follow redirects. Its Timeout bounds each
// attempt. Retries are made by mitoken around it.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) {
		if hc == nil {
			c.errs = append(c.errs, &ArgumentError{Name: "WithHTTPClient", Problem: "the client is nil"})
			return
		}
		c.httpClient = hc
	}
}

// WithLogger sets where mitoken logs requests, retries and refreshes. Records
// name the source, the endpoint's host, statuses and timings; never a token,
// a secret header or a query string. The default logs nothing.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithCache gives the credential its own cache instead of the process-wide
// one that credentials share by default.
func WithCache(cache *Cache) Option {
	return func(c *config) {
		if cache == nil {
			c.errs = append(c.errs, &ArgumentError{Name: "WithCache", Problem: "the cache is nil; use NewCache()"})
			return
		}
		c.cache = cache
	}
}

// WithArcTokenDir sets the directory from which the Arc source reads
// challenge key files, instead of the agent's own
// (/var/opt/azcmagent/tokens on Linux). It exists for tests and emulators
// that run without root; it is deliberately not settable from the
// environment. Other sources ignore it.
func WithArcTokenDir(dir string) Option {
	return textOption("WithArcTokenDir", "the directory", dir, func(c *config) { c.arcDir = dir })
}

// WithIdentityHeader sets the secret that the endpoint requires: for App
// Service the X-IDENTITY-HEADER value and for Service Fabric the Secret
// value, overriding IDENTITY_HEADER; for Azure ML the secret value,
// overriding MSI_SECRET. Other sources ignore it.
func WithIdentityHeader(secret string) Option {
	return func(c *config) {
		if secret == "" {
			c.errs = append(c.errs, &ArgumentError{Name: "WithIdentityHeader", Problem: "the secret is empty"})
			return
		}
		c.idHeader = secret
	}
}

// WithServerThumbprint sets the SHA-1 thumbprint (40 hex digits; colons and
// spaces are ignored) of the Service Fabric token endpoint's certificate,
// overriding IDENTITY_SERVER_THUMBPRINT. Other sources ignore it.
func WithServerThumbprint(thumbprint string) Option {
	return func(c *config) { c.thumbprint = thumbprint }
}

// WithTenantID sets the Microsoft Entra tenant of a workload identity,
// overriding AZURE_TENANT_ID. Other sources ignore it.
func WithTenantID(tenant string) Option {
	return textOption("WithTenantID", "the tenant ID", tenant, func(c *config) { c.tenant = tenant })
}

// WithFederatedTokenFile sets the file holding a workload identity's
// federated (service account) token, overriding AZURE_FEDERATED_TOKEN_FILE.
// Other sources ignore it.
func WithFederatedTokenFile(path string) Option {
	return textOption("WithFederatedTokenFile", "the path", path, func(c *config) { c.tokenFile = path })
}

// textOption is an option that takes a text which must not be blank: it
// records an *ArgumentError naming option when v is, else calls set.
func textOption(option, what, v string, set func(*config)) Option {
	return func(c *config) {
		if strings.TrimSpace(v) == "" {
			c.errs = append(c.errs, &ArgumentError{Name: option, Problem: what + " is empty"})
			return
		}
		set(c)
	}
}

func newConfig(opts []Option) (*config, error) {
	c := &config{}
	for _, o := range opts {
		if o == nil {
			return nil, &ArgumentError{Name: "option", Problem: "a nil Option was passed"}
		}
		o(c)
	}
	if len(c.errs) > 0 {
		return nil, c.errs[0]
	}
	if len(c.idOptions) > 1 {
		return nil, &ArgumentError{Name: strings.Join(c.idOptions, " and "),
			Problem: "a credential uses one identity; pass at most one of WithClientID, WithObjectID and WithResourceID"}
	}
	if c.forceSys && len(c.idOptions) > 0 {
		return nil, &ArgumentError{Name: "WithSystemAssigned", Problem: "it cannot be combined with " + c.idOptions[0]}
	}
	if len(c.idOptions) == 0 && !c.forceSys {
		if v := strings.TrimSpace(os.Getenv(envClientID)); v != "" {
			c.id = identity{kind: byClientID, value: v}
			c.idFromEnv = true
		}
	}
	if c.cache == nil {
		c.cache = defaultCache
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.fetchTimeout == 0 {
		c.fetchTimeout = defaultFetchTimeout
	}
	return c, nil
}

// Environment variables, with the names the Azure SDKs use.
const (
	envClientID       = "AZURE_CLIENT_ID"
	envIMDSHost       = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
	envIdentityEP     = "IDENTITY_ENDPOINT"
	envIdentityHeader = "IDENTITY_HEADER"
	envIMDSEndpoint   = "IMDS_ENDPOINT"
	envMSIEndpoint    = "MSI_ENDPOINT"
	envMSISecret      = "MSI_SECRET"
	envThumbprint     = "IDENTITY_SERVER_THUMBPRINT"
	envDefaultMLID    = "DEFAULT_IDENTITY_CLIENT_ID"
	envTokenFile      = "AZURE_FEDERATED_TOKEN_FILE"
	envTenantID       = "AZURE_TENANT_ID"
	envAuthorityHost  = "AZURE_AUTHORITY_HOST"
)

// systemOnly makes cfg ask for the system-assigned identity on a source that
// has no other: a user-assigned option is an *ArgumentError, and
// AZURE_CLIENT_ID from the environment is ignored (logged at debug level),
// so a process that sets it for other credentials still works here.
// The error says platform supports only the system-assigned identity, with
// whose ("the machine's ", say) before it.
func systemOnly(cfg *config, source, platform, whose string) error {
	if cfg.id.kind == systemAssigned {
		return nil
	}
	if !cfg.idFromEnv {
		return &ArgumentError{Name: cfg.idOptions[0],
			Problem: platform + " supports only " + whose + "system-assigned identity; remove the option"}
	}
	cfg.logger.Debug("mitoken: "+platform+" has no user-assigned identities; ignoring "+envClientID, slog.String("source", source))
	cfg.id = identity{}
	return nil
}

// localEndpoint is the endpoint of a source that needs one configured:
// WithEndpoint, else the environment variable env. When neither is set the
// error names env and satisfies errors.Is(err, ErrUnavailable); it also
// returns the name of where the URL came from, for later checks' errors.
func localEndpoint(cfg *config, source, env string) (*url.URL, string, error) {
	origin, raw := endpointFrom(cfg, env)
	if strings.TrimSpace(raw) == "" {
		return nil, origin, unavailable(source, env+" is not set (and no WithEndpoint was given)", nil)
	}
	u, err := parseEndpoint(origin, raw)
	return u, origin, err
}

// secretFrom is the endpoint's secret: WithIdentityHeader, else the
// environment variable env. When neither is set the error names env and
// satisfies errors.Is(err, ErrUnavailable).
func secretFrom(cfg *config, source, env string) (string, error) {
	secret := cfg.idHeader
	if secret == "" {
		secret = os.Getenv(env)
	}
	if secret == "" {
		return "", unavailable(source, env+" is not set (and no WithIdentityHeader was given)", nil)
	}
	return secret, nil
}

// endpointFrom returns the endpoint URL text and where it came from:
// WithEndpoint when given, else the environment variable env (which may be
// empty).
func endpointFrom(cfg *config, env string) (origin, raw string) {
	if cfg.endpoint != "" {
		return "WithEndpoint", cfg.endpoint
	}
	return env, os.Getenv(env)
}

// parseEndpoint checks an endpoint URL from an option or the environment.
func parseEndpoint(origin, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, &ArgumentError{Name: origin, Problem: fmt.Sprintf("%q is not an absolute http or https URL", raw)}
	}
	if u.User != nil {
		return nil, &ArgumentError{Name: origin, Problem: "the URL must not carry user information"}
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// New returns a credential for the managed-identity source of this host,
// chosen from the environment, in this order:
//
//  1. AKS workload identity: AZURE_FEDERATED_TOKEN_FILE is set
//     (NewWorkloadIdentity). AZURE_CLIENT_ID and AZURE_TENANT_ID must be set
//     too: when one is missing New returns an error naming it rather than
//     falling through to IMDS, which would give the node's identity.
//  2. IDENTITY_ENDPOINT and IDENTITY_HEADER are both set: Service Fabric when
//     IDENTITY_SERVER_THUMBPRINT is set as well (NewServiceFabric), else App
//     Service, Functions, Container Apps (NewAppService).
//  3. MSI_ENDPOINT is set: Azure ML when MSI_SECRET is set as well
//     (NewAzureML), else Cloud Shell (NewCloudShell).
//  4. Azure Arc: IDENTITY_ENDPOINT and IMDS_ENDPOINT are both set, or the Arc
//     agent is installed (/opt/azcmagent/bin/himds on Linux,
//     %ProgramData%\AzureConnectedMachineAgent\himds.exe on Windows) (NewArc).
//  5. Otherwise IMDS (NewIMDS). Its first request then gives up within about
//     a second when nothing answers, returning an error for which
//     errors.Is(err, ErrUnavailable) holds.
//
// Options apply to whichever source is chosen. AZURE_CLIENT_ID is the
// default user-assigned client ID for App Service, Azure ML and IMDS, the
// application of a workload identity, and is ignored on Service Fabric,
// Cloud Shell and Arc. SourceOf tells which source was chosen. To use one
// source whatever the environment says, call its constructor instead.
func New(opts ...Option) (Credential, error) {
	switch detectSource() {
	case workloadSource:
		return newWorkloadIdentity(opts)
	case serviceFabricSource:
		return newServiceFabric(opts)
	case appServiceSource:
		return newAppService(opts)
	case azureMLSource:
		return newAzureML(opts)
	case cloudShellSource:
		return newCloudShell(opts)
	case arcSource:
		return newArc(opts)
	}
	return newIMDS(append([]Option{func(c *config) { c.probe = true }}, opts...))
}

// detectSource names the source New uses, from the environment alone.
func detectSource() string {
	set := func(name string) bool { return strings.TrimSpace(os.Getenv(name)) != "" }
	switch {
	case set(envTokenFile):
		return workloadSource
	case set(envIdentityEP) && set(envIdentityHeader) && set(envThumbprint):
		return serviceFabricSource
	case set(envIdentityEP) && set(envIdentityHeader):
		return appServiceSource
	case set(envMSIEndpoint) && set(envMSISecret):
		return azureMLSource
	case set(envMSIEndpoint):
		return cloudShellSource
	case set(envIdentityEP) && set(envIMDSEndpoint), arcInstalled():
		return arcSource
	}
	return imdsSource
}

// SourceOf names the source behind a credential returned by New or by a
// source's constructor: "workloadidentity", "servicefabric", "appservice",
// "azureml", "cloudshell", "arc" or "imds". For any other Credential it
// returns "".
func SourceOf(c Credential) string {
	if s, ok := c.(interface{ Source() string }); ok {
		return s.Source()
	}
	return ""
}

// base is what every source shares: argument checks, the cache, and the
// GetToken and Invalidate methods that each credential type gets from it.
type base struct {
	source       string
	scope        *scope
	fetch        fetcher
	fetchTimeout time.Duration
	logger       *slog.Logger
	life         *lifecycle
}

func newBase(source, endpoint string, cfg *config, f fetcher) base {
	return base{
		source:       source,
		scope:        cfg.cache.scope(scopeKey{source: source, endpoint: endpoint, id: cfg.id}),
		fetch:        f,
		fetchTimeout: cfg.fetchTimeout,
		logger:       cfg.logger,
		life:         newLifecycle(),
	}
}

// Close stops the credential. Token requests and background refreshes that
// it started are cancelled, and Close returns once they have ended, so no
// goroutine of the credential outlives it. After Close, GetToken returns
// ErrClosed. Tokens it cached stay in the cache for other credentials that
// share it. Close may be called more than once, and concurrently with
// GetToken; it always returns nil. A credential that is never closed holds
// no goroutine while idle: background refreshes end by themselves, within
// two minutes at most.
func (b *base) Close() error {
	b.life.close()
	return nil
}

// String describes the credential: its source and endpoint, never a secret.
func (b base) String() string {
	return "mitoken credential{source: " + b.source + ", endpoint: " + b.scope.key.endpoint + "}"
}

// Format writes String for every verb, so no fmt verb shows a secret field.
func (b base) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, b.String()) }

// GetToken returns a token for resource; see Credential. Every source's
// credential has it through base.
func (b *base) GetToken(ctx context.Context, resource string) (Token, error) {
	return b.getToken(ctx, resource)
}

// Invalidate drops the cached token for resource if it is still tok, so the
// next GetToken fetches a new one; a newer token is kept. Call it when the
// resource rejected tok (HTTP 401). It reports whether a token was dropped.
func (b *base) Invalidate(resource string, tok Token) bool {
	return b.invalidate(resource, tok.AccessToken)
}

// getToken is the whole GetToken of every source. On a cache hit it does no
// more than a map lookup, an atomic load and a clock read.
func (b *base) getToken(ctx context.Context, resource string) (Token, error) {
	if b.life.isClosed() {
		return Token{}, ErrClosed
	}
	resource = strings.TrimSuffix(resource, "/.default")
	if tok, ok := b.hit(resource); ok {
		return tok, nil
	}
	if err := checkResource(resource); err != nil {
		return Token{}, err
	}
	if ctx == nil {
		return Token{}, &ArgumentError{Name: "ctx", Problem: "the context is nil; pass context.Background() or a request's context"}
	}
	return b.miss(ctx, resource)
}

func checkResource(r string) error {
	if r == "" {
		return &ArgumentError{Name: "resource", Problem: `it is empty; pass an App ID URI such as "https://vault.azure.net"`}
	}
	for i := 0; i < len(r); i++ {
		if r[i] <= ' ' || r[i] == 0x7f {
			return &ArgumentError{Name: "resource", Problem: fmt.Sprintf("%q holds white space or a control character; pass one resource or scope", r)}
		}
	}
	return nil
}
