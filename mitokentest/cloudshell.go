package mitokentest

import (
	"net/http"
	"net/url"
)

// The Cloud Shell token endpoint: POST /oauth2/token with the form
// resource=R and Metadata: true. It serves the system identity only.

// userAssignedParams are the parameters that would name a user-assigned
// identity, on sources that have none.
var userAssignedParams = []string{"client_id", "clientid", "object_id", "principal_id", "msi_res_id", "mi_res_id"}

// userAssignedParam returns the first of userAssignedParams in vs, or "".
func userAssignedParam(vs ...url.Values) string {
	for _, v := range vs {
		for _, name := range userAssignedParams {
			if v.Has(name) {
				return name
			}
		}
	}
	return ""
}

func (s *Server) serveCloudShell(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != cloudShellPath:
		writeOAuthError(w, http.StatusNotFound, "invalid_request", "No such endpoint; the token endpoint is "+cloudShellPath)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts only POST with a form body")
		return
	case r.Header.Get("Metadata") != "true":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	form, ok := readForm(w, r)
	if !ok {
		return
	}
	if code, desc := resourceProblem(form); code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	if name := userAssignedParam(form, r.URL.Query()); name != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Cloud Shell supports only its own identity ("+name+" was given)")
		return
	}
	if s.system == nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	writeJSON(w, http.StatusOK, s.issue(*s.system, form.Get("resource")).imdsBody())
}

// maxFormBytes bounds a form body the emulator reads.
const maxFormBytes = 64 << 10

// readForm parses r's url-encoded body. It answers 400 and returns false
// when the body is not such a form.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The body must be application/x-www-form-urlencoded, not "+ct)
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The form body could not be read")
		return nil, false
	}
	return r.PostForm, true
}
