package mitokentest

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// The App Service token endpoint: GET /MSI/token/ (api-version 2019-08-01).

const appServiceVersion = "2019-08-01"

var appServiceIdentityParams = []identityParam{
	{"client_id", byClientID},
	{"object_id", byObjectID},
	{"principal_id", byObjectID},
	{"mi_res_id", byResourceID},
}

// appServiceError is App Service's error body.
type appServiceError struct {
	StatusCode    int    `json:"statusCode"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

func writeAppServiceError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, appServiceError{StatusCode: status, Message: message, CorrelationID: newGUID()})
}

// appServiceBody is the App Service 200 body.
type appServiceBody struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	RefreshIn   string `json:"refresh_in,omitempty"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (s *Server) serveAppService(w http.ResponseWriter, r *http.Request) {
	// The platform's endpoint ignores the case of the path and a missing
	// trailing slash.
	if p := strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")); p != strings.ToLower(strings.TrimSuffix(appServicePath, "/")) {
		writeAppServiceError(w, http.StatusNotFound, "No such endpoint; the token endpoint is "+appServicePath)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeAppServiceError(w, http.StatusMethodNotAllowed, "The token endpoint accepts only GET")
		return
	}
	// Never echo what was sent: it may be a secret.
	got := r.Header.Get("X-Identity-Header")
	if got == "" {
		writeAppServiceError(w, http.StatusBadRequest, "The X-IDENTITY-HEADER header is missing; send the value of IDENTITY_HEADER")
		return
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.secret)) != 1 {
		writeAppServiceError(w, http.StatusBadRequest, "The X-IDENTITY-HEADER header does not match IDENTITY_HEADER")
		return
	}
	q := r.URL.Query()
	if code, desc := queryProblem(q, func(v string) bool { return v == appServiceVersion }, appServiceVersion); code != "" {
		writeAppServiceError(w, http.StatusBadRequest, desc)
		return
	}
	params := identityParams(q, appServiceIdentityParams)
	var id Identity
	ok := false
	switch {
	case len(params) > 1:
		writeAppServiceError(w, http.StatusBadRequest, "Only one of client_id, object_id (principal_id) and mi_res_id may be given")
		return
	case len(params) == 1:
		id, ok = s.userAssigned(params[0], q.Get(params[0].name))
	case s.system != nil:
		id, ok = *s.system, true
	}
	if !ok {
		writeAppServiceError(w, http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	t := s.issue(id, q.Get("resource"))
	writeJSON(w, http.StatusOK, appServiceBody{
		AccessToken: t.token,
		ExpiresOn:   t.imdsBody().ExpiresOn,
		RefreshIn:   seconds(t.refreshIn),
		Resource:    t.resource,
		TokenType:   "Bearer",
		ClientID:    t.clientID,
	})
}
