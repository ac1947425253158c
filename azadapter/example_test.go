package azadapter_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/azadapter"
	"github.com/mitoken/mitoken/mitokentest"
)

// An Azure SDK client (here Key Vault's azsecrets) authenticates with a
// mitoken credential. The example runs against the mitoken emulator and a
// fake vault; on Azure, cred is mitoken.New() and the client options are nil.
func Example() {
	imds, err := mitokentest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer imds.Close()
	vault := fakeVault(imds, "s3cret")
	defer vault.Close()

	cred, err := mitoken.NewIMDS(imds.Options(mitokentest.IMDS)...)
	if err != nil {
		log.Fatal(err)
	}
	client, err := azsecrets.NewClient(vault.URL, azadapter.New(cred), &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: vault.Client()},
		DisableChallengeResourceVerification: true, // the fake vault is not under vault.azure.net
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.GetSecret(context.Background(), "db-password", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.ID.Name(), *resp.Value)
	fmt.Println("token requests:", imds.Requests(mitokentest.IMDS))
	// Output:
	// db-password s3cret
	// token requests: 1
}

// fakeVault is an https Key Vault that holds one value under every secret
// name. Like the real one, it answers a request without a token with a
// challenge naming the resource, and accepts only tokens the emulator
// issued for https://vault.azure.net.
func fakeVault(imds *mitokentest.Server, value string) *httptest.Server {
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/`+
				imds.Tenant()+`", resource="https://vault.azure.net"`)
			http.Error(w, `{"error":{"code":"Unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		if claims, err := mitokentest.DecodeClaims(token); err != nil || claims.Audience != "https://vault.azure.net" {
			http.Error(w, `{"error":{"code":"Forbidden"}}`, http.StatusForbidden)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/secrets/")
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		name = strings.TrimSuffix(name, "/")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"value":%q,"id":"https://%s/secrets/%s/0123456789abcdef"}`, value, r.Host, name)
	}))
}
