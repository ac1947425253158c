// Command arm lists the resource groups of an Azure subscription over the
// Azure Resource Manager REST API, authenticated with the managed identity
// of the host it runs on.
//
//	go run ./examples/arm -subscription 00000000-0000-0000-0000-000000000000
//
// The identity needs a role that can read the subscription (such as Reader).
// -subscription defaults to AZURE_SUBSCRIPTION_ID; add -client-id for a
// user-assigned identity.
package main

import (
	"context"
	"encoding/json"
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

const armHost = "management.azure.com"

var subscriptionID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func main() {
	sub := flag.String("subscription", os.Getenv("AZURE_SUBSCRIPTION_ID"), "subscription ID")
	clientID := flag.String("client-id", "", "client ID of a user-assigned identity (default: system-assigned or AZURE_CLIENT_ID)")
	flag.Parse()
	if err := run(*sub, *clientID); err != nil {
		fmt.Fprintln(os.Stderr, "arm:", err)
		os.Exit(1)
	}
}

type page struct {
	Value []struct {
		Name     string `json:"name"`
		Location string `json:"location"`
	} `json:"value"`
	NextLink string `json:"nextLink"`
	Error    struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func run(sub, clientID string) error {
	if !subscriptionID.MatchString(sub) {
		return fmt.Errorf("-subscription %q is not a subscription ID (a GUID)", sub)
	}
	var opts []mitoken.Option
	if clientID != "" {
		opts = append(opts, mitoken.WithClientID(clientID))
	}
	cred, err := mitoken.New(opts...)
	if err != nil {
		return err
	}
	client := mitoken.NewClient(cred, "https://management.azure.com")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	next := "https://" + armHost + "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01"
	for next != "" {
		p, err := get(ctx, client, next)
		if err != nil {
			return err
		}
		for _, rg := range p.Value {
			fmt.Printf("%s\t%s\n", rg.Name, rg.Location)
		}
		next = p.NextLink
		// A nextLink is a new request, not a redirect: check it before the
		// token goes with it.
		if next != "" {
			u, err := url.Parse(next)
			if err != nil || u.Scheme != "https" || u.Host != armHost {
				return fmt.Errorf("refusing to follow a nextLink that is not on https://%s", armHost)
			}
		}
	}
	return nil
}

func get(ctx context.Context, client *http.Client, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil && resp.StatusCode == http.StatusOK {
		return nil, fmt.Errorf("unexpected answer from ARM: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ARM answered %s: %s %s", resp.Status, p.Error.Code, p.Error.Message)
	}
	return &p, nil
}
