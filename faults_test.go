package mitoken

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mitoken/mitoken/internal/clock"
	"github.com/mitoken/mitoken/internal/retry"
)

// The fault matrix: one row per scripted endpoint behaviour, run against
// every source the behaviour applies to. Each run checks the error kind, the
// attempts made, the fake time the retry policy asked to wait, that nothing
// bad was cached (the next call behaves right), the log records, and that no
// secret reached an error, a log record, fmt output or a panic.

const (
	faultAccessToken = "eyJ0eXAi.FAULT-MATRIX-ACCESS-TOKEN.c2ln"
	faultSecret      = "APP-SERVICE-SECRET-7f3a9c"
	faultClientID    = "client-id-4711-in-query"
	outsideKey       = "OUTSIDE-FILE-CONTENTS-93ab"
)

var allSources = []string{imdsSource, appServiceSource, arcSource, cloudShellSource, azureMLSource, serviceFabricSource, workloadSource}

// The sources grouped by the retry set they share: IMDS's (404 and 410
// retried, 408 not) and App Service's (408 retried, 404 not), which Cloud
// Shell, Azure ML, Service Fabric and Entra ID use too.
var (
	imdsLike    = []string{imdsSource, arcSource}
	appLike     = []string{appServiceSource, cloudShellSource, azureMLSource, serviceFabricSource, workloadSource}
	withSecrets = []string{appServiceSource, azureMLSource, serviceFabricSource, workloadSource}
)

var policies = map[string]retry.Policy{
	imdsSource: retry.IMDS, appServiceSource: retry.AppService, arcSource: retry.Arc,
	cloudShellSource: retry.AppService, azureMLSource: retry.AppService, serviceFabricSource: retry.AppService,
	workloadSource: retry.Entra,
}

// secretHeaders are the headers that carry each source's secret.
var secretHeaders = map[string]string{appServiceSource: appServiceHeader, azureMLSource: azureMLHeader, serviceFabricSource: serviceFabricHeader}

// reply is one scripted answer of a fault endpoint. In body, {{token}},
// {{secret}} (the source's secret as received: its secret header, or the
// client assertion of workload identity) and {{auth}} (the Authorization
// header received) are replaced before sending.
type reply struct {
	status      int
	header      map[string]string
	body        string
	hang        bool          // accept and never answer
	reset       bool          // start a 200 and drop the connection mid-body
	trickle     time.Duration // send a valid token body in ten chunks this far apart
	untilWaited time.Duration // repeat this reply until the recorded waits add up to this
}

// faultServer is a token endpoint of one source that plays replies. For
// Arc, challenges script the unauthenticated first request (otherwise a key
// file is written and its challenge sent) and steps the authorized one.
type faultServer struct {
	*httptest.Server
	source     string
	dir        string // Arc token directory
	waits      *waits
	mu         sync.Mutex
	steps      []reply
	challenges []reply
	keys       []string // Arc keys handed out
	hits       atomic.Int32
	release    chan struct{}
}

// newFaultServer starts the endpoint: over TLS for Service Fabric, whose
// client trusts the certificate by its thumbprint (see thumbprint).
func newFaultServer(t *testing.T, source, dir string, w *waits) *faultServer {
	f := &faultServer{source: source, dir: dir, waits: w, release: make(chan struct{})}
	if source == serviceFabricSource {
		f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	} else {
		f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	}
	t.Cleanup(func() { close(f.release); f.Close() })
	return f
}

// thumbprint is the SHA-1 thumbprint of the TLS server's certificate.
func (f *faultServer) thumbprint() string {
	sum := sha1.Sum(f.Certificate().Raw)
	return hex.EncodeToString(sum[:])
}

// secretOf returns the source's secret as r carries it.
func (f *faultServer) secretOf(r *http.Request) string {
	if f.source == workloadSource {
		return r.PostFormValue("client_assertion")
	}
	if h, ok := secretHeaders[f.source]; ok {
		return r.Header.Get(h)
	}
	return ""
}

func (f *faultServer) next(queue *[]reply) *reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(*queue) > 0 {
		r := (*queue)[0]
		if r.untilWaited > 0 && f.waits.total() < r.untilWaited {
			return &r // stays queued until enough was waited
		}
		*queue = (*queue)[1:]
		if r.untilWaited == 0 {
			return &r
		}
	}
	return nil
}

