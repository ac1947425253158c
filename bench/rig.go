package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// Resource is what the benchmarks ask tokens for.
const Resource = "https://vault.azure.net"

// Tok is what the measures need of a token from either client.
type Tok struct {
	AccessToken string
	RefreshOn   time.Time
}

// Getter gets a token for resource (an App ID URI) from one client.
type Getter func(ctx context.Context, resource string) (Tok, error)

// MitokenGetter adapts a mitoken credential.
func MitokenGetter(c mitoken.Credential) Getter {
	return func(ctx context.Context, resource string) (Tok, error) {
		t, err := c.GetToken(ctx, resource)
		return Tok{AccessToken: t.AccessToken, RefreshOn: t.RefreshOn}, err
	}
}

// AzureGetter adapts an azcore credential, asking for resource + "/.default".
func AzureGetter(c azcore.TokenCredential) Getter {
	return func(ctx context.Context, resource string) (Tok, error) {
		t, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
		return Tok{AccessToken: t.Token, RefreshOn: t.RefreshOn}, err
	}
}

// Rig is an emulator with one credential of each client pointed at the
// same source of it.
type Rig struct {
	Server  *mitokentest.Server
	Source  mitokentest.Source
	Mitoken mitoken.Credential
	Azure   *azidentity.ManagedIdentityCredential
	Guard   *Guard

	restore func()
}

// Both names the two clients in the order of the table's columns.
var Both = [2]string{"mitoken", "azidentity"}

// Getter returns the Getter of client ("mitoken" or "azidentity").
func (r *Rig) Getter(client string) Getter {
	if client == "mitoken" {
		return MitokenGetter(r.Mitoken)
	}
	return AzureGetter(r.Azure)
}

// managedIdentityEnv lists every variable that steers either client's
// choice of source; a Rig clears those it does not set.
var managedIdentityEnv = []string{
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
	"MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID",
}

// NewRig starts an emulator with opts and builds both credentials for src
// (IMDS or AppService). For App Service the platform's environment
// variables are set, as both clients read them (azidentity on every
// request), until Close. Each mitoken credential gets its own cache.
func NewRig(src mitokentest.Source, opts ...mitokentest.Option) (*Rig, error) {
	s, err := mitokentest.NewServer(opts...)
	if err != nil {
		return nil, err
	}
	r := &Rig{Server: s, Source: src}
	env := map[string]string{}
	if src == mitokentest.AppService {
		env = s.Env(mitokentest.AppService)
	}
	r.restore = setEnv(env)
	imds, err := url.Parse(s.URL(mitokentest.IMDS))
	if err != nil {
		r.Close()
		return nil, err
	}
	if r.Guard, err = NewGuard(imds.Host); err != nil {
		r.Close()
		return nil, err
	}
	switch src {
	case mitokentest.IMDS:
		r.Mitoken, err = mitoken.NewIMDS(mitoken.WithEndpoint(s.URL(src)), mitoken.WithCache(mitoken.NewCache()))
	case mitokentest.AppService:
		r.Mitoken, err = mitoken.New(mitoken.WithCache(mitoken.NewCache()))
		if err == nil && mitoken.SourceOf(r.Mitoken) != "appservice" {
			err = fmt.Errorf("bench: mitoken.New chose %q, not appservice", mitoken.SourceOf(r.Mitoken))
		}
	default:
		err = fmt.Errorf("bench: source %q is not measured; use IMDS or AppService", src)
	}
	if err == nil {
		r.Azure, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: azcore.ClientOptions{Transport: r.Guard},
		})
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops the emulator, restores the environment and returns the
// Guard's error, if azidentity tried to leave loopback.
func (r *Rig) Close() error {
	r.Server.Close()
	if r.restore != nil {
		r.restore()
	}
	if r.Guard != nil {
		r.Guard.Close()
		return r.Guard.Err()
	}
	return nil
}

// setEnv clears the managed-identity variables, sets vars and returns a
// function that puts the environment back.
func setEnv(vars map[string]string) (restore func()) {
	type saved struct {
		value string
		ok    bool
	}
	old := map[string]saved{}
	keep := func(k string) {
		if _, done := old[k]; !done {
			v, ok := os.LookupEnv(k)
			old[k] = saved{v, ok}
		}
	}
	for _, k := range managedIdentityEnv {
		keep(k)
		os.Unsetenv(k)
	}
	for k, v := range vars {
		keep(k)
		os.Setenv(k, v)
	}
	return func() {
		for k, s := range old {
			if s.ok {
				os.Setenv(k, s.value)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

// ClosedLoopbackAddr returns a loopback host:port that nothing listens on:
// a port the kernel handed out and that was closed again at once.
func ClosedLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// errNoRefresh is returned by Storm when a client reports no refresh time.
var errNoRefresh = errors.New("bench: the client reported no refresh time for its token")
