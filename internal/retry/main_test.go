package retry

import (
	"net"
	"os"
	"testing"
)

// TestMain follows the project rule for every test package: point the IMDS
// host override at a closed loopback port first.
func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	os.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://"+l.Addr().String())
	l.Close()
	os.Exit(m.Run())
}
