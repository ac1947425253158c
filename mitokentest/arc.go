package mitokentest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// The Arc token endpoint: the challenge-token flow on
// GET /metadata/identity/oauth2/token.

// arcKey is an outstanding challenge: the key file and when it expires.
type arcKey struct {
	path    string
	expires int64 // Unix nanoseconds by the server's clock
}

func arcVersion(v string) bool { return v == "2020-06-01" || v == "2019-11-01" }

// Parameters that would name a user-assigned identity, which Arc refuses.
var arcIdentityParams = []string{"client_id", "object_id", "principal_id", "msi_res_id", "mi_res_id"}

func (s *Server) serveArc(w http.ResponseWriter, r *http.Request) {
	s.sweepArcKeys()
	if !checkMetadataRequest(w, r, arcPath) {
		return
	}
	q := r.URL.Query()
	if code, desc := queryProblem(q, arcVersion, "2020-06-01"); code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	for _, name := range arcIdentityParams {
		if q.Has(name) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "User-assigned identities are not supported on Azure Arc-enabled servers ("+name+" was given)")
			return
		}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		s.challenge(w)
		return
	}
	scheme, key, _ := strings.Cut(strings.TrimSpace(auth), " ")
	if !strings.EqualFold(scheme, "Basic") || !s.redeemArcKey(strings.TrimSpace(key)) {
		// Never echo the key.
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "The Authorization header does not hold a valid challenge key (unknown, expired or already used); repeat the request without it for a new challenge")
		return
	}
	if s.system == nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	writeJSON(w, http.StatusOK, s.issue(*s.system, q.Get("resource")).imdsBody())
}

// challenge writes a fresh key file and answers 401 naming it.
func (s *Server) challenge(w http.ResponseWriter) {
	key := randomText(32)
	path := filepath.Join(s.tokenDir, randomText(16)+".key")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(key)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(path)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "The emulator could not write the challenge key file")
		return
	}
	s.mu.Lock()
	s.arcKeys[key] = arcKey{path: path, expires: s.cfg.now().Add(arcKeyTTL).UnixNano()}
	s.mu.Unlock()
	w.Header().Set("WWW-Authenticate", "Basic realm="+path)
	w.WriteHeader(http.StatusUnauthorized)
}

// redeemArcKey reports whether key answers an outstanding challenge, and
// removes it either way: a key is good for one answer.
func (s *Server) redeemArcKey(key string) bool {
	s.mu.Lock()
	k, ok := s.arcKeys[key]
	delete(s.arcKeys, key)
	s.mu.Unlock()
	if !ok {
		return false
	}
	os.Remove(k.path)
	return s.cfg.now().UnixNano() < k.expires
}

// sweepArcKeys removes the key files of expired challenges.
func (s *Server) sweepArcKeys() {
	now := s.cfg.now().UnixNano()
	var expired []string
	s.mu.Lock()
	for key, k := range s.arcKeys {
		if now >= k.expires {
			expired = append(expired, k.path)
			delete(s.arcKeys, key)
		}
	}
	s.mu.Unlock()
	for _, p := range expired {
		os.Remove(p)
	}
}
