package mitokentest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
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
	IMDS             Source = "imds"
	AppService       Source = "appservice"
	Arc              Source = "arc"
	CloudShell       Source = "cloudshell"
	AzureML          Source = "azureml"
	ServiceFabric    Source = "servicefabric"
	WorkloadIdentity Source = "workloadidentity"
)

// numSources is how many sources a Server emulates.
const numSources = 7

// sources are the sources a Server emulates, in the order of their index.
var sources = [numSources]Source{IMDS, AppService, Arc, CloudShell, AzureML, ServiceFabric, WorkloadIdentity}

func (src Source) valid() bool { return src.lookup() >= 0 }

func (src Source) lookup() int {
	for i, s := range sources {
		if s == src {
			return i
		}
	}
	return -1
}

func (src Source) index() int {
	if i := src.lookup(); i >= 0 {
		return i
	}
	panic(fmt.Sprintf("mitokentest: unknown source %q; use mitokentest.IMDS, AppService, Arc, CloudShell, AzureML, ServiceFabric or WorkloadIdentity", string(src)))
}

// Token endpoint paths, as the real services have them. Workload identity's
// path holds the tenant: /{tenant}/oauth2/v2.0/token.
const (
	imdsPath          = "/metadata/identity/oauth2/token"
	appServicePath    = "/MSI/token/"
	arcPath           = "/metadata/identity/oauth2/token"
	cloudShellPath    = "/oauth2/token"
	azureMLPath       = "/MSI/auth"
	serviceFabricPath = "/metadata/identity/oauth2/token"
	entraTokenPath    = "/oauth2/v2.0/token"
)

// Server is a running emulator of the managed-identity token endpoints
// (IMDS, App Service, Arc, Cloud Shell, Azure ML, Service Fabric) and of the
// Microsoft Entra token endpoint that workload identity uses, each on its
// own loopback listener. It is safe for concurrent
// use. Create it with NewServer or NewTestServer and stop it with Close.
type Server struct {
	cfg      *config
	system   *Identity // nil when the host has no system-assigned identity
	users    []Identity
	tenant   string
	secret   string
	tokenDir string
	fedDir   string // holds the federated token file
	sfCert   tls.Certificate
	sfThumb  string

	listeners [numSources]net.Listener
	servers   [numSources]*http.Server
	paths     [numSources]string
	urls      [numSources]string
	cache     *mitoken.Cache // shared by the credentials built from Options

	ctx    context.Context // cancelled by Close: ends hanging requests
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	scripts  [numSources][]Response
	counts   [numSources]int
	log      []Request
	arcKeys  map[string]arcKey // by key contents
	fed      federated
	handlers sync.WaitGroup // requests being handled
	serving  sync.WaitGroup // Serve loops
	once     sync.Once
}

// NewServer starts an emulator on loopback. It returns an error for a bad
// option or when a listener, the Service Fabric certificate, the Arc token
// directory or the federated token file cannot be created.
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

	if s.sfCert, s.sfThumb, err = selfSignedCertificate(cfg.now()); err != nil {
		return nil, err
	}
	if err := s.makeDirs(); err != nil {
		return nil, err
	}
	s.paths = [numSources]string{imdsPath, appServicePath, arcPath, cloudShellPath, azureMLPath, serviceFabricPath,
		"/" + s.tenant + entraTokenPath}
	for _, src := range sources {
		i := src.index()
		addr := cfg.addrs[src]
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			s.removeDirs()
			return nil, fmt.Errorf("mitokentest: listening for %s on %s: %w", src, addr, err)
		}
		scheme := "http://"
		if src == ServiceFabric {
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{s.sfCert}, MinVersion: tls.VersionTLS12})
			scheme = "https://"
		}
		s.listeners[i] = l
		s.urls[i] = scheme + l.Addr().String() + s.paths[i]
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	handlers := [numSources]http.HandlerFunc{s.serveIMDS, s.serveAppService, s.serveArc,
		s.serveCloudShell, s.serveAzureML, s.serveServiceFabric, s.serveWorkloadIdentity}
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
// and removes the Arc token directory with its key files and the federated
// token file. Calling Close again does nothing.
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
		s.removeDirs()
	})
}

