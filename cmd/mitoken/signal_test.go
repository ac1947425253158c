//go:build unix

package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEmulateStopsOnSignal builds the command and checks that main wires
// SIGINT and SIGTERM to a clean shutdown with exit code 0.
func TestEmulateStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	bin := filepath.Join(t.TempDir(), "mitoken")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "emulate")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			stderr := &lockedBuffer{}
			cmd.Stderr = stderr
			require.NoError(t, cmd.Start())
			done, exited := make(chan error, 1), make(chan struct{})
			go func() {
				done <- cmd.Wait()
				close(exited)
			}()
			t.Cleanup(func() {
				cmd.Process.Kill() // a no-op once it has exited
				<-exited
			})

			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err, "stderr: %s", stderr.String())
			assert.True(t, strings.HasPrefix(line, "export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:"), line)

			require.NoError(t, cmd.Process.Signal(sig))
			select {
			case err := <-done:
				assert.NoError(t, err, "exit code 0; stderr: %s", stderr.String())
				assert.Contains(t, stderr.String(), "mitoken emulate: stopped")
			case <-time.After(10 * time.Second):
				t.Fatalf("emulate did not stop within 10s of %s", sig)
			}
		})
	}
}
