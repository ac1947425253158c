// Package oauth2adapter lets code written for golang.org/x/oauth2 use mitoken
// credentials: TokenSource returns an oauth2.TokenSource of managed-identity
// tokens for one resource.
//
//	cred, err := mitoken.New() // IMDS, App Service or Arc, found from the environment
//	if err != nil {
//		return err
//	}
//	ts := oauth2adapter.TokenSource(ctx, cred, "https://management.azure.com")
//	client := &http.Client{Transport: &oauth2.Transport{Source: ts}}
//
// Prefer oauth2.Transport over oauth2.NewClient, as above. oauth2.NewClient
// wraps the source in oauth2.ReuseTokenSource, which keeps each token until
// ten seconds before it expires and then fetches the next one while holding
// a lock that every request waits on. Tokens are right either way, but with
// oauth2.Transport each request asks mitoken's cache, which answers without
// a lock and renews tokens in the background before they expire.
//
// For plain net/http clients mitoken.Transport does the same job without
// x/oauth2, and adds a retry with a fresh token when the resource answers 401.
//
// This package is a module of its own, so that the mitoken module does not
// depend on golang.org/x/oauth2.
package oauth2adapter