// URL returns the full token endpoint URL of source, such as
// http://127.0.0.1:PORT/metadata/identity/oauth2/token for IMDS,
// https://127.0.0.1:PORT/metadata/identity/oauth2/token for Service Fabric
// and http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token for workload identity.
func (s *Server) URL(source Source) string { return s.urls[source.index()] }

// host returns scheme and host of source's endpoint, with no path.
func (s *Server) host(source Source) string {
	return strings.TrimSuffix(s.URL(source), s.paths[source.index()])
}

// Env returns the environment variables that point a client at source, as
// the platform would set them:
//
//   - IMDS: AZURE_POD_IDENTITY_AUTHORITY_HOST.
//   - App Service: IDENTITY_ENDPOINT and IDENTITY_HEADER (the secret).
//   - Arc: IDENTITY_ENDPOINT and IMDS_ENDPOINT. An Arc client also needs to
//     be told ArcTokenDir, which no environment variable sets.
//   - Cloud Shell: MSI_ENDPOINT.
//   - Azure ML: MSI_ENDPOINT, MSI_SECRET (the secret) and, when the server
//     has a system-assigned identity, DEFAULT_IDENTITY_CLIENT_ID (its client ID).
//   - Service Fabric: IDENTITY_ENDPOINT, IDENTITY_HEADER (the secret) and
//     IDENTITY_SERVER_THUMBPRINT (Thumbprint).
//   - Workload identity: AZURE_AUTHORITY_HOST (http://127.0.0.1:PORT/),
//     AZURE_TENANT_ID (Tenant), AZURE_CLIENT_ID (WorkloadClientID) and
//     AZURE_FEDERATED_TOKEN_FILE (FederatedTokenFile).
//
// The map is the caller's.
func (s *Server) Env(source Source) map[string]string {
	switch source {
	case IMDS:
		return map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": s.host(IMDS)}
	case AppService:
		return map[string]string{"IDENTITY_ENDPOINT": s.URL(AppService), "IDENTITY_HEADER": s.secret}
	case CloudShell:
		return map[string]string{"MSI_ENDPOINT": s.URL(CloudShell)}
	case AzureML:
		env := map[string]string{"MSI_ENDPOINT": s.URL(AzureML), "MSI_SECRET": s.secret}
		if s.system != nil {
			env["DEFAULT_IDENTITY_CLIENT_ID"] = s.system.ClientID
		}
		return env
	case ServiceFabric:
		return map[string]string{"IDENTITY_ENDPOINT": s.URL(ServiceFabric), "IDENTITY_HEADER": s.secret,
			"IDENTITY_SERVER_THUMBPRINT": s.sfThumb}
	case WorkloadIdentity:
		return map[string]string{"AZURE_AUTHORITY_HOST": s.host(WorkloadIdentity) + "/", "AZURE_TENANT_ID": s.tenant,
			"AZURE_CLIENT_ID": s.WorkloadClientID(), "AZURE_FEDERATED_TOKEN_FILE": s.FederatedTokenFile()}
	}
	return map[string]string{"IDENTITY_ENDPOINT": s.URL(source), "IMDS_ENDPOINT": s.host(source)}
}

// Secret returns the secret that App Service (X-IDENTITY-HEADER), Azure ML
// (secret) and Service Fabric (Secret) requests must send.
func (s *Server) Secret() string { return s.secret }

// Thumbprint returns the SHA-1 thumbprint of the Service Fabric endpoint's
// self-signed certificate, as 40 upper-case hex digits: the value of
// IDENTITY_SERVER_THUMBPRINT. Each Server makes its own certificate.
func (s *Server) Thumbprint() string { return s.sfThumb }

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
		form := loggedForm(r) // before locking: reading a body may block
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			abort(w)
			return
		}
		s.handlers.Add(1)
		defer s.handlers.Done()
		s.counts[i]++
		s.log = append(s.log, newRequest(src, r, form, s.cfg.now()))
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