func (f *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	switch f.source {
	case appServiceSource, azureMLSource, serviceFabricSource, workloadSource:
		if f.secretOf(r) != faultSecret {
			srcWriteError(w, http.StatusUnauthorized, "unauthorized", "wrong secret")
			return
		}
	case cloudShellSource:
		if r.Method != http.MethodPost || r.Header.Get("Metadata") != "true" {
			srcWriteError(w, http.StatusBadRequest, "invalid_request", "a form POST with Metadata: true expected")
			return
		}
	case arcSource:
		auth := r.Header.Get("Authorization")
		if auth == "" {
			if c := f.next(&f.challenges); c != nil {
				f.play(w, r, c)
				return
			}
			key := fmt.Sprintf("ARC-KEY-%d-%d", time.Now().UnixNano(), f.hits.Load())
			path := filepath.Join(f.dir, fmt.Sprintf("%d.key", f.hits.Load()))
			if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			f.mu.Lock()
			f.keys = append(f.keys, key)
			f.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="`+path+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !f.knownKey(strings.TrimPrefix(auth, "Basic ")) {
			srcWriteError(w, http.StatusUnauthorized, "unauthorized", "unknown key")
			return
		}
	}
	if s := f.next(&f.steps); s != nil {
		f.play(w, r, s)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, faultTokenBody(time.Now().Add(time.Hour)))
}

func (f *faultServer) knownKey(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, key := range f.keys {
		if key == k {
			return true
		}
	}
	return false
}

func (f *faultServer) arcKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func faultTokenBody(expiresOn time.Time) string {
	return fmt.Sprintf(`{"access_token":%q,"expires_on":"%d","expires_in":"3599","resource":"https://vault.azure.net","token_type":"Bearer"}`,
		faultAccessToken, expiresOn.Unix())
}

func (f *faultServer) play(w http.ResponseWriter, r *http.Request, s *reply) {
	switch {
	case s.hang:
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case s.reset:
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"access_token\":\"" + faultAccessToken[:10])
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
		return
	case s.trickle > 0:
		body := faultTokenBody(time.Now().Add(time.Hour))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		chunk := len(body)/10 + 1
		for i := 0; i < len(body); i += chunk {
			_, _ = w.Write([]byte(body[i:min(i+chunk, len(body))]))
			_ = http.NewResponseController(w).Flush()
			select {
			case <-time.After(s.trickle):
			case <-r.Context().Done():
				return
			case <-f.release:
				return
			}
		}
		return
	}
	for k, v := range s.header {
		if d, err := time.ParseDuration(v); err == nil && strings.HasPrefix(v, "+") {
			v = time.Now().Add(d).UTC().Format(http.TimeFormat) // an HTTP date this far ahead
		}
		w.Header().Set(k, v)
	}
	w.WriteHeader(s.status)
	fmt.Fprint(w, strings.NewReplacer("{{token}}", faultAccessToken, "{{secret}}", f.secretOf(r),
		"{{auth}}", r.Header.Get("Authorization")).Replace(s.body))
}

// errKind is the kind of error a row expects.
type errKind int

const (
	noError       errKind = iota
	kindResponse          // *ResponseError
	kindUnavail           // ErrUnavailable without a *ResponseError
	kindDeadline          // the caller's context.DeadlineExceeded
	kindTransport         // a transport failure: neither of the above
	kindRefused           // an Arc challenge refused before any key was read
	kindInternal          // a recovered panic
)

// maxTries stands for "every attempt the source's policy allows".
const maxTries = -1

type faultRow struct {
	name    string
	sources []string // nil: every source
	steps   []reply
	// challenge builds a scripted Arc challenge; dir is the token
	// directory, outside a directory beside it holding secret.key.
	challenge func(t *testing.T, dir, outside string) reply
	refused   bool // the endpoint is a closed port
	panics    bool // the HTTP client panics once, with the secrets in the value
	hang      bool // the caller's ctx ends first; the detached request is bounded

	attemptTimeout time.Duration // per-attempt timeout for this row

	kind     errKind
	status   int
	attempts int           // requests the token endpoint got (Arc: authorized ones); maxTries for the policy's all
	minWait  time.Duration // least fake time waited
	maxWait  time.Duration // most fake time waited; 0: the policy's schedule for the retries made
	msg      string
}

