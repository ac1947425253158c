package wire

import (
	"testing"

	"github.com/mitoken/mitoken/internal/testmain"
)

// TestMain runs the project's test rules (package internal/testmain).
func TestMain(m *testing.M) { testmain.Main(m) }
