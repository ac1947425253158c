// Package mitokentest runs a local emulator of the Azure managed-identity
// endpoints, for tests and for trying a managed-identity client without an
// Azure VM, in the spirit of net/http/httptest.
//
// NewServer starts seven loopback listeners, one per protocol, each at its
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
//   - Azure Cloud Shell: POST /oauth2/token with Metadata: true and the form
//     body resource=R; the system identity only.
//   - Azure ML: GET /MSI/auth with the server's secret in the secret header,
//     api-version 2017-09-01, resource and clientid (empty for the default
//     identity, else a client ID). expires_on comes back as a date, as in
//     "11/23/2026 10:00:00 +00:00".
//   - Service Fabric: GET /metadata/identity/oauth2/token over https, with
//     the server's secret in the Secret header, api-version
//     2019-07-01-preview and resource; the system identity only. The
//     certificate is self-signed, made fresh by each Server; Thumbprint
//     gives its SHA-1 thumbprint, the value of IDENTITY_SERVER_THUMBPRINT.
//   - AKS workload identity: the Microsoft Entra token endpoint,
//     POST /{tenant}/oauth2/v2.0/token with a client-credentials form
//     (grant_type, client_id of one of the server's identities,
//     scope=R/.default, client_assertion_type jwt-bearer and
//     client_assertion). The assertion must be the contents of
//     FederatedTokenFile, a JWT-shaped service account token the server
//     writes; RotateFederatedToken replaces it, as the kubelet does, and the
//     old one is refused from then on.
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
// endpoint received, and read a log of them with secrets (secret headers,
// the client assertion) masked. A Server is
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
