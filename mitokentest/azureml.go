package mitokentest

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// The Azure ML token endpoint: GET /MSI/auth (api-version 2017-09-01) with
// the secret in the secret header and the identity in clientid. Its answer
// has expires_on as a date, as the 2017-09-01 protocol did.

const azureMLVersion = "2017-09-01"

// azureMLBody is the 2017-09-01 200 body.
type azureMLBody struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"` // "11/23/2026 10:00:00 +00:00"
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (s *Server) serveAzureML(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != azureMLPath:
		writeOAuthError(w, http.StatusNotFound, "invalid_request", "No such endpoint; the token endpoint is "+azureMLPath)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts only GET")
		return
	}
	// Never echo what was sent: it is a secret.
	if got := r.Header.Get("Secret"); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.secret)) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "The secret header is missing or does not match MSI_SECRET")
		return
	}
	q := r.URL.Query()
	if code, desc := queryProblem(q, func(v string) bool { return v == azureMLVersion }, azureMLVersion); code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	for _, name := range []string{"client_id", "object_id", "principal_id", "msi_res_id", "mi_res_id"} {
		if q.Has(name) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Azure ML names an identity by clientid only ("+name+" was given)")
			return
		}
	}
	var id *Identity
	if cid := q.Get("clientid"); cid == "" {
		id = s.system
	} else {
		for _, cand := range append(s.systemList(), s.users...) {
			if strings.EqualFold(cand.ClientID, cid) {
				id = &cand
				break
			}
		}
	}
	if id == nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	t := s.issue(*id, q.Get("resource"))
	writeJSON(w, http.StatusOK, azureMLBody{
		AccessToken: t.token,
		ExpiresOn:   t.exp.UTC().Format("01/02/2006 15:04:05 +00:00"),
		Resource:    t.resource,
		TokenType:   "Bearer",
		ClientID:    t.clientID,
	})
}

// systemList returns the system identity as a list of zero or one.
func (s *Server) systemList() []Identity {
	if s.system == nil {
		return nil
	}
	return []Identity{*s.system}
}
