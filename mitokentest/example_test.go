package mitokentest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// A test gets a token through the real IMDS credential, with no Azure VM.
func Example() {
	s, err := mitokentest.NewServer(mitokentest.WithSystemIdentity(mitokentest.Identity{
		ClientID: "7d2f3a51-0b6e-4c1f-9a43-2f6d8e0c1b24",
		ObjectID: "c1a5e8f0-3d2b-4e7a-8f61-9b0d4c2e7a13",
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "https://vault.azure.net")
	if err != nil {
		log.Fatal(err)
	}
	claims, err := mitokentest.DecodeClaims(tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("aud:", claims.Audience)
	fmt.Println("appid:", claims.AppID)
	fmt.Println("oid:", claims.ObjectID)
	fmt.Println("lifetime:", time.Duration(claims.ExpiresAt-claims.IssuedAt)*time.Second)
	fmt.Println("requests:", s.Requests(mitokentest.IMDS))
	// Output:
	// aud: https://vault.azure.net
	// appid: 7d2f3a51-0b6e-4c1f-9a43-2f6d8e0c1b24
	// oid: c1a5e8f0-3d2b-4e7a-8f61-9b0d4c2e7a13
	// lifetime: 24h0m0s
	// requests: 1
}

// A scripted answer tests how a client handles an endpoint's error.
func ExampleServer_Script() {
	s, err := mitokentest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s.Script(mitokentest.IMDS, mitokentest.Response{
		Status: 400,
		Body:   `{"error":"invalid_resource","error_description":"AADSTS500011: resource not found"}`,
	})

	cred, err := mitoken.NewIMDS(s.Options(mitokentest.IMDS)...)
	if err != nil {
		log.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), "https://unknown.example")
	var re *mitoken.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.ErrorCode)
	}
	fmt.Println("requests:", s.Requests(mitokentest.IMDS))
	// Output:
	// 400 invalid_resource
	// requests: 1
}
