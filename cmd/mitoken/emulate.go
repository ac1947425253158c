package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/mitoken/mitoken/mitokentest"
)

const emulateHelp = `
Serves the managed-identity emulator (package mitokentest) on loopback until
interrupted (Ctrl-C, SIGTERM), and prints on standard output the export lines
that point a program, or "mitoken token", at the chosen source:

  imds              AZURE_POD_IDENTITY_AUTHORITY_HOST
  appservice        IDENTITY_ENDPOINT and IDENTITY_HEADER (the emulator's own secret)
  arc               IDENTITY_ENDPOINT and IMDS_ENDPOINT; the Arc credential also
                    needs mitoken.WithArcTokenDir(<dir>) in code, as printed on
                    standard error, so "mitoken token" cannot use this one
  cloudshell        MSI_ENDPOINT
  azureml           MSI_ENDPOINT, MSI_SECRET (the secret) and
                    DEFAULT_IDENTITY_CLIENT_ID (the emulated compute's identity)
  servicefabric     IDENTITY_ENDPOINT (https, with a self-signed certificate),
                    IDENTITY_HEADER (the secret) and IDENTITY_SERVER_THUMBPRINT
                    (the certificate's thumbprint, which the credential pins)
  workloadidentity  AZURE_AUTHORITY_HOST (the emulated Microsoft Entra token
                    endpoint), AZURE_TENANT_ID, AZURE_CLIENT_ID and
                    AZURE_FEDERATED_TOKEN_FILE (a file in a temporary directory
                    that the emulator removes when it stops)

--addr places the chosen source; the others get free ports. Tokens are
JWT-shaped and accepted by nothing but the emulator.`

func runEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("emulate", "[--source S] [--addr 127.0.0.1:0]", emulateHelp)
	source := fs.String("source", "imds", "the protocol to print the environment for: "+sourceNames())
	addr := fs.String("addr", "127.0.0.1:0", "the loopback address to serve the source on (port 0: any free port)")
	if code := parse(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	s, ok := lookupSource(*source)
	if !ok {
		return usageError(fs, stderr, badSource(*source))
	}
	src := s.name
	if msg := checkLoopback(*addr); msg != "" {
		return usageError(fs, stderr, msg)
	}

	srv, err := mitokentest.NewServer(mitokentest.WithAddr(src, *addr))
	if err != nil {
		fmt.Fprintf(stderr, "mitoken emulate: %v\n", err)
		return exitFailure
	}
	defer srv.Close()

	fmt.Fprintf(stderr, "mitoken emulate: serving %s at %s\n", src, srv.URL(src))
	if src == mitokentest.Arc {
		fmt.Fprintf(stderr, "mitoken emulate: the Arc credential reads challenge keys from the emulator's directory, which no environment variable sets;\n"+
			"  build it with mitoken.NewArc(mitoken.WithArcTokenDir(%q))\n", srv.ArcTokenDir())
	}
	fmt.Fprintln(stderr, "mitoken emulate: export these lines in the program's shell; stop with Ctrl-C")
	env := srv.Env(src)
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(stdout, "export %s=%s\n", name, shellQuote(env[name]))
	}

	<-ctx.Done()
	srv.Close()
	fmt.Fprintln(stderr, "mitoken emulate: stopped")
	return exitOK
}

// checkLoopback returns why addr is not a loopback host:port, or "".
func checkLoopback(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("--addr %q is not host:port, such as 127.0.0.1:40342", addr)
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return fmt.Sprintf("--addr %q is not a loopback address; the emulator serves tokens to this machine only (use 127.0.0.1)", addr)
	}
	return ""
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// URL characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
