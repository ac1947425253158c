package azadapter_test

import (
	"net"
	"os"
	"testing"
)

// TestMain points the IMDS host override at a closed loopback port before any
// test runs, so a test that forgets its endpoint fails on loopback instead of
// reaching out to 169.254.169.254.
func TestMain(m *testing.M) {
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+closedLoopbackAddr())
	os.Exit(m.Run())
}

// closedLoopbackAddr returns a loopback address on which nothing listens.
func closedLoopbackAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
