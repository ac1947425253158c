package main

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mitoken/mitoken/internal/testmain"
)

// TestMain runs the project's test rules (package internal/testmain): no
// test reaches 169.254.169.254, the host's managed-identity variables are
// cleared, and no goroutine outlives the tests.
func TestMain(m *testing.M) { testmain.Main(m) }

// closedLoopbackAddr returns a loopback address on which nothing listens.
var closedLoopbackAddr = testmain.ClosedLoopbackAddr

// runCmd runs the command in-process and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// jwt matches a whole JWT-shaped token: three base64url parts.
var jwt = regexp.MustCompile(`[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`)

func assertNoToken(t *testing.T, output string) {
	t.Helper()
	assert.False(t, jwt.MatchString(output), "a whole token was printed:\n%s", output)
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring, when set
		stderr string // a substring, when set
	}{
		{name: "no command prints the usage on stderr", args: nil, code: 2, stderr: "Commands:"},
		{name: "help prints the usage on stdout", args: []string{"help"}, code: 0, stdout: "Start with: go run ./cmd/mitoken demo"},
		{name: "--help is help", args: []string{"--help"}, code: 0, stdout: "3  no managed identity is available here"},
		{name: "help names a command", args: []string{"help", "token"}, code: 0, stdout: "Usage: mitoken token --resource R"},
		{name: "token --help lists its flags and exit codes", args: []string{"token", "--help"}, code: 0, stdout: "--client-id string"},
		{name: "demo -h is help", args: []string{"demo", "-h"}, code: 0, stdout: "Usage: mitoken demo"},
		{name: "emulate --help is help", args: []string{"emulate", "--help"}, code: 0, stdout: "--addr string"},
		{name: "an unknown command", args: []string{"bogus"}, code: 2, stderr: `unknown command "bogus"`},
		{name: "an unknown flag", args: []string{"token", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{name: "a flag without its value", args: []string{"token", "--resource"}, code: 2, stderr: "flag needs an argument"},
		{name: "a stray argument", args: []string{"demo", "now"}, code: 2, stderr: `unexpected argument "now"`},
		{name: "token needs --resource", args: []string{"token"}, code: 2, stderr: "--resource is required"},
		{name: "token takes one identity flag", args: []string{"token", "--resource", "r", "--client-id", "a", "--object-id", "b"}, code: 2,
			stderr: "--client-id and --object-id both name an identity"},
		{name: "Arc has no user-assigned identity", args: []string{"token", "--resource", "r", "--source", "arc", "--resource-id", "x"}, code: 2,
			stderr: "remove --resource-id"},
		{name: "an unknown output", args: []string{"token", "--resource", "r", "--output", "xml"}, code: 2, stderr: `--output "xml" is not one of`},
		{name: "an unknown token source", args: []string{"token", "--resource", "r", "--source", "gcp"}, code: 2,
			stderr: `--source "gcp" is not one of auto, imds, appservice, arc, cloudshell, azureml, servicefabric and workloadidentity`},
		{name: "a zero timeout", args: []string{"token", "--resource", "r", "--timeout", "0s"}, code: 2, stderr: "--timeout must be positive"},
		{name: "a resource with a space", args: []string{"token", "--resource", "a b", "--source", "imds"}, code: 2, stderr: "invalid resource"},
		{name: "an unknown emulated source", args: []string{"emulate", "--source", "gcp"}, code: 2,
			stderr: `--source "gcp" is not one of imds, appservice, arc, cloudshell, azureml, servicefabric and workloadidentity`},
		{name: "emulate cannot serve auto", args: []string{"emulate", "--source", "auto"}, code: 2, stderr: `--source "auto" is not one of imds,`},
		{name: "emulate refuses a non-loopback address", args: []string{"emulate", "--addr", "0.0.0.0:0"}, code: 2, stderr: "is not a loopback address"},
		{name: "emulate refuses an address without a port", args: []string{"emulate", "--addr", "127.0.0.1"}, code: 2, stderr: "is not host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr)
			if tc.stdout != "" {
				assert.Contains(t, stdout, tc.stdout)
				assert.Empty(t, stderr)
			}
			if tc.stderr != "" {
				assert.Contains(t, stderr, tc.stderr)
				assert.Empty(t, stdout)
			}
			if tc.code == 2 {
				assert.True(t, strings.Contains(stderr, "Usage:") || strings.Contains(stderr, "Check the flags"), "a usage error shows the usage: %s", stderr)
			}
		})
	}
}
