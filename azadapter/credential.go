package azadapter

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/mitoken/mitoken"
)

// Credential is a mitoken.Credential seen as an azcore.TokenCredential. It
// is safe for concurrent use when the mitoken credential is, as every
// credential mitoken returns is.
type Credential struct {
	cred mitoken.Credential
}

var _ azcore.TokenCredential = (*Credential)(nil)

// New returns cred as an azcore.TokenCredential. It keeps no state of its
// own: tokens are cached by cred.
func New(cred mitoken.Credential) *Credential { return &Credential{cred: cred} }

// GetToken returns a token for the one scope in opts.Scopes, such as
// "https://vault.azure.net/.default": the scope, less a trailing
// "/.default", is the resource asked of the managed identity. ExpiresOn
// and RefreshOn are the mitoken token's.
//
// opts.Claims, opts.EnableCAE and opts.TenantID are ignored: a
// managed-identity endpoint takes none of them, and the identity's tenant is
// fixed.
//
// Errors are mitoken's, unchanged: errors.Is(err, mitoken.ErrUnavailable)
// holds when there is no managed identity here, and errors.As finds a
// *mitoken.ResponseError or *mitoken.ArgumentError. No scope, or more than
// one, is an *mitoken.ArgumentError naming the scopes. The Azure SDK has no
// public type for "this credential is unavailable" (azidentity's
// CredentialUnavailableError is its own), so an
// azidentity.ChainedTokenCredential stops at this credential's error instead
// of trying the next one; to fall back, test for mitoken.ErrUnavailable
// yourself before choosing the credential.
func (c *Credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if c == nil || c.cred == nil {
		return azcore.AccessToken{}, &mitoken.ArgumentError{Name: "cred",
			Problem: "azadapter.New was given a nil mitoken.Credential; pass one from mitoken.New"}
	}
	resource, err := resourceOf(opts.Scopes)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	tok, err := c.cred.GetToken(ctx, resource)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: tok.ExpiresOn, RefreshOn: tok.RefreshOn}, nil
}

// resourceOf turns the scopes of a token request into the resource a
// managed identity is asked for.
func resourceOf(scopes []string) (string, error) {
	if len(scopes) != 1 {
		return "", &mitoken.ArgumentError{Name: "scopes", Problem: fmt.Sprintf(
			"got %d scopes %q; a managed-identity token is for one resource, so pass exactly one scope, such as %q",
			len(scopes), scopes, "https://vault.azure.net/.default")}
	}
	return strings.TrimSuffix(scopes[0], "/.default"), nil
}
