package mitokentest

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Identity is a managed identity the emulator knows. Tokens issued for it
// carry its ClientID as appid and its ObjectID as oid and sub.
type Identity struct {
	// ClientID is the identity's client (application) ID.
	ClientID string
	// ObjectID is the identity's object (principal) ID.
	ObjectID string
	// ResourceID is the full ARM resource ID of a user-assigned identity
	// (/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME).
	// It is empty for the system-assigned identity.
	ResourceID string
}

// Option configures a Server. NewServer reports a bad option as an error.
type Option func(*config)

type config struct {
	addrs     map[Source]string
	system    *Identity
	noSystem  bool
	users     []Identity
	tenant    string
	secret    string
	lifetime  time.Duration
	refreshIn time.Duration
	now       func() time.Time
	errs      []error
}

// Defaults.
const (
	// DefaultLifetime is the lifetime of issued tokens unless
	// WithTokenLifetime says otherwise: a day, as IMDS tokens have.
	DefaultLifetime = 24 * time.Hour
	// arcKeyTTL is how long an unanswered Arc challenge key stays valid.
	arcKeyTTL = time.Minute
)

// WithAddr serves source at addr, such as "127.0.0.1:40342", instead of a
// free port on 127.0.0.1. The address must be on loopback.
func WithAddr(source Source, addr string) Option {
	return func(c *config) {
		if !source.valid() {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithAddr: unknown source %q; use one of the Source constants", string(source)))
			return
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithAddr(%s): %q is not host:port: %w", source, addr, err))
			return
		}
		if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithAddr(%s): %q is not a loopback address; the emulator only listens on loopback", source, addr))
			return
		}
		c.addrs[source] = addr
	}
}

// WithSystemIdentity sets the IDs of the system-assigned identity, which
// otherwise are random. An empty ClientID or ObjectID stays random.
func WithSystemIdentity(id Identity) Option {
	return func(c *config) { c.system = &id }
}

// WithoutSystemIdentity removes the system-assigned identity, as on a VM
// that has none: a request for it gets "Identity not found" (IMDS) or
// "Unable to load the proper Managed Identity." (App Service). As on a real
// VM, an IMDS request naming no identity then gets the only user-assigned
// identity, if there is exactly one.
func WithoutSystemIdentity() Option {
	return func(c *config) { c.noSystem = true }
}

// WithUserAssigned adds user-assigned identities. Empty fields of each get
// random values; Server.UserAssigned returns them as filled in.
func WithUserAssigned(ids ...Identity) Option {
	return func(c *config) { c.users = append(c.users, ids...) }
}

// WithTenant sets the tenant ID put in tokens (tid and iss); the default is
// random.
func WithTenant(id string) Option {
	return func(c *config) {
		if strings.TrimSpace(id) == "" {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithTenant: the tenant ID is empty"))
			return
		}
		c.tenant = id
	}
}

// WithSecret sets the App Service secret (IDENTITY_HEADER) instead of a
// random one.
func WithSecret(secret string) Option {
	return func(c *config) {
		if secret == "" {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithSecret: the secret is empty"))
			return
		}
		c.secret = secret
	}
}

// WithTokenLifetime sets how long issued tokens live; the default is
// DefaultLifetime. It is rounded down to whole seconds and must be at least
// one second.
func WithTokenLifetime(d time.Duration) Option {
	return func(c *config) {
		c.lifetime = c.wholeSeconds("WithTokenLifetime", d, c.lifetime)
	}
}

// WithRefreshIn makes token responses carry refresh_in, the number of
// seconds after which a client should renew the token. It must be at least
// one second and shorter than the token lifetime.
func WithRefreshIn(d time.Duration) Option {
	return func(c *config) {
		c.refreshIn = c.wholeSeconds("WithRefreshIn", d, c.refreshIn)
	}
}

// WithClock sets the emulator's clock, used for token times (iat, nbf, exp,
// expires_on), for the request log and for Arc key expiry. Tests of expiry
// can pass a fake clock; now must be safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now == nil {
			c.errs = append(c.errs, fmt.Errorf("mitokentest: WithClock: the clock is nil"))
			return
		}
		c.now = now
	}
}

// wholeSeconds returns d rounded down to seconds, or records an error and
// returns old when d is under a second.
func (c *config) wholeSeconds(option string, d, old time.Duration) time.Duration {
	if d < time.Second {
		c.errs = append(c.errs, fmt.Errorf("mitokentest: %s: %v is shorter than one second", option, d))
		return old
	}
	return d.Truncate(time.Second)
}

func newConfig(opts []Option) (*config, error) {
	c := &config{addrs: map[Source]string{}, lifetime: DefaultLifetime, now: time.Now}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("mitokentest: a nil Option was passed")
		}
		o(c)
	}
	if len(c.errs) > 0 {
		return nil, c.errs[0]
	}
	if c.refreshIn >= c.lifetime {
		return nil, fmt.Errorf("mitokentest: WithRefreshIn: %v is not shorter than the token lifetime %v", c.refreshIn, c.lifetime)
	}
	if c.noSystem && c.system != nil {
		return nil, fmt.Errorf("mitokentest: WithSystemIdentity and WithoutSystemIdentity contradict each other")
	}
	return c, nil
}
