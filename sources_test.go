package mitoken

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/clock"
)

// Helpers shared by the App Service, Arc and detection tests.

// srcRequest is what a fake endpoint saw of one request.
type srcRequest struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Form   url.Values // the url-encoded body of a POST, else nil
}

// srcServer is a loopback token endpoint that records every request and
// answers through answer, which gets the request's index (from 0).
type srcServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []srcRequest
	answer func(w http.ResponseWriter, r *http.Request, n int)
}

func newSrcServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *srcServer {
	t.Helper()
	return startSrcServer(t, false, answer)
}

// startSrcServer is newSrcServer, serving https (with httptest's built-in
// certificate) when useTLS is set.
func startSrcServer(t *testing.T, useTLS bool, answer func(w http.ResponseWriter, r *http.Request, n int)) *srcServer {
	t.Helper()
	s := &srcServer{answer: answer}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.reqs)
		rec := srcRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
		if r.Method == http.MethodPost && r.ParseForm() == nil {
			rec.Form = r.PostForm
		}
		s.reqs = append(s.reqs, rec)
		s.mu.Unlock()
		s.answer(w, r, n)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *srcServer) requests() []srcRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]srcRequest(nil), s.reqs...)
}

// srcTokenBody is a 200 body in the App Service / IMDS shape.
func srcTokenBody(token string, expiresOn time.Time) string {
	return fmt.Sprintf(`{"access_token":%q,"expires_on":"%d","resource":"https://vault.azure.net","token_type":"Bearer","client_id":"cid"}`,
		token, expiresOn.Unix())
}

func srcWriteToken(w http.ResponseWriter, token string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(srcTokenBody(token, time.Now().Add(time.Hour))))
}

func srcWriteError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, code, desc)
}

// srcLog collects log output; background refreshes may write to it.
type srcLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *srcLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *srcLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// srcOptions gives a test its own cache (waited for at cleanup), a debug
// logger writing into the returned srcLog, and retry waits of a millisecond.
func srcOptions(t *testing.T, extra ...Option) ([]Option, *srcLog) {
	t.Helper()
	cache := newCache(clock.Real{})
	t.Cleanup(cache.running.Wait)
	logs := &srcLog{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []Option{
		WithCache(cache),
		WithLogger(logger),
		func(c *config) { c.retryWait = func(time.Duration) time.Duration { return time.Millisecond } },
	}
	return append(opts, extra...), logs
}

// srcClearEnv empties every variable that source detection reads.
func srcClearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{envIdentityEP, envIdentityHeader, envIMDSEndpoint, envClientID,
		envMSIEndpoint, envMSISecret, envThumbprint, envDefaultMLID, envTokenFile, envTenantID, envAuthorityHost} {
		t.Setenv(k, "")
	}
	srcSetHimds(t, "")
}

// srcSetHimds points the Arc agent presence check at path for one test.
func srcSetHimds(t *testing.T, path string) {
	t.Helper()
	old := arcHimdsPath
	arcHimdsPath = path
	t.Cleanup(func() { arcHimdsPath = old })
}

func srcRequireQuery(t *testing.T, want map[string]string, got url.Values) {
	t.Helper()
	flat := map[string]string{}
	for k, v := range got {
		require.Len(t, v, 1, "query parameter %s appears %s times", k, strconv.Itoa(len(v)))
		flat[k] = v[0]
	}
	require.Equal(t, want, flat)
}
