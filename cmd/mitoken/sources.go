package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// source is a managed-identity source as the commands name it. Its name is
// the value of --source, of mitoken.SourceOf and of the mitokentest.Source.
type source struct {
	name  mitokentest.Source
	title string // for messages, such as "Azure Arc"
	// new builds the source's credential, as its mitoken constructor does.
	new func(opts ...mitoken.Option) (mitoken.Credential, error)
	// idFlags are the identity flags of token that the source takes.
	idFlags []string
	// refuse is the usage error for an identity flag it does not take; %s
	// is the flag.
	refuse string
	// env are the environment variables the library reads for it.
	env []string
}

// identityFlags are token's flags that name a user-assigned identity.
var identityFlags = []string{"--client-id", "--object-id", "--resource-id"}

// sources are the sources, in the order of the mitokentest constants.
var sources = []source{
	{name: mitokentest.IMDS, title: "IMDS", new: credential(mitoken.NewIMDS), idFlags: identityFlags,
		env: []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID"}},
	{name: mitokentest.AppService, title: "App Service", new: credential(mitoken.NewAppService), idFlags: identityFlags,
		env: []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID"}},
	{name: mitokentest.Arc, title: "Azure Arc", new: credential(mitoken.NewArc),
		refuse: "Azure Arc serves only the machine's system-assigned identity; remove %s",
		env:    []string{"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"}},
	{name: mitokentest.CloudShell, title: "Azure Cloud Shell", new: credential(mitoken.NewCloudShell),
		refuse: "Azure Cloud Shell serves only its own identity (the signed-in user's); remove %s",
		env:    []string{"MSI_ENDPOINT"}},
	{name: mitokentest.AzureML, title: "Azure ML", new: credential(mitoken.NewAzureML), idFlags: identityFlags[:1],
		refuse: "Azure ML selects a user-assigned identity by client ID only; use --client-id instead of %s",
		env:    []string{"MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_CLIENT_ID"}},
	{name: mitokentest.ServiceFabric, title: "Service Fabric", new: credential(mitoken.NewServiceFabric),
		refuse: "Service Fabric serves only the identity that the application's manifest assigns; remove %s",
		env:    []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"}},
	{name: mitokentest.WorkloadIdentity, title: "AKS workload identity", new: credential(mitoken.NewWorkloadIdentity), idFlags: identityFlags[:1],
		refuse: "a workload identity is named by its client ID only; use --client-id (or AZURE_CLIENT_ID) instead of %s",
		env:    []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"}},
}

// credential adapts a source's constructor to source.new.
func credential[C mitoken.Credential](newCred func(...mitoken.Option) (C, error)) func(...mitoken.Option) (mitoken.Credential, error) {
	return func(opts ...mitoken.Option) (mitoken.Credential, error) {
		c, err := newCred(opts...)
		if err != nil {
			return nil, err // not a nil *XCredential in an interface
		}
		return c, nil
	}
}

// lookupSource returns the source named name.
func lookupSource(name string) (source, bool) {
	i := slices.IndexFunc(sources, func(s source) bool { return string(s.name) == name })
	if i < 0 {
		return source{}, false
	}
	return sources[i], true
}

// badSource is the usage error for a --source value that is none of extra
// (such as "auto") and the sources' names.
func badSource(value string, extra ...string) string {
	return fmt.Sprintf("--source %q is not one of %s", value, listNames("and", extra...))
}

// sourceNames lists extra and the sources' names, as "a, b or c".
func sourceNames(extra ...string) string { return listNames("or", extra...) }

func listNames(conjunction string, extra ...string) string {
	names := slices.Clone(extra)
	for _, s := range sources {
		names = append(names, string(s.name))
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + conjunction + " " + names[len(names)-1]
}

// identityProblem returns the usage error for the identity flag flag ("" for
// none) on s, or "" when s takes it.
func (s source) identityProblem(flag string) string {
	if flag == "" || s.refuse == "" || slices.Contains(s.idFlags, flag) {
		return ""
	}
	return fmt.Sprintf(s.refuse, flag)
}

// sourceEnv returns the variables the library reads for the source named
// name, or for every source when name is none (such as "auto").
func sourceEnv(name string) []string {
	if s, ok := lookupSource(name); ok {
		return s.env
	}
	var env []string
	for _, s := range sources {
		for _, v := range s.env {
			if !slices.Contains(env, v) {
				env = append(env, v)
			}
		}
	}
	return env
}

// optionFlag names the flag that stands for the library's identity option,
// for an *mitoken.ArgumentError that names the option, or returns "".
func optionFlag(option string) string {
	i := slices.Index([]string{"WithClientID", "WithObjectID", "WithResourceID"}, option)
	if i < 0 {
		return ""
	}
	return fmt.Sprintf(" (the library's %s is %s)", option, identityFlags[i])
}
