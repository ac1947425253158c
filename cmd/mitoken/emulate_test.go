package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/url"
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

func TestEmulate(t *testing.T) {
	tests := []struct {
		source  mitokentest.Source
		names   []string
		newCred func(t *testing.T, e *emulation, opts ...mitoken.Option) (mitoken.Credential, error)
	}{
		{mitokentest.IMDS, []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST"},
			func(_ *testing.T, _ *emulation, opts ...mitoken.Option) (mitoken.Credential, error) {
				return mitoken.NewIMDS(opts...)
			}},
		{mitokentest.AppService, []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER"},
			func(_ *testing.T, _ *emulation, opts ...mitoken.Option) (mitoken.Credential, error) {
				return mitoken.NewAppService(opts...)
			}},
		{mitokentest.Arc, []string{"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"},
			func(t *testing.T, e *emulation, opts ...mitoken.Option) (mitoken.Credential, error) {
				m := regexp.MustCompile(`mitoken\.WithArcTokenDir\("([^"]+)"\)`).FindStringSubmatch(e.stderr.String())
				require.NotNil(t, m, "stderr names the token directory: %s", e.stderr.String())
				return mitoken.NewArc(append(opts, mitoken.WithArcTokenDir(m[1]))...)
			}},
	}
	for _, tc := range tests {
		t.Run(string(tc.source), func(t *testing.T) {
			e := startEmulate(t, len(tc.names), "--source", string(tc.source))
			for _, name := range tc.names {
				require.Contains(t, e.env, name)
				t.Setenv(name, e.env[name])
			}
			assert.Len(t, e.env, len(tc.names))

			cred, err := tc.newCred(t, e, mitoken.WithCache(mitoken.NewCache()))
			require.NoError(t, err)
			tok, err := cred.GetToken(t.Context(), vault)
			require.NoError(t, err)
			claims, err := mitokentest.DecodeClaims(tok.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, vault, claims.Audience)

			assert.Equal(t, 0, e.stop(t))
			assert.Contains(t, e.stderr.String(), "mitoken emulate: serving "+string(tc.source))
			assert.Contains(t, e.stderr.String(), "mitoken emulate: stopped")
			assertNoToken(t, e.stderr.String())

			host := e.env["IDENTITY_ENDPOINT"]
			if tc.source == mitokentest.IMDS {
				host = e.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
			}
			u, err := url.Parse(host)
			require.NoError(t, err)
			_, err = net.Dial("tcp", u.Host)
			assert.Error(t, err, "the emulator stopped listening")
		})
	}
}

func TestEmulateAtAnAddress(t *testing.T) {
	addr := closedLoopbackAddr()
	e := startEmulate(t, 1, "--addr", addr)
	assert.Equal(t, "http://"+addr, e.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"])

	code, stdout, stderr := runCmd(t, "emulate", "--addr", addr)
	assert.Equal(t, 1, code, "the address is taken")
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "listening for imds on "+addr)

	t.Setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", e.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"])
	code, _, stderr = runCmd(t, "token", "--resource", vault, "--output", "raw")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, 0, e.stop(t))
}
