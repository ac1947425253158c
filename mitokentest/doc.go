// Package mitokentest runs a local emulator of the Azure managed-identity
// endpoints, for tests and for trying a managed-identity client without an
// Azure VM, in the spirit of net/http/httptest.
//
// NewServer starts three loopback listeners, one per protocol, each at its
// real path and with the checks the real service makes:
//
//   - IMDS (VMs, scale sets, AKS nodes): GET /metadata/identity/oauth2/token
//     with Metadata: true, api-version 2018-02-01 or later, resource, and at
//     most one of client_id, object_id and msi_res_id.
//   - App Service, Functions, Container Apps: GET /MSI/token/ with
//     X-IDENTITY-HEADER set to the server's secret, api-version 2019-08-01,
//     resource, and at most one of client_id, object_id (principal_id) and
//     mi_res_id.
//   - Azure Arc: GET /metadata/identity/oauth2/token with Metadata: true and
//     api-version 2020-06-01 (or 2019-11-01). The first request is answered
//     with 401 and WWW-Authenticate: Basic realm=<dir>/<random>.key, a file
//     the server writes into a directory it owns (ArcTokenDir) with mode
//     0600; the same request with Authorization: Basic <file contents> gets
//     the token. A key answers once and expires after a minute.
//
// The server says how to point a credential at it: URL gives each token
// endpoint, Env the environment variables a deployment would set, and
// Options the mitoken options that do the same in code.
//
// Tokens are JWT-shaped (base64url header, claims and signature) with the
// claims a real managed-identity token carries: aud (the resource), iss,
// tid, oid, sub and appid of the identity, iat, nbf, exp and a unique jti.
// They are not signed by anything real: the signature is random bytes, and
// no service other than this emulator accepts them. DecodeClaims reads the
// claims back.
//
// Tests can script answers per source (statuses, headers such as
// Retry-After, bodies, latency, hanging until the client gives up, malformed
// or oversized bodies, connections reset mid-body), count the requests each
// endpoint received, and read a log of them with secrets masked. A Server is
// safe for concurrent use; Close stops it, releases every hanging request
// and removes its files.
//
// A test gets a token through the real IMDS credential like this:
//
//	func TestVault(t *testing.T) {
//		s := mitokentest.NewTestServer(t) // closed when the test ends
//		cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
//		require.NoError(t, err)
//		tok, err := cred.GetToken(t.Context(), "https://vault.azure.net")
//		require.NoError(t, err)
//		claims, err := mitokentest.DecodeClaims(tok.AccessToken)
//		require.NoError(t, err)
//		assert.Equal(t, "https://vault.azure.net", claims.Audience)
//		assert.Equal(t, 1, s.Requests(mitokentest.IMDS))
//	}
package mitokentest
