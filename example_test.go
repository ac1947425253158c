package mitoken_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/mitoken/mitoken"
)

// The examples run against two local servers: a fake IMDS that issues the
// token "example-token", and an https API that says whether it got it. On
// Azure, drop WithEndpoint and WithCache (and Base): mitoken.New() finds the
// real endpoint.

func fakeIMDS() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"access_token":"example-token","expires_in":"3600","resource":%q,"token_type":"Bearer"}`,
			r.URL.Query().Get("resource"))
	}))
}

func fakeAPI() *httptest.Server {
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer example-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s with a token", r.Method, r.URL.Path)
	}))
}

// localCredential is what mitoken.New() returns on an Azure VM, pointed at
// the fake IMDS.
func localCredential(imds *httptest.Server) *mitoken.IMDSCredential {
	cred, err := mitoken.NewIMDS(mitoken.WithEndpoint(imds.URL), mitoken.WithCache(mitoken.NewCache()))
	if err != nil {
		log.Fatal(err)
	}
	return cred
}

func printResponse(resp *http.Response, err error) {
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
}

func ExampleIMDSCredential_GetToken() {
	imds := fakeIMDS()
	defer imds.Close()

	cred, err := mitoken.NewIMDS(mitoken.WithEndpoint(imds.URL), mitoken.WithCache(mitoken.NewCache()))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "https://vault.azure.net/.default")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.Resource, time.Until(tok.ExpiresOn) > 55*time.Minute)
	// Output: Bearer https://vault.azure.net true
}

func ExampleTransport() {
	imds, api := fakeIMDS(), fakeAPI()
	defer imds.Close()
	defer api.Close()
	cred := localCredential(imds)

	client := &http.Client{Transport: &mitoken.Transport{
		Credential: cred,
		Resource:   "https://vault.azure.net",
		Base:       api.Client().Transport, // trusts the test server's certificate
	}}
	printResponse(client.Get(api.URL + "/secrets/db-password?api-version=7.4"))
	// Output: 200 GET /secrets/db-password with a token
}

func ExampleNewClient() {
	imds, api := fakeIMDS(), fakeAPI()
	defer imds.Close()
	defer api.Close()
	cred := localCredential(imds)

	client := mitoken.NewClient(cred, "https://management.azure.com")
	// Only here: trust the test server's certificate.
	client.Transport.(*mitoken.Transport).Base = api.Client().Transport

	printResponse(client.Get(api.URL + "/subscriptions?api-version=2022-12-01"))
	// Output: 200 GET /subscriptions with a token
}
