package oauth2adapter_test

import (
	"testing"

	"github.com/mitoken/mitoken/internal/testmain"
)

// TestMain runs the project's test rules (package internal/testmain): no
// test reaches 169.254.169.254, and no goroutine outlives the tests.
func TestMain(m *testing.M) { testmain.Main(m) }

// closedLoopbackAddr returns a loopback address on which nothing listens.
var closedLoopbackAddr = testmain.ClosedLoopbackAddr
