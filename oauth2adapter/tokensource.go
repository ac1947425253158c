package oauth2adapter

import (
	"context"

	"github.com/mitoken/mitoken"
	"golang.org/x/oauth2"
)

// TokenSource returns an oauth2.TokenSource of tokens for resource, an App
// ID URI such as "https://vault.azure.net" (a scope ending in "/.default"
// is accepted and trimmed), from cred.
//
// As with the sources of x/oauth2, ctx is used for every token request the
// source makes: when it is done, Token fails. Pass a context that lives as
// long as the source, such as context.Background(), not a request's.
//
// Each Token call is cred.GetToken, so a cached token costs no request and
// the source is safe for concurrent use. Tokens have TokenType "Bearer" and
// Expiry set to the token's expiry; x/oauth2 counts a token as expired ten
// seconds before it. The source adds no cache of its own and is not wrapped
// in oauth2.ReuseTokenSource: mitoken already caches and renews tokens, and
// ReuseTokenSource would make callers wait on one lock while it fetches.
//
// Errors are mitoken's, unchanged: errors.Is(err, mitoken.ErrUnavailable)
// holds when there is no managed identity here, and errors.As finds a
// *mitoken.ResponseError or *mitoken.ArgumentError (a nil cred or a bad
// resource).
func TokenSource(ctx context.Context, cred mitoken.Credential, resource string) oauth2.TokenSource {
	return &tokenSource{ctx: ctx, cred: cred, resource: resource}
}

type tokenSource struct {
	ctx      context.Context
	cred     mitoken.Credential
	resource string
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	if s.cred == nil {
		return nil, &mitoken.ArgumentError{Name: "cred",
			Problem: "oauth2adapter.TokenSource was given a nil mitoken.Credential; pass one from mitoken.New"}
	}
	tok, err := s.cred.GetToken(s.ctx, s.resource)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", Expiry: tok.ExpiresOn}, nil
}
