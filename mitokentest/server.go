package mitokentest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitoken/mitoken"
)

// Source names one of the managed-identity protocols the emulator speaks.
// Its values match the Source method of the mitoken credentials.
type Source string

// The sources a Server emulates. Methods that take a Source panic on any
// other value: that is a mistake in the calling code, not in its input.
const (
	IMDS       Source = "imds"
	AppService Source = "appservice"
	Arc        Source = "arc"
)

// sources are the sources a Server emulates, in the order of their index.
var sources = [3]Source{IMDS, AppService, Arc}

func (src Source) valid() bool { return src == IMDS || src == AppService || src == Arc }

func (src Source) index() int {
	switch src {
	case IMDS:
		return 0
	case AppService:
		return 1
	case Arc:
		return 2
	}
	panic(fmt.Sprintf("mitokentest: unknown source %q; use mitokentest.IMDS, AppService or Arc", string(src)))
}

// Token endpoint paths, as the real services have them.
const (
	imdsPath       = "/metadata/identity/oauth2/token"
	appServicePath = "/MSI/token/"
	arcPath        = "/metadata/identity/oauth2/token"
)

var paths = [3]string{imdsPath, appServicePath, arcPath}

// Server is a running emulator of the IMDS, App Service and Arc token
// endpoints, each on its own loopback listener. It is safe for concurrent
// use. Create it with NewServer or NewTestServer and stop it with Close.
type Server struct {
	cfg      *config
	system   *Identity // nil when the host has no system-assigned identity
	users    []Identity
	tenant   string
	secret   string
	tokenDir string

	listeners [3]net.Listener
	servers   [3]*http.Server
	urls      [3]string
	cache     *mitoken.Cache // shared by the credentials built from Options

	ctx    context.Context // cancelled by Close: ends hanging requests
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	scripts  [3][]Response
	counts   [3]int
	log      []Request
	arcKeys  map[string]arcKey // by key contents
	handlers sync.WaitGroup    // requests being handled
	serving  sync.WaitGroup    // Serve loops
	once     sync.Once
}

// NewServer starts an emulator on loopback. It returns an error for a bad
// option or when a listener or the Arc token directory cannot be created.
func NewServer(opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tenant: cfg.tenant, secret: cfg.secret, arcKeys: map[string]arcKey{}}
	if s.tenant == "" {
		s.tenant = newGUID()
	}
	if s.secret == "" {
		s.secret = randomText(24)
	}
	if !cfg.noSystem {
		sys := Identity{}
		if cfg.system != nil {
			sys = *cfg.system
		}
		sys.ResourceID = ""
		fill(&sys, "")
		s.system = &sys
	}
	sub := newGUID()
	for i, id := range cfg.users {
		fill(&id, fmt.Sprintf("/subscriptions/%s/resourceGroups/mitokentest/providers/Microsoft.ManagedIdentity/userAssignedIdentities/identity-%d", sub, i+1))
		s.users = append(s.users, id)
	}
	s.cache = mitoken.NewCache()

	s.tokenDir, err = os.MkdirTemp("", "mitokentest-arc-")
	if err != nil {
		return nil, fmt.Errorf("mitokentest: creating the Arc token directory: %w", err)
	}
	for _, src := range sources {
		i := src.index()
		addr := cfg.addrs[src]
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			os.RemoveAll(s.tokenDir)
			return nil, fmt.Errorf("mitokentest: listening for %s on %s: %w", src, addr, err)
		}
		s.listeners[i] = l
		s.urls[i] = "http://" + l.Addr().String() + paths[i]
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	handlers := [3]http.HandlerFunc{s.serveIMDS, s.serveAppService, s.serveArc}
	for _, src := range sources {
		i := src.index()
		s.servers[i] = &http.Server{
			Handler:           s.wrap(src, handlers[i]),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return s.ctx },
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			_ = s.servers[i].Serve(s.listeners[i])
		}()
	}
	return s, nil
}

// NewTestServer is NewServer for a test: it fails the test when the server
// cannot start and closes the server when the test ends.
func NewTestServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatalf("mitokentest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		if l != nil {
			l.Close()
		}
	}
}

// Close stops the listeners, ends every request still being handled (a
// hanging one has its connection closed), waits for the handlers to return
// and removes the Arc token directory with its key files. Calling Close
// again does nothing.
func (s *Server) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		for _, srv := range s.servers {
			srv.Close()
		}
		s.serving.Wait()
		s.handlers.Wait()
		s.mu.Lock()
		clear(s.arcKeys)
		s.mu.Unlock()
		os.RemoveAll(s.tokenDir)
	})
}

// URL returns the full token endpoint URL of source, such as
// http://127.0.0.1:PORT/metadata/identity/oauth2/token for IMDS.
func (s *Server) URL(source Source) string { return s.urls[source.index()] }

// host returns scheme and host of source's endpoint, with no path.
func (s *Server) host(source Source) string {
	return strings.TrimSuffix(s.URL(source), paths[source.index()])
}

// Env returns the environment variables that point a client at source, as
// the platform would set them: for IMDS AZURE_POD_IDENTITY_AUTHORITY_HOST;
// for App Service IDENTITY_ENDPOINT and IDENTITY_HEADER (the secret); for Arc
// IDENTITY_ENDPOINT and IMDS_ENDPOINT. An Arc client also needs to be told
// ArcTokenDir, which no environment variable sets. The map is the caller's.
func (s *Server) Env(source Source) map[string]string {
	switch source {
	case IMDS:
		return map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": s.host(IMDS)}
	case AppService:
		return map[string]string{"IDENTITY_ENDPOINT": s.URL(AppService), "IDENTITY_HEADER": s.secret}
	}
	return map[string]string{"IDENTITY_ENDPOINT": s.URL(source), "IMDS_ENDPOINT": s.host(source)}
}

// Secret returns the App Service secret, which requests must send as
// X-IDENTITY-HEADER.
func (s *Server) Secret() string { return s.secret }

// ArcTokenDir returns the directory into which the Arc endpoint writes its
// challenge key files. Close removes it.
func (s *Server) ArcTokenDir() string { return s.tokenDir }

// Tenant returns the tenant ID that tokens carry.
func (s *Server) Tenant() string { return s.tenant }

// SystemIdentity returns the system-assigned identity, and false when the
// server was started WithoutSystemIdentity.
func (s *Server) SystemIdentity() (Identity, bool) {
	if s.system == nil {
		return Identity{}, false
	}
	return *s.system, true
}

// UserAssigned returns the user-assigned identities, with every field filled in.
func (s *Server) UserAssigned() []Identity { return append([]Identity(nil), s.users...) }

// Requests returns how many requests the endpoint of source has received,
// whatever the answer (the Arc challenge counts as one).
func (s *Server) Requests(source Source) int {
	i := source.index()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[i]
}

// wrap counts and logs each request, then plays the next scripted response
// of source or, when there is none, answers as the real endpoint would.
func (s *Server) wrap(src Source, normal http.HandlerFunc) http.Handler {
	i := src.index()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			abort(w)
			return
		}
		s.handlers.Add(1)
		defer s.handlers.Done()
		s.counts[i]++
		s.log = append(s.log, newRequest(src, r, s.cfg.now()))
		var script *Response
		if q := s.scripts[i]; len(q) > 0 {
			script = &q[0]
			s.scripts[i] = q[1:]
		}
		s.mu.Unlock()
		if script != nil && s.play(w, r, *script) {
			return
		}
		normal(w, r)
	})
}

// abort ends a request without an answer: the connection is closed.
func abort(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler) // net/http closes the connection quietly
}
