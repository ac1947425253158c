package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mitoken/mitoken"
)

const tokenHelp = `
Gets an access token for --resource from this host's managed identity, as
"az account get-access-token" does, and writes it to standard output.

--source auto (the default) finds the source from the environment as
mitoken.New does, taking the first that matches:

  1. workloadidentity  AZURE_FEDERATED_TOKEN_FILE is set (AZURE_CLIENT_ID and
                       AZURE_TENANT_ID must be set too)
  2. servicefabric     IDENTITY_ENDPOINT, IDENTITY_HEADER and
                       IDENTITY_SERVER_THUMBPRINT are set
  3. appservice        IDENTITY_ENDPOINT and IDENTITY_HEADER are set
  4. azureml           MSI_ENDPOINT and MSI_SECRET are set
  5. cloudshell        MSI_ENDPOINT is set
  6. arc               IDENTITY_ENDPOINT and IMDS_ENDPOINT are set, or the Arc
                       agent is installed
  7. imds              otherwise; off Azure it fails within about a second
                       with exit code 3

An explicit --source uses that source only; an explicit imds retries as the
library does, up to --timeout.

Identity flags: imds and appservice take one of --client-id, --object-id and
--resource-id (default: AZURE_CLIENT_ID, else the system-assigned identity);
azureml takes --client-id only (default: DEFAULT_IDENTITY_CLIENT_ID, else
AZURE_CLIENT_ID); workloadidentity takes --client-id only (default:
AZURE_CLIENT_ID, required); arc, cloudshell and servicefabric serve one
identity and take none.

To try it without Azure, run "mitoken emulate --source S" in another
terminal and export the lines it prints.`

