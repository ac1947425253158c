package mitokentest

import (
	"net/http"
	"time"
)

// The IMDS token endpoint: GET /metadata/identity/oauth2/token.

var imdsIdentityParams = []identityParam{
	{"client_id", byClientID},
	{"object_id", byObjectID},
	{"msi_res_id", byResourceID},
}

// imdsVersion accepts the identity API versions IMDS serves: 2018-02-01
// and every later date.
func imdsVersion(v string) bool {
	t, err := time.Parse(time.DateOnly, v)
	return err == nil && !t.Before(time.Date(2018, 2, 1, 0, 0, 0, 0, time.UTC))
}

func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	if !checkMetadataRequest(w, r, imdsPath) {
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Request contains an X-Forwarded-For header; IMDS refuses requests that come through a proxy")
		return
	}
	q := r.URL.Query()
	if code, desc := queryProblem(q, imdsVersion, "2018-02-01"); code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	params := identityParams(q, imdsIdentityParams)
	var id Identity
	switch {
	case len(params) > 1:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Only one of client_id, object_id and msi_res_id may be given")
		return
	case len(params) == 1:
		var ok bool
		if id, ok = s.userAssigned(params[0], q.Get(params[0].name)); !ok {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
			return
		}
	case s.system != nil:
		id = *s.system
	case len(s.users) == 1:
		id = s.users[0] // as on a VM whose only identity is user-assigned
	case len(s.users) > 1:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request")
		return
	default:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	writeJSON(w, http.StatusOK, s.issue(id, q.Get("resource")).imdsBody())
}

// checkMetadataRequest makes the checks IMDS and Arc share: method, path and
// the Metadata header. It answers and returns false when one fails.
func checkMetadataRequest(w http.ResponseWriter, r *http.Request, path string) bool {
	switch {
	case r.URL.Path != path:
		writeOAuthError(w, http.StatusNotFound, "invalid_request", "No such endpoint; the token endpoint is "+path)
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts only GET")
	case r.Header.Get("Metadata") != "true":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
	default:
		return true
	}
	return false
}
