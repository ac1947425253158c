// Package bench measures mitoken side by side with the Azure SDK's
// azidentity.ManagedIdentityCredential, both pointed at the same
// mitokentest emulator on loopback.
//
// It lives in its own module so that the library never depends on the
// Azure SDK: the SDK is here only as the thing compared against.
//
// Every request either client makes goes to loopback. mitoken is pointed at
// the emulator with WithEndpoint or the App Service environment variables;
// azidentity reads the same App Service variables, and its IMDS requests,
// whose address is fixed, are redirected by a Guard (its
// ClientOptions.Transport) that rewrites the address to the emulator's
// listener before anything is sent and refuses every other non-loopback
// host.
//
// The benchmark bodies are exported so that both `go test -bench` in this
// package and the driver in cmd/compare run the same code.
package bench
