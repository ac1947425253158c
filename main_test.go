package mitoken

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain points the IMDS host override at a closed loopback port before any
// test runs, so a test that forgets its own endpoint fails on loopback
// instead of reaching out to 169.254.169.254. After the tests it checks that
// no goroutine outlived them: background refreshes, detached requests and
// hanging handlers must all have ended.
func TestMain(m *testing.M) {
	os.Setenv(envIMDSHost, "http://"+closedLoopbackAddr())
	code := m.Run()
	if code == 0 {
		// Idle keep-alive connections of the shared pools are not leaks:
		// close them so that their read and write loops end before the check.
		sharedTransport.CloseIdleConnections()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
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
