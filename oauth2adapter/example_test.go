package oauth2adapter_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
	"github.com/mitoken/mitoken/oauth2adapter"
	"golang.org/x/oauth2"
)

// An oauth2.Transport puts a managed-identity token in every request. The
// example runs against the mitoken emulator and a local https API; on Azure,
// cred is mitoken.New() and Base is left out.
func Example() {
	imds, err := mitokentest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer imds.Close()
	api := fakeAPI()
	defer api.Close()

	cred, err := mitoken.NewIMDS(imds.Options(mitokentest.IMDS)...)
	if err != nil {
		log.Fatal(err)
	}
	ts := oauth2adapter.TokenSource(context.Background(), cred, "https://management.azure.com")
	client := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: api.Client().Transport}}

	for _, path := range []string{"/subscriptions", "/providers"} {
		resp, err := client.Get(api.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	fmt.Println("token requests:", imds.Requests(mitokentest.IMDS))
	// Output:
	// 200 GET /subscriptions with a token for https://management.azure.com
	// 200 GET /providers with a token for https://management.azure.com
	// token requests: 1
}

// fakeAPI is an https API that accepts any token the emulator issued and
// says what it got.
func fakeAPI() *httptest.Server {
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, err := mitokentest.DecodeClaims(token)
		if !ok || err != nil {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s with a token for %s", r.Method, r.URL.Path, claims.Audience)
	}))
}
