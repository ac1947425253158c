// Package mitoken gets Azure managed-identity access tokens for Go programs
// and hands them to any HTTP client.
//
// A managed identity is an identity Azure gives to a VM, a scale set, an App
// Service or Functions app, an Arc-enabled server and other hosts. Code
// running there asks a local endpoint for an access token; no secret is kept
// in the program. mitoken speaks to that endpoint:
//
//   - IMDS, the Instance Metadata Service of VMs, scale sets and AKS nodes
//     (NewIMDS);
//   - App Service, Azure Functions and Container Apps (NewAppService);
//   - Azure Arc-enabled servers, through the agent's challenge-token flow
//     (NewArc);
//   - Azure Cloud Shell (NewCloudShell);
//   - Azure Machine Learning compute (NewAzureML);
//   - Service Fabric applications, over https to a certificate pinned by
//     its thumbprint (NewServiceFabric);
//   - AKS workload identity, which exchanges the pod's federated service
//     account token at Microsoft Entra ID (NewWorkloadIdentity).
//
// New picks the source from the environment, with the variable names the
// Azure SDKs use, so existing deployments work unchanged: workload identity
// when AZURE_FEDERATED_TOKEN_FILE is set; Service Fabric when
// IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT are set,
// App Service when only the first two are; Azure ML when MSI_ENDPOINT and
// MSI_SECRET are set, Cloud Shell when only MSI_ENDPOINT is; Arc when
// IDENTITY_ENDPOINT and IMDS_ENDPOINT are set or the Arc agent is
// installed; else IMDS. SourceOf tells which one it chose.
//
// Transport and NewClient put the token on the requests of any http.Client.
// The mitokentest package is a local emulator of all these endpoints, for
// tests and for trying mitoken with no Azure at all.
//
// # Quick start
//
//	cred, err := mitoken.New() // or mitoken.New(mitoken.WithClientID("..."))
//	if err != nil {
//		return err
//	}
//	tok, err := cred.GetToken(ctx, "https://vault.azure.net")
//	if errors.Is(err, mitoken.ErrUnavailable) {
//		// not on Azure, or no identity assigned: fall back
//	}
//	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
//
// # Caching
//
// Every credential keeps its tokens in a Cache, shared by default by all
// credentials of the process. A cached token is returned without locks or
// allocations; it is renewed in the background before it expires (at
// half-life for tokens living two hours or more, else five minutes before
// expiry, or when the endpoint's refresh_in says), so callers never wait
// while their token is still good. Concurrent callers that find no token
// share one request. Building a credential per request is therefore cheap
// and does not multiply requests to the endpoint, which throttles.
//
// # Errors
//
// errors.Is(err, ErrUnavailable) holds when the source is not present (no
// endpoint, nothing listening, no identity assigned). A *ResponseError
// carries the status, the endpoint's error code and description and the
// number of attempts when the endpoint answered with an error. Bad arguments
// give an *ArgumentError before any request. No error, log record or
// formatted Token ever contains an access token or a secret.
//
// # Retries
//
// IMDS requests are retried on 404, 410, 429 and 5xx with exponential,
// jittered waits (2 s doubling to 25 s, six retries: over 70 s, as Microsoft
// asks for IMDS upgrades), honouring Retry-After. A credential chosen by New
// because nothing else was configured tries IMDS once with a one-second
// connect timeout, so a program off Azure learns ErrUnavailable at once.
// The other local endpoints are retried on 408, 429, 500, 502, 503 and 504,
// and Microsoft Entra ID (workload identity) likewise, on shorter schedules.
// Token requests never follow redirects and IMDS requests never use a proxy.
package mitoken