// tokenOutput is the JSON written by --output json, with the field names of
// "az account get-access-token" where it has them.
type tokenOutput struct {
	AccessToken string `json:"accessToken"`
	ExpiresOn   string `json:"expiresOn"`
	ExpiresOnTS int64  `json:"expires_on"`
	TokenType   string `json:"tokenType"`
	Resource    string `json:"resource"`
	ClientID    string `json:"clientId,omitempty"`
	Source      string `json:"source"`
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "--resource R [flags]", tokenHelp)
	resource := fs.String("resource", "", "the resource to get a token for: an App ID URI such as https://vault.azure.net, or a scope ending in /.default (required)")
	clientID := fs.String("client-id", "", "use the user-assigned identity with this client ID")
	objectID := fs.String("object-id", "", "use the user-assigned identity with this object (principal) ID")
	resourceID := fs.String("resource-id", "", "use the user-assigned identity with this ARM resource ID")
	source := fs.String("source", "auto", "where to get the token: "+sourceNames("auto"))
	output := fs.String("output", "json", "what to print: json, raw (the token alone) or header (an Authorization header line)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if code := parse(fs, args, stdout, stderr); code >= 0 {
		return code
	}

	var opts []mitoken.Option
	var idFlags []string
	for _, f := range []struct {
		name, value string
		option      func(string) mitoken.Option
	}{
		{"--client-id", *clientID, mitoken.WithClientID},
		{"--object-id", *objectID, mitoken.WithObjectID},
		{"--resource-id", *resourceID, mitoken.WithResourceID},
	} {
		if f.value != "" {
			idFlags = append(idFlags, f.name)
			opts = append(opts, f.option(f.value))
		}
	}
	switch {
	case *resource == "":
		return usageError(fs, stderr, "--resource is required, such as --resource https://management.azure.com")
	case len(idFlags) > 1:
		return usageError(fs, stderr, fmt.Sprintf("%s and %s both name an identity; give at most one", idFlags[0], idFlags[1]))
	case *output != "json" && *output != "raw" && *output != "header":
		return usageError(fs, stderr, fmt.Sprintf("--output %q is not one of json, raw and header", *output))
	case *timeout <= 0:
		return usageError(fs, stderr, "--timeout must be positive, such as 30s")
	}
	if len(idFlags) == 1 {
		if msg := identityProblem(*source, idFlags[0]); msg != "" {
			return usageError(fs, stderr, msg)
		}
	}

	cred, err := newCredential(*source, opts)
	if err != nil {
		if errors.Is(err, errUnknownSource) {
			return usageError(fs, stderr, err.Error())
		}
		return tokenFailure(stderr, *source, err, *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tok, err := cred.GetToken(ctx, *resource)
	if err != nil {
		return tokenFailure(stderr, mitoken.SourceOf(cred), err, *timeout)
	}

	switch *output {
	case "raw":
		fmt.Fprintln(stdout, tok.AccessToken)
	case "header":
		fmt.Fprintf(stdout, "Authorization: %s %s\n", tok.TokenType, tok.AccessToken)
	default:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(tokenOutput{
			AccessToken: tok.AccessToken,
			ExpiresOn:   tok.ExpiresOn.Format(time.RFC3339),
			ExpiresOnTS: tok.ExpiresOn.Unix(),
			TokenType:   tok.TokenType,
			Resource:    tok.Resource,
			ClientID:    tok.ClientID,
			Source:      mitoken.SourceOf(cred),
		})
		if err != nil {
			fmt.Fprintf(stderr, "mitoken token: writing the output: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

var errUnknownSource = errors.New("unknown source")

// newCredential builds the credential that --source names.
func newCredential(name string, opts []mitoken.Option) (mitoken.Credential, error) {
	if name == "auto" {
		return mitoken.New(opts...)
	}
	if s, ok := lookupSource(name); ok {
		return s.new(opts...)
	}
	return nil, fmt.Errorf("%s: %w", badSource(name, "auto"), errUnknownSource)
}

// identityProblem returns the usage error for the identity flag on the
// source that --source names, or "". For auto it asks mitoken.New which
// source the environment names; when New cannot build one without the flag
// (a workload identity missing AZURE_CLIENT_ID, say), the library checks the
// flag instead.
func identityProblem(name, flag string) string {
	if name != "auto" {
		s, _ := lookupSource(name)
		return s.identityProblem(flag)
	}
	cred, err := mitoken.New()
	if err != nil {
		return ""
	}
	if c, ok := cred.(io.Closer); ok {
		c.Close()
	}
	s, _ := lookupSource(mitoken.SourceOf(cred))
	if msg := s.identityProblem(flag); msg != "" {
		return fmt.Sprintf("--source auto chose %s from the environment: %s", s.name, msg)
	}
	return ""
}

// tokenFailure says on stderr what was tried and what to do, and returns
// the exit code for err. The library's errors never hold a token or secret.
func tokenFailure(stderr io.Writer, source string, err error, timeout time.Duration) int {
	fmt.Fprintf(stderr, "mitoken token: tried the %s source: %v\n", source, err)
	var argErr *mitoken.ArgumentError
	var respErr *mitoken.ResponseError
	switch {
	case errors.Is(err, mitoken.ErrUnavailable):
		fmt.Fprintln(stderr, "No managed identity is reachable here. On Azure, assign a managed identity to this resource",
			"(VM, scale set, App Service, Arc server, Azure ML compute, Service Fabric application, AKS pod with workload identity);",
			"off Azure, run `mitoken emulate` in another terminal and export the lines it prints.")
		return exitUnavailable
	case errors.As(err, &argErr):
		fmt.Fprintf(stderr, "Check the flags%s and the managed-identity environment variables (%s).\n",
			optionFlag(argErr.Name), strings.Join(sourceEnv(source), ", "))
		return exitUsage
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(stderr, "No token within --timeout %s: the endpoint may be slow or throttling; try again, or raise --timeout.\n", timeout)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "Interrupted.")
	case errors.As(err, &respErr):
		fmt.Fprintln(stderr, "The endpoint refused the request: check --resource (an App ID URI such as https://vault.azure.net) and that the identity flags name an identity assigned to this host.")
	}
	return exitFailure
}
