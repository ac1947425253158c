// Command keyvault reads a secret from Azure Key Vault over its REST API,
// authenticated with the managed identity of the host it runs on.
//
//	go run ./examples/keyvault -vault myvault -secret db-password
//
// The identity needs permission to get secrets in that vault (the "Key Vault
// Secrets User" role, or a "get" access policy). Add -client-id for a
// user-assigned identity.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/mitoken/mitoken"
)

// vaultName is what Azure accepts as a vault name: 3-24 letters, digits and
// dashes, starting with a letter.
var vaultName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{2,23}$`)

func main() {
	vault := flag.String("vault", "", "Key Vault name (the NAME in https://NAME.vault.azure.net)")
	secret := flag.String("secret", "", "name of the secret to read")
	clientID := flag.String("client-id", "", "client ID of a user-assigned identity (default: system-assigned or AZURE_CLIENT_ID)")
	flag.Parse()
	if err := run(*vault, *secret, *clientID); err != nil {
		fmt.Fprintln(os.Stderr, "keyvault:", err)
		os.Exit(1)
	}
}

func run(vault, secret, clientID string) error {
	if !vaultName.MatchString(vault) {
		return fmt.Errorf("-vault %q is not a Key Vault name (3-24 letters, digits and dashes)", vault)
	}
	if secret == "" {
		return errors.New("-secret is required")
	}
	var opts []mitoken.Option
	if clientID != "" {
		opts = append(opts, mitoken.WithClientID(clientID))
	}
	cred, err := mitoken.New(opts...)
	if err != nil {
		return err
	}
	client := mitoken.NewClient(cred, "https://vault.azure.net")
	client.Timeout = time.Minute

	u := "https://" + vault + ".vault.azure.net/secrets/" + url.PathEscape(secret) + "?api-version=7.4"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}

	var out struct {
		Value string `json:"value"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("key vault answered %s: %s %s", resp.Status, out.Error.Code, out.Error.Message)
	}
	fmt.Println(out.Value)
	return nil
}
