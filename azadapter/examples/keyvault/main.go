// Command keyvault reads a secret with the Azure SDK's Key Vault client
// (azsecrets), authenticated with the managed identity of the host it runs
// on through mitoken and azadapter.
//
//	go run ./examples/keyvault -vault https://myvault.vault.azure.net -secret db-password
//
// The identity needs permission to get secrets in that vault (the "Key Vault
// Secrets User" role, or a "get" access policy). Add -client-id for a
// user-assigned identity. The command prints the secret's version and size,
// not its value.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/azadapter"
)

func main() {
	vault := flag.String("vault", "", "vault URL, such as https://myvault.vault.azure.net")
	secret := flag.String("secret", "", "name of the secret to read")
	clientID := flag.String("client-id", "", "client ID of a user-assigned identity (default: system-assigned or AZURE_CLIENT_ID)")
	flag.Parse()
	if err := run(*vault, *secret, *clientID); err != nil {
		fmt.Fprintln(os.Stderr, "keyvault:", err)
		os.Exit(1)
	}
}

func run(vault, secret, clientID string) error {
	if vault == "" || secret == "" {
		return errors.New("-vault and -secret are required")
	}
	var opts []mitoken.Option
	if clientID != "" {
		opts = append(opts, mitoken.WithClientID(clientID))
	}
	cred, err := mitoken.New(opts...)
	if err != nil {
		return err
	}
	// Any Azure SDK client takes the adapter where it takes an azidentity credential.
	client, err := azsecrets.NewClient(vault, azadapter.New(cred), nil)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := client.GetSecret(ctx, secret, "", nil)
	if errors.Is(err, mitoken.ErrUnavailable) {
		return fmt.Errorf("no managed identity on this host: %w", err)
	}
	if err != nil {
		return err
	}
	size := 0
	if resp.Value != nil {
		size = len(*resp.Value)
	}
	fmt.Printf("secret %s, version %s: %d bytes\n", secret, resp.ID.Version(), size)
	return nil
}
