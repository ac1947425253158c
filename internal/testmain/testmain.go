// Package testmain is the TestMain of every test package in this repository.
//
// It enforces the project's test rules in one place: before any test runs,
// the IMDS host override points at a closed loopback port, so a test that
// forgets its own endpoint fails on loopback instead of reaching
// 169.254.169.254, and the host's own managed-identity variables are cleared,
// so they cannot change what a test sees. After passing tests it checks that
// no goroutine outlived them.
package testmain

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// sourceVars are the environment variables that select or configure a
// managed-identity source.
var sourceVars = []string{
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
	"MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_CLIENT_ID",
	"AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST",
}

// Main prepares the environment, runs the tests and exits with their code,
// or with 1 when they passed but left goroutines running. Before that check
// it closes the idle connections of http.DefaultTransport and calls each of
// closeIdle, since idle keep-alive connections are not leaks.
func Main(m *testing.M, closeIdle ...func()) {
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+ClosedLoopbackAddr())
	for _, name := range sourceVars {
		os.Unsetenv(name)
	}
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		for _, f := range closeIdle {
			f()
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ClosedLoopbackAddr returns a loopback host:port on which nothing listens.
func ClosedLoopbackAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
