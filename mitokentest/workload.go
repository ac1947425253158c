package mitokentest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The Microsoft Entra token endpoint as AKS workload identity uses it:
// POST /{tenant}/oauth2/v2.0/token with a client-credentials form whose
// client assertion is the pod's federated (service account) token. The
// server owns that token's file and can rotate it, as the kubelet does.

const (
	jwtBearer          = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	federatedTokenName = "azure-identity-token"
)

// federated is the state of the federated token; guarded by Server.mu.
type federated struct {
	file    string
	current string
	retired map[string]bool // rotated-out tokens, refused with their own message
}

// entraBody is Entra's 200 body: the numbers are JSON numbers.
type entraBody struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	RefreshIn    int64  `json:"refresh_in,omitempty"`
	AccessToken  string `json:"access_token"`
}

// entraError is Entra's error body.
type entraError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
}

func (s *Server) writeEntraError(w http.ResponseWriter, status int, code string, aadsts int, description string) {
	writeJSON(w, status, entraError{
		Error:         code,
		Description:   fmt.Sprintf("AADSTS%d: %s", aadsts, description),
		ErrorCodes:    []int{aadsts},
		Timestamp:     s.cfg.now().UTC().Format("2006-01-02 15:04:05Z"),
		TraceID:       newGUID(),
		CorrelationID: newGUID(),
	})
}

func (s *Server) serveWorkloadIdentity(w http.ResponseWriter, r *http.Request) {
	tenant, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), entraTokenPath)
	switch {
	case !ok || tenant == "" || strings.Contains(tenant, "/"):
		s.writeEntraError(w, http.StatusNotFound, "invalid_request", 900023, "No such endpoint; the token endpoint is /{tenant}"+entraTokenPath)
		return
	case !strings.EqualFold(tenant, s.tenant):
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found.", tenant))
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		s.writeEntraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	form, ok := readForm(w, r)
	if !ok {
		return
	}
	for _, name := range []string{"grant_type", "client_id", "scope", "client_assertion_type", "client_assertion"} {
		if form.Get(name) == "" {
			s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", name))
			return
		}
	}
	if g := form.Get("grant_type"); g != "client_credentials" {
		s.writeEntraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'; use client_credentials.", g))
		return
	}
	if form.Get("client_assertion_type") != jwtBearer {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 7000219, "client_assertion_type must be "+jwtBearer+".")
		return
	}
	resource, ok := strings.CutSuffix(form.Get("scope"), "/.default")
	if !ok || resource == "" {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	id, found := s.workloadIdentity(form.Get("client_id"))
	if !found {
		s.writeEntraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", form.Get("client_id")))
		return
	}
	// Never echo the assertion.
	switch s.checkAssertion(form.Get("client_assertion")) {
	case assertionRetired:
		s.writeEntraError(w, http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range; the federated token was rotated.")
		return
	case assertionUnknown:
		s.writeEntraError(w, http.StatusUnauthorized, "invalid_client", 70021, "No matching federated identity record found for presented assertion.")
		return
	}
	t := s.issue(id, resource)
	life := int64(t.lifetime / time.Second)
	writeJSON(w, http.StatusOK, entraBody{
		TokenType: "Bearer", ExpiresIn: life, ExtExpiresIn: life,
		RefreshIn: int64(t.refreshIn / time.Second), AccessToken: t.token,
	})
}

// workloadIdentity finds the identity whose client ID is cid: the system
// identity or a user-assigned one.
func (s *Server) workloadIdentity(cid string) (Identity, bool) {
	for _, id := range append(s.systemList(), s.users...) {
		if strings.EqualFold(id.ClientID, cid) {
			return id, true
		}
	}
	return Identity{}, false
}

type assertionState int

const (
	assertionValid assertionState = iota
	assertionRetired
	assertionUnknown
)

func (s *Server) checkAssertion(a string) assertionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case subtle.ConstantTimeCompare([]byte(a), []byte(s.fed.current)) == 1:
		return assertionValid
	case s.fed.retired[a]:
		return assertionRetired
	}
	return assertionUnknown
}

// WorkloadClientID returns the client ID that Env and Options give a
// workload identity client: the system identity's, or when the server has
// none, the first user-assigned identity's. The token endpoint accepts the
// client ID of any of the server's identities.
func (s *Server) WorkloadClientID() string {
	if s.system != nil {
		return s.system.ClientID
	}
	if len(s.users) > 0 {
		return s.users[0].ClientID
	}
	return ""
}

// FederatedTokenFile returns the path of the federated token file, the
// value of AZURE_FEDERATED_TOKEN_FILE. The server writes it at start and
// on RotateFederatedToken; its contents are the one assertion the token
// endpoint accepts. Close removes it.
func (s *Server) FederatedTokenFile() string { return s.fed.file }

// RotateFederatedToken replaces the federated token file with a new token,
// as the kubelet does before the old one expires, and makes the token
// endpoint refuse the old one. The file is replaced atomically, so a reader
// sees the old token or the new one, never a mix.
func (s *Server) RotateFederatedToken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.fed.current
	if err := s.writeFederatedToken(); err != nil {
		return err
	}
	s.fed.retired[old] = true
	return nil
}

// writeFederatedToken makes a new token and writes it to the file. The
// caller holds s.mu (or is NewServer).
func (s *Server) writeFederatedToken() error {
	tok := s.serviceAccountToken()
	tmp, err := os.CreateTemp(s.fedDir, federatedTokenName+".*")
	if err == nil {
		_, err = tmp.WriteString(tok)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), s.fed.file)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("mitokentest: writing the federated token file: %w", err)
	}
	s.fed.current = tok
	return nil
}

// serviceAccountToken is a JWT-shaped Kubernetes service account token, as
// the kubelet projects for workload identity. Nothing signs it.
func (s *Server) serviceAccountToken() string {
	now := s.cfg.now().Truncate(time.Second)
	claims := map[string]any{
		"aud": "api://AzureADTokenExchange", // DecodeClaims reads it back
		"iss": "https://oidc.mitokentest.invalid/" + s.tenant + "/",
		"sub": "system:serviceaccount:default:mitokentest",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": randomText(16),
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return unsignedJWT(payload)
}

// makeDirs creates the Arc token directory and the federated token file.
func (s *Server) makeDirs() error {
	var err error
	if s.tokenDir, err = os.MkdirTemp("", "mitokentest-arc-"); err != nil {
		return fmt.Errorf("mitokentest: creating the Arc token directory: %w", err)
	}
	if s.fedDir, err = os.MkdirTemp("", "mitokentest-workload-"); err != nil {
		s.removeDirs()
		return fmt.Errorf("mitokentest: creating the federated token directory: %w", err)
	}
	s.fed = federated{file: filepath.Join(s.fedDir, federatedTokenName), retired: map[string]bool{}}
	if err := s.writeFederatedToken(); err != nil {
		s.removeDirs()
		return err
	}
	return nil
}

// removeDirs removes what makeDirs created.
func (s *Server) removeDirs() {
	for _, d := range []string{s.tokenDir, s.fedDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
}