func statusThen200(codes ...int) []reply {
	out := make([]reply, len(codes))
	for i, c := range codes {
		out[i] = reply{status: c}
	}
	return out
}

func repeatReply(r reply, n int) []reply {
	out := make([]reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func body200(body string) []reply { return []reply{{status: 200, body: body}} }

var faultRows = []faultRow{
	{name: "200 at once", attempts: 1},
	{name: "500 then 200 is retried", steps: statusThen200(500), attempts: 2},
	{name: "502, 503, 504 then 200 are retried", steps: statusThen200(502, 503, 504), attempts: 4},
	{name: "429 then 200 is retried", steps: statusThen200(429), attempts: 2},
	{name: "503 until the retries run out", steps: repeatReply(reply{status: 503, body: `{"error":"busy","error_description":"try later"}`}, 10),
		kind: kindResponse, status: 503, attempts: maxTries, msg: "HTTP 503 busy: try later"},
	{name: "404 is retried by IMDS and Arc", sources: imdsLike, steps: statusThen200(404), attempts: 2},
	{name: "404 is not retried by the other sources", sources: appLike, steps: statusThen200(404),
		kind: kindResponse, status: 404, attempts: 1},
	{name: "408 is retried by the other sources", sources: appLike, steps: statusThen200(408), attempts: 2},
	{name: "408 is not retried by IMDS and Arc", sources: imdsLike, steps: statusThen200(408),
		kind: kindResponse, status: 408, attempts: 1},
	{name: "400 is not retried", steps: []reply{{status: 400, body: `{"error":"invalid_request","error_description":"bad resource"}`}},
		kind: kindResponse, status: 400, attempts: 1, msg: "bad resource"},
	{name: "410 for 60 s then 200", sources: []string{imdsSource}, steps: []reply{{status: 410, untilWaited: 60 * time.Second}},
		minWait: 60 * time.Second, maxWait: 96 * time.Second},
	{name: "Retry-After in seconds is honoured", steps: []reply{{status: 429, header: map[string]string{"Retry-After": "7"}}},
		attempts: 2, minWait: 7 * time.Second, maxWait: 7 * time.Second},
	{name: "Retry-After as an HTTP date is honoured", steps: []reply{{status: 503, header: map[string]string{"Retry-After": "+20s"}}},
		attempts: 2, minWait: 18 * time.Second, maxWait: 21 * time.Second},
	{name: "Retry-After beyond the cap gives up at once", steps: []reply{{status: 503, header: map[string]string{"Retry-After": "3600"}}},
		kind: kindResponse, status: 503, attempts: 1},
	{name: "redirect is not followed", steps: []reply{{status: 307, header: map[string]string{"Location": "http://127.0.0.1:1/elsewhere"}}},
		kind: kindResponse, status: 307, attempts: 1, msg: "redirect"},
	{name: "connection refused", refused: true, kind: kindUnavail, attempts: maxTries},
	{name: "connection reset mid-body, then 200", steps: []reply{{reset: true}}, attempts: 2},
	{name: "connection reset mid-body every time", steps: repeatReply(reply{reset: true}, 10), kind: kindTransport, attempts: maxTries},
	{name: "accept and hang", steps: []reply{{hang: true}}, hang: true, kind: kindDeadline, attempts: 1},
	{name: "slow body beyond the per-attempt timeout, then 200", steps: []reply{{trickle: 60 * time.Millisecond}},
		attemptTimeout: 250 * time.Millisecond, attempts: 2},
	{name: "slow body within the per-attempt timeout", steps: []reply{{trickle: 10 * time.Millisecond}},
		attemptTimeout: 5 * time.Second, attempts: 1},
	{name: "malformed JSON", steps: body200(`{"access_token":"{{token}}",`), kind: kindResponse, status: 200, attempts: 1, msg: "malformed JSON"},
	{name: "JSON with wrong types", steps: body200(`{"access_token":["{{token}}"],"expires_in":"3600"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "wrong type"},
	{name: "missing access_token", steps: body200(`{"expires_in":"3600","token_type":"Bearer"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "access_token is missing"},
	{name: "missing expiry", steps: body200(`{"access_token":"{{token}}","token_type":"Bearer"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "neither expires_on nor expires_in"},
	{name: "expiry in the past", steps: body200(`{"access_token":"{{token}}","expires_on":"1000000000"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "already expired"},
	{name: "expiry absurdly far away", steps: body200(`{"access_token":"{{token}}","expires_on":"32503680000"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "implausible expiry"},
	{name: "a 1 MiB body", steps: body200(`{"access_token":"{{token}}","padding":"` + strings.Repeat("x", 1<<20) + `"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "larger than 256 KiB"},
	{name: "token_type other than Bearer", steps: body200(`{"access_token":"{{token}}","expires_in":"3600","token_type":"pop"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "only Bearer"},
	{name: "a 200 with an error field echoing the token", steps: body200(`{"access_token":"{{token}}","expires_in":"3600","error":"{{token}}"}`),
		kind: kindResponse, status: 200, attempts: 1, msg: "error field"},
	// Service Fabric always connects through its own pinning transport, so
	// a WithHTTPClient transport cannot panic there.
	{name: "the HTTP client panics with the secrets in the value", panics: true, kind: kindInternal, attempts: 0, msg: "panicked",
		sources: []string{imdsSource, appServiceSource, arcSource, cloudShellSource, azureMLSource, workloadSource}},
	{name: "IMDS says the identity is not assigned", sources: []string{imdsSource},
		steps: []reply{{status: 400, body: `{"error":"invalid_request","error_description":"Identity not found"}`}},
		kind:  kindResponse, status: 400, attempts: 1, msg: "is not assigned"},
	{name: "endpoint rotated: the first secret is rejected and echoed", sources: withSecrets,
		steps: []reply{{status: 401, body: `{"error":"unauthorized","error_description":"secret {{secret}} is not valid"}`}},
		kind:  kindResponse, status: 401, attempts: 1, msg: "is not valid"},
	{name: "Entra ID refuses the federated token and echoes it", sources: []string{workloadSource},
		steps: []reply{{status: 400, body: `{"error":"invalid_client","error_description":"AADSTS70021: no matching federated identity record for assertion {{secret}}"}`}},
		kind:  kindResponse, status: 400, attempts: 1, msg: "refused the federated token"},
	{name: "Arc agent refuses the key from its own challenge and echoes it", sources: []string{arcSource},
		steps: []reply{{status: 401, body: `{"error":"unauthorized","error_description":"key {{auth}} is unknown"}`}},
		kind:  kindResponse, status: 401, attempts: 1, msg: "refused the key"},
	{name: "Arc answers the first request with 200", sources: []string{arcSource},
		challenge: func(*testing.T, string, string) reply {
			return reply{status: 200, body: faultTokenBody(time.Now().Add(time.Hour))}
		},
		kind: kindResponse, status: 200, msg: "instead of the expected 401"},
	{name: "Arc challenge without WWW-Authenticate", sources: []string{arcSource},
		challenge: func(*testing.T, string, string) reply { return reply{status: 401} },
		kind:      kindRefused, msg: "no WWW-Authenticate"},
	{name: "Arc challenge of another scheme", sources: []string{arcSource},
		challenge: func(_ *testing.T, _, outside string) reply {
			return arcChallenge(`Bearer realm="` + filepath.Join(outside, "secret.key") + `"`)
		},
		kind: kindRefused, msg: "not a Basic challenge"},
	{name: "Arc realm outside the token directory", sources: []string{arcSource},
		challenge: func(_ *testing.T, _, outside string) reply {
			return arcRealm(filepath.Join(outside, "secret.key"))
		},
		kind: kindRefused, msg: "not directly inside"},
	{name: "Arc realm climbing out with ..", sources: []string{arcSource},
		challenge: func(_ *testing.T, dir, outside string) reply {
			return arcRealm(dir + "/../" + filepath.Base(outside) + "/secret.key")
		},
		kind: kindRefused, msg: `".."`},
	{name: "Arc realm is a symlink to a file outside", sources: []string{arcSource},
		challenge: func(t *testing.T, dir, outside string) reply {
			require.NoError(t, os.Symlink(filepath.Join(outside, "secret.key"), filepath.Join(dir, "link.key")))
			return arcRealm(filepath.Join(dir, "link.key"))
		},
		kind: kindRefused, msg: "symbolic link"},
	{name: "Arc realm without the .key extension", sources: []string{arcSource},
		challenge: func(t *testing.T, dir, _ string) reply {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte(outsideKey), 0o600))
			return arcRealm(filepath.Join(dir, "passwd"))
		},
		kind: kindRefused, msg: "does not end in .key"},
	{name: "Arc key file larger than 4096 bytes", sources: []string{arcSource},
		challenge: func(t *testing.T, dir, _ string) reply {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "big.key"), []byte(strings.Repeat(outsideKey, 400)), 0o600))
			return arcRealm(filepath.Join(dir, "big.key"))
		},
		kind: kindRefused, msg: "at most 4096"},
	{name: "Arc realm is a directory", sources: []string{arcSource},
		challenge: func(t *testing.T, dir, _ string) reply {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.key"), 0o700))
			return arcRealm(filepath.Join(dir, "sub.key"))
		},
		kind: kindRefused, msg: "is a directory"},
	{name: "Arc realm is a FIFO", sources: []string{arcSource},
		challenge: func(t *testing.T, dir, _ string) reply {
			require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.key"), 0o600))
			return arcRealm(filepath.Join(dir, "fifo.key"))
		},
		kind: kindRefused, msg: "not a regular file"},
	{name: "Arc realm names a missing file", sources: []string{arcSource},
		challenge: func(_ *testing.T, dir, _ string) reply {
			return arcRealm(filepath.Join(dir, "missing.key"))
		},
		kind: kindRefused, msg: "does not exist"},
}

func arcChallenge(h string) reply {
	return reply{status: 401, header: map[string]string{"WWW-Authenticate": h}}
}

// arcRealm is a Basic challenge naming path, quoted (test paths hold commas).
func arcRealm(path string) reply { return arcChallenge(`Basic realm="` + path + `"`) }

// scan collects every text a row produced, to look for secrets in.
type scan struct {
	mu    sync.Mutex
	texts []string
}

func (s *scan) add(texts ...string) {
	s.mu.Lock()
	s.texts = append(s.texts, texts...)
	s.mu.Unlock()
}

// addFmt adds v as every fmt verb prints it.
func (s *scan) addFmt(v any) {
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		s.add(fmt.Sprintf(verb, v))
	}
}

func TestFaultMatrix(t *testing.T) {
	rows := 0
	for _, row := range faultRows {
		sources := row.sources
		if sources == nil {
			sources = allSources
		}
		for _, src := range sources {
			rows++
			t.Run(src+"/"+row.name, func(t *testing.T) { runFaultRow(t, row, src) })
		}
	}
	assert.GreaterOrEqual(t, len(faultRows), 25)
	t.Logf("%d behaviours, %d runs", len(faultRows), rows)
}

func runFaultRow(t *testing.T, row faultRow, src string) {
	policy := policies[src]
	wantAttempts := row.attempts
	if wantAttempts == maxTries {
		wantAttempts = policy.MaxRetries + 1
	}
	dir, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.key"), []byte(outsideKey), 0o600))

	w := &waits{}
	f := newFaultServer(t, src, dir, w)
	f.steps = append(f.steps, row.steps...)
	if row.challenge != nil {
		f.challenges = append(f.challenges, row.challenge(t, dir, outside))
	}
	clk := clock.NewFake(time.Now())
	cache := newCache(clk)
	t.Cleanup(cache.running.Wait)
	logs := &captureHandler{store: &records{}}
	opts := []Option{WithEndpoint(f.URL), WithCache(cache), WithLogger(slog.New(logs)), withWaits(w),
		func(c *config) { c.fetchTimeout = 2 * time.Second; c.attemptTimeout = row.attemptTimeout }}
	if row.hang {
		opts = append(opts, func(c *config) { c.fetchTimeout = 300 * time.Millisecond })
	}
	if row.refused {
		scheme := "http://"
		if src == serviceFabricSource {
			scheme = "https://"
		}
		opts = append(opts, WithEndpoint(scheme+closedLoopbackAddr()))
	}
	var panicked atomic.Bool
	if row.panics {
		opts = append(opts, WithHTTPClient(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if panicked.CompareAndSwap(false, true) {
				var body []byte
				if r.Body != nil {
					body, _ = io.ReadAll(r.Body)
				}
				panic(fmt.Sprintf("transport bug: %s %v %s %s", r.URL, r.Header, body, faultAccessToken))
			}
			return http.DefaultTransport.RoundTrip(r)
		})}))
	}
	var cred interface {
		Credential
		Close() error
	}
	var err error
	switch src {
	case imdsSource:
		cred, err = NewIMDS(append(opts, WithClientID(faultClientID))...)
	case appServiceSource:
		cred, err = NewAppService(append(opts, WithClientID(faultClientID), WithIdentityHeader(faultSecret))...)
	case arcSource:
		cred, err = NewArc(append(opts, WithArcTokenDir(dir))...)
	case cloudShellSource:
		cred, err = NewCloudShell(opts...)
	case azureMLSource:
		cred, err = NewAzureML(append(opts, WithClientID(faultClientID), WithIdentityHeader(faultSecret))...)
	case serviceFabricSource:
		cred, err = NewServiceFabric(append(opts, WithIdentityHeader(faultSecret), WithServerThumbprint(f.thumbprint()))...)
	case workloadSource:
		file := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(file, []byte(faultSecret), 0o600))
		cred, err = NewWorkloadIdentity(append(opts, WithClientID(faultClientID), WithTenantID("tenant-4711"),
			WithFederatedTokenFile(file))...)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = cred.Close() })

	found := &scan{}
	call := func(ctx context.Context) (tok Token, err error) {
		defer func() {
			if r := recover(); r != nil {
				found.add(fmt.Sprint(r))
				t.Errorf("GetToken panicked")
				err = errors.New("panicked")
			}
		}()
		return cred.GetToken(ctx, "https://vault.azure.net")
	}
	ctx, cancel := context.WithCancel(context.Background())
	if row.hang {
		ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	}
	defer cancel()

	tok, err := call(ctx)
	cache.running.Wait() // the detached request has ended, however the caller left
	hits := int(f.hits.Load())
	retries := len(w.d)

	// Attempts made.
	switch {
	case row.refused:
		assert.Zero(t, hits)
		assert.Equal(t, wantAttempts, retries+1, "attempts (retries waited for, plus the first)")
	case row.panics:
		assert.Zero(t, hits, "the request panicked before it was sent")
	case row.challenge != nil:
		assert.Equal(t, 1, hits, "only the challenge was requested")
	case row.untilWaited():
		assert.Equal(t, retries+1, hits, "attempts")
		assert.LessOrEqual(t, hits, policy.MaxRetries+1, "attempts")
	case src == arcSource:
		assert.Equal(t, wantAttempts+1, hits, "the challenge plus the token attempts")
	default:
		assert.Equal(t, wantAttempts, hits, "attempts")
	}

	// Fake time waited.
	bound := row.maxWait
	if bound == 0 {
		for i := 0; i < max(wantAttempts-1, 0); i++ {
			bound += policy.MaxDelay(i)
		}
	}
	assert.LessOrEqual(t, w.total(), bound, "fake time waited")
	assert.GreaterOrEqual(t, w.total(), row.minWait, "fake time waited")

	// The error kind.
	var re *ResponseError
	var ce *challengeError
	var pe *panicError
	switch row.kind {
	case noError:
		require.NoError(t, err)
		assert.Equal(t, faultAccessToken, tok.AccessToken)
	case kindResponse:
		require.ErrorAs(t, err, &re)
		assert.Equal(t, row.status, re.StatusCode)
		assert.Equal(t, src, re.Source)
		assert.Equal(t, hits, re.Attempts, "the error counts the requests made")
	case kindUnavail:
		assert.ErrorIs(t, err, ErrUnavailable)
		assert.False(t, errors.As(err, &re))
	case kindDeadline:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	case kindTransport:
		require.Error(t, err)
		assert.False(t, errors.As(err, &re), "a transport failure is not an answer")
		assert.NotErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), fmt.Sprintf("after %d attempt(s)", wantAttempts))
	case kindRefused:
		require.ErrorAs(t, err, &ce)
		assert.NotErrorIs(t, err, ErrUnavailable)
	case kindInternal:
		require.ErrorAs(t, err, &pe)
	}
	if row.kind != noError {
		assert.Empty(t, tok.AccessToken)
		assert.Contains(t, err.Error(), row.msg)
		assert.NotContains(t, err.Error(), "resource=", "errors never carry the query string")
		found.add(err.Error())
		found.addFmt(err)
		if re != nil {
			found.addFmt(*re)
		}
	}
	found.addFmt(tok)
	found.addFmt(&tok)
	found.addFmt(cred)
	found.addFmt(&Transport{Credential: cred, Resource: "https://vault.azure.net"})

	// Logging: one debug record per attempt, a warning per retry, one info
	// record for the outcome.
	if !row.panics {
		assert.Equal(t, max(hits, retries+1), logs.store.count(slog.LevelDebug, "token request attempt"), "debug records")
		assert.Equal(t, retries, logs.store.count(slog.LevelWarn, "; retrying"), "warnings")
	}
	assert.Equal(t, 1, logs.store.count(slog.LevelInfo, "mitoken: token "), "info records")

	// Nothing bad was cached: once the fault is over, the next call behaves
	// right.
	f.mu.Lock()
	f.steps, f.challenges = nil, nil
	f.mu.Unlock()
	before := f.hits.Load()
	if row.kind == noError {
		again, err := call(context.Background())
		require.NoError(t, err)
		assert.Equal(t, tok, again, "a cache hit")
		assert.Equal(t, before, f.hits.Load(), "no request for a cached token")
	} else {
		if worthBackoff(err) {
			_, again := call(context.Background())
			assert.Same(t, err, again, "a throttled or failing endpoint is not asked again at once")
			assert.Equal(t, before, f.hits.Load())
		}
		clk.Advance(missBackoff + time.Second)
		waitedBefore := len(w.d)
		again, err := call(context.Background())
		cache.running.Wait()
		if row.refused {
			assert.ErrorIs(t, err, ErrUnavailable, "still nothing there")
			assert.Greater(t, len(w.d), waitedBefore, "and it was asked again")
		} else {
			require.NoError(t, err, "the endpoint answers normally again")
			assert.Equal(t, faultAccessToken, again.AccessToken)
			assert.Greater(t, f.hits.Load(), before, "a new request was made")
		}
	}

	// Secret hygiene across everything this row produced.
	logTexts := logs.store.texts()
	secrets := append([]string{faultAccessToken, faultSecret, outsideKey}, f.arcKeys()...)
	masks := make([]string, 0, 2*len(secrets))
	for i, s := range secrets {
		masks = append(masks, s, fmt.Sprintf("<SECRET %d>", i+1))
	}
	mask := strings.NewReplacer(masks...)
	for _, text := range append(found.texts, logTexts...) {
		// The report shows where, with the secrets masked: test output
		// never holds one either.
		if masked := mask.Replace(text); masked != text {
			t.Errorf("a secret leaked: %q", masked)
		}
		assert.NotContains(t, text, "client_id=", "no query string")
	}
	for _, text := range logTexts {
		// An error may name the identity; a record never holds a query.
		assert.NotContains(t, text, "api-version", "no query string in a log record")
		assert.NotContains(t, text, "?", "no query string in a log record")
	}
}

func (r faultRow) untilWaited() bool {
	for _, s := range r.steps {
		if s.untilWaited > 0 {
			return true
		}
	}
	return false
}

// records is what a captureHandler stored: each record's level, message
// and text as slog's text handler prints it.
type records struct {
	mu   sync.Mutex
	list []captured
}

type captured struct {
	level slog.Level
	msg   string
	text  string
}

func (r *records) count(level slog.Level, msgPart string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.list {
		if c.level == level && strings.Contains(c.msg, msgPart) {
			n++
		}
	}
	return n
}

func (r *records) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.list))
	for i, c := range r.list {
		out[i] = c.text
	}
	return out
}

func (r *records) find(msgPart string) []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []captured
	for _, c := range r.list {
		if strings.Contains(c.msg, msgPart) {
			out = append(out, c)
		}
	}
	return out
}

// captureHandler is a slog.Handler that keeps every record, at every level.
type captureHandler struct {
	store *records
	attrs []slog.Attr
	group string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	var th slog.Handler = slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})
	if len(h.attrs) > 0 {
		th = th.WithAttrs(h.attrs)
	}
	if h.group != "" {
		th = th.WithGroup(h.group)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	h.store.mu.Lock()
	h.store.list = append(h.store.list, captured{level: r.Level, msg: r.Message, text: b.String()})
	h.store.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{store: h.store, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), group: h.group}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{store: h.store, attrs: h.attrs, group: name}
}
