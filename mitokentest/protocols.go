package mitokentest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What the three endpoints share: request checks, identity lookup and the
// token body. Each endpoint's handler is in its own file.

// identityParam is a query parameter that names a user-assigned identity.
type identityParam struct {
	name string
	pick func(Identity) string
}

func byClientID(id Identity) string   { return id.ClientID }
func byObjectID(id Identity) string   { return id.ObjectID }
func byResourceID(id Identity) string { return id.ResourceID }

// identityParams returns the identity parameters present in q, by the names
// in params.
func identityParams(q url.Values, params []identityParam) []identityParam {
	var found []identityParam
	for _, p := range params {
		if q.Has(p.name) {
			found = append(found, p)
		}
	}
	return found
}

// userAssigned finds the user-assigned identity whose field picked by p
// equals value. IDs are compared case-insensitively, as Azure does.
func (s *Server) userAssigned(p identityParam, value string) (Identity, bool) {
	for _, id := range s.users {
		if v := p.pick(id); v != "" && strings.EqualFold(v, value) {
			return id, true
		}
	}
	return Identity{}, false
}

// resourceProblem says what is wrong with the resource parameter, or "".
func resourceProblem(q url.Values) (code, description string) {
	r := q.Get("resource")
	switch {
	case r == "":
		return "invalid_request", "Required query variable 'resource' is missing"
	case strings.HasSuffix(r, "/.default"):
		// The endpoints take a resource, not a scope; Entra refuses the
		// scope form as an unknown resource.
		return "invalid_resource", "AADSTS500011: The resource principal named " + r + " was not found in the tenant. Pass the resource (App ID URI) without /.default."
	}
	return "", ""
}

// tokenBody is the IMDS and Arc 200 body: every number is a string.
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	RefreshIn    string `json:"refresh_in,omitempty"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

func (t issued) imdsBody() tokenBody {
	life := strconv.FormatInt(int64(t.lifetime/time.Second), 10)
	return tokenBody{
		AccessToken:  t.token,
		ClientID:     t.clientID,
		ExpiresIn:    life,
		ExpiresOn:    strconv.FormatInt(t.exp.Unix(), 10),
		ExtExpiresIn: life,
		NotBefore:    strconv.FormatInt(t.now.Unix(), 10),
		RefreshIn:    seconds(t.refreshIn),
		Resource:     t.resource,
		TokenType:    "Bearer",
	}
}

// seconds formats d as whole seconds, or "" for zero.
func seconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

// oauthError is the error body of IMDS and Arc.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are passed
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// queryProblem says what is wrong with api-version (which ok must accept;
// want is the version to suggest) or resource, as an OAuth error code and
// description, or "" when both are fine.
func queryProblem(q url.Values, ok func(string) bool, want string) (code, description string) {
	v := q.Get("api-version")
	switch {
	case v == "":
		return "invalid_request", "Required query variable 'api-version' is missing; use " + want
	case !ok(v):
		return "invalid_request", "api-version " + strconv.Quote(v) + " is not supported; use " + want
	}
	return resourceProblem(q)
}
