package wire

import (
	"net"
	"os"
	"testing"
)

// TestMain points the IMDS host override at a closed loopback port, as in
// every test package of mitoken, so nothing here can reach a real endpoint.
func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+addr)
	os.Exit(m.Run())
}
