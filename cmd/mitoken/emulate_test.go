package main

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken"
	"github.com/mitoken/mitoken/mitokentest"
)

// emulation is "mitoken emulate" running in-process.
type emulation struct {
	cancel context.CancelFunc
	done   chan int // the exit code
	stderr *lockedBuffer
	env    map[string]string
}

// startEmulate runs emulate with args until stop, and returns once it has
// printed the n export lines it should.
func startEmulate(t *testing.T, n int, args ...string) *emulation {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	e := &emulation{cancel: cancel, done: make(chan int, 1), stderr: &lockedBuffer{}, env: map[string]string{}}
	go func() {
		code := run(ctx, append([]string{"emulate"}, args...), pw, e.stderr)
		pw.Close()
		e.done <- code
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Cleanups run last first: stop emulate, then drain its output.
	t.Cleanup(func() {
		for range lines {
		}
	})
	t.Cleanup(func() { e.stop(t) })
	for range n {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "emulate ended early: %s", e.stderr.String())
			m := regexp.MustCompile(`^export ([A-Z_]+)=(.*)$`).FindStringSubmatch(line)
			require.NotNil(t, m, "not an export line: %q", line)
			e.env[m[1]] = strings.Trim(m[2], "'")
		case <-time.After(10 * time.Second):
			t.Fatalf("no export line within 10s; stderr: %s", e.stderr.String())
		}
	}
	return e
}

// stop cancels emulate, as SIGINT does, and returns its exit code.
func (e *emulation) stop(t *testing.T) int {
	t.Helper()
	e.cancel()
	select {
	case code := <-e.done:
		e.done <- code // later calls see it too
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("emulate did not stop within 10s of its context ending")
		return -1
	}
}

// emulated lists, for each source, the variables that emulate prints and
// the one that holds the endpoint's address.
var emulated = []struct {
	source   mitokentest.Source
	names    []string
	endpoint string
}{
	{mitokentest.IMDS, []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST"}, "AZURE_POD_IDENTITY_AUTHORITY_HOST"},
	{mitokentest.AppService, []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER"}, "IDENTITY_ENDPOINT"},
	{mitokentest.Arc, []string{"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"}, "IDENTITY_ENDPOINT"},
	{mitokentest.CloudShell, []string{"MSI_ENDPOINT"}, "MSI_ENDPOINT"},
	{mitokentest.AzureML, []string{"MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID"}, "MSI_ENDPOINT"},
	{mitokentest.ServiceFabric, []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"}, "IDENTITY_ENDPOINT"},
	{mitokentest.WorkloadIdentity, []string{"AZURE_AUTHORITY_HOST", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID"},
		"AZURE_AUTHORITY_HOST"},
}

// emulatedToken gets a token for vault from the source that e serves, with
// e's variables exported: through "mitoken token", or for Arc, whose
// credential also needs the key directory that emulate prints, through
// mitoken.NewArc.
func emulatedToken(t *testing.T, e *emulation, src mitokentest.Source) {
	t.Helper()
	var tok string
	if src == mitokentest.Arc {
		m := regexp.MustCompile(`mitoken\.WithArcTokenDir\("([^"]+)"\)`).FindStringSubmatch(e.stderr.String())
		require.NotNil(t, m, "stderr names the token directory: %s", e.stderr.String())
		cred, err := mitoken.NewArc(mitoken.WithArcTokenDir(m[1]), mitoken.WithCache(mitoken.NewCache()))
		require.NoError(t, err)
		got, err := cred.GetToken(t.Context(), vault)
		require.NoError(t, err)
		tok = got.AccessToken
	} else {
		code, stdout, stderr := runCmd(t, "token", "--source", string(src), "--resource", vault, "--output", "raw")
		require.Equal(t, 0, code, stderr)
		tok = strings.TrimSuffix(stdout, "\n")
	}
	claims, err := mitokentest.DecodeClaims(tok)
	require.NoError(t, err)
	assert.Equal(t, vault, claims.Audience)
}

func TestEmulate(t *testing.T) {
	for _, tc := range emulated {
		t.Run(string(tc.source), func(t *testing.T) {
			e := startEmulate(t, len(tc.names), "--source", string(tc.source))
			for _, name := range tc.names {
				require.Contains(t, e.env, name)
				t.Setenv(name, e.env[name])
			}
			assert.Len(t, e.env, len(tc.names))
			emulatedToken(t, e, tc.source)

			assert.Equal(t, 0, e.stop(t))
			assert.Contains(t, e.stderr.String(), "mitoken emulate: serving "+string(tc.source))
			assert.Contains(t, e.stderr.String(), "mitoken emulate: stopped")
			assertNoToken(t, e.stderr.String())

			// Stopped: nothing listens any more, and the federated token
			// file is gone.
			for name, value := range e.env {
				if u, err := url.Parse(value); err == nil && u.Host != "" {
					_, err = net.Dial("tcp", u.Host)
					assert.Error(t, err, "the emulator stopped listening at %s", name)
				}
				if filepath.IsAbs(value) {
					_, err := os.Stat(value)
					assert.ErrorIs(t, err, fs.ErrNotExist, "the emulator removed %s", name)
				}
			}
		})
	}
}

func TestEmulateAtAnAddress(t *testing.T) {
	for _, tc := range emulated {
		t.Run(string(tc.source), func(t *testing.T) {
			addr := closedLoopbackAddr()
			e := startEmulate(t, len(tc.names), "--source", string(tc.source), "--addr", addr)
			u, err := url.Parse(e.env[tc.endpoint])
			require.NoError(t, err)
			assert.Equal(t, addr, u.Host)

			code, stdout, stderr := runCmd(t, "emulate", "--source", string(tc.source), "--addr", addr)
			assert.Equal(t, 1, code, "the address is taken")
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "listening for "+string(tc.source)+" on "+addr)

			for _, name := range tc.names {
				t.Setenv(name, e.env[name])
			}
			emulatedToken(t, e, tc.source)
			assert.Equal(t, 0, e.stop(t))
		})
	}
}

// emulate's help lists every source with the variables that it prints.
func TestEmulateHelpNamesTheVariables(t *testing.T) {
	srv := mitokentest.NewTestServer(t)
	starts := regexp.MustCompile(`(?m)^  ([a-z]+) {2,}`).FindAllStringSubmatchIndex(emulateHelp, -1)
	require.Len(t, starts, len(sources), "a paragraph for each source")
	for i, m := range starts {
		end := len(emulateHelp)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		name, text := emulateHelp[m[2]:m[3]], emulateHelp[m[0]:end]
		assert.Equal(t, string(sources[i].name), name)
		for v := range srv.Env(mitokentest.Source(name)) {
			assert.Contains(t, text, v, "the help of %s", name)
		}
	}
}
