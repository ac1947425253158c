// Package azadapter lets clients of the Azure SDK for Go authenticate with a
// mitoken credential. New wraps a mitoken.Credential as an
// azcore.TokenCredential, which every Azure SDK client constructor accepts:
//
//	cred, err := mitoken.New() // IMDS, App Service or Arc, found from the environment
//	if err != nil {
//		return err
//	}
//	client, err := azsecrets.NewClient(vaultURL, azadapter.New(cred), nil)
//
// The SDK asks for tokens by scope ("https://vault.azure.net/.default");
// mitoken asks the managed-identity endpoint by resource. A request must name
// exactly one scope; its "/.default" suffix is trimmed to give the resource.
// The token's ExpiresOn and RefreshOn are passed on, so the SDK's bearer
// token policy asks again when mitoken's cache starts renewing the token,
// and gets the renewed token at no cost once the cache has it.
//
// This package is a module of its own, so that the mitoken module does not
// depend on the Azure SDK.
package azadapter
